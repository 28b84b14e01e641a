"""A grip torque through a hand driver that takes positions only.

The driver runs a PD with gain kp toward the position it is sent. Sending q_measured + tau/kp
makes it push with tau only while the finger stands still: a finger still closing, or creeping
into a soft contact, moves toward that point between two commands, and the driver's torque falls
with it. On the simulated legacy Allegro the policy's grip for a 0.35 kg box then squeezed 5.5 N
instead of 13.4 N and the box slipped out.

Both Allegro drivers report the torque they command as the joint state's effort, so the servo
closes the loop on it: each command widens the offset by the torque still missing, up to twice
the open-loop offset (never more than the driver's own clamp lets through anyway).
"""

from __future__ import annotations

import numpy as np

GAIN = 0.5  # share of the missing torque corrected per command
MAX_EXTRA = 1.0  # the correction's bound, in open-loop offsets tau/kp


class GripServo:
    """Position commands for one driver group whose PD torque tracks the grip effort."""

    def __init__(self, kp: np.ndarray, cap: np.ndarray) -> None:
        self.kp = np.asarray(kp, float)
        self.cap = np.asarray(cap, float)
        self.extra = np.zeros(len(self.kp))  # rad beyond the open-loop offset, per joint

    def command(self, target: np.ndarray, effort: np.ndarray, measured: np.ndarray,
                reported: np.ndarray | None = None) -> np.ndarray:
        """The position to send: `target` where the grip effort or the measurement is missing,
        else within reach of the measured position. reported: the driver's commanded torque
        (its state's effort), NaN where unknown; without it the offset stays open-loop."""
        target, effort, measured = (np.asarray(a, float) for a in (target, effort, measured))
        valid = np.isfinite(effort) & np.isfinite(measured)
        tau = np.minimum(np.where(valid, np.abs(effort), 0.0), self.cap)
        gap = np.where(valid, target - measured, 0.0)
        if reported is not None:
            self._correct(tau, gap, np.asarray(reported, float))
        self.extra = np.where(valid, self.extra, 0.0)
        reach = (tau / self.kp) + self.extra
        return np.where(valid, measured + np.clip(gap, -reach, reach), target)

    def _correct(self, tau: np.ndarray, gap: np.ndarray, reported: np.ndarray) -> None:
        wanted = np.minimum(tau, self.kp * np.abs(gap))  # what the open-loop offset asks for
        pushed = np.sign(gap) * reported  # the driver's torque toward the target
        step = GAIN * (wanted - pushed) / self.kp
        bound = MAX_EXTRA * tau / self.kp
        self.extra = np.where(np.isfinite(reported), np.clip(self.extra + step, 0.0, bound), self.extra)
