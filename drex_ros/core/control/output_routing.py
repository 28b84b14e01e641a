"""The safety gate's output (URDF order) split per driver group, in each driver's names, order
and message shape (core/robot/profile.py describes the drivers).

- joint_trajectory (ros2_controllers' JTC): positions and velocities, never efforts (the JTC
  on Franka's effort interface rejects points carrying them); the velocity is the gate's own
  rate of change over its last interval, on the gate's clock, so the spline the JTC fits is as
  smooth as the gate's motion bounds. (Estimated here from the outputs' arrival times, a sim
  clock read a moment apart from the gate's turned a 9 mrad step into 2.8 rad/s under load.)
- float64_array (forward_command_controller) and joint_state (legacy Allegro node): positions
  in the driver's order; the legacy node reads by position, so its names are only a label.
- A hand without torque commands gets the grip effort as a position offset: with the driver's
  PD gain kp and torque clamp, q_cmd = q_measured + clip(q_target - q_measured, +-tau/kp) makes
  the driver's PD push with tau = min(grip effort, clamp) where a finger stalls on the object,
  which is what the simulator's effort-limited PD does with the same effort. A finger that is
  still moving loses that torque between commands, so the offset is widened by what the
  driver's reported torque still misses (core/control/grip_servo.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drex_ros.core.control.grip_servo import GripServo
from drex_ros.core.robot.profile import GroupSpec, Profile


@dataclass(frozen=True)
class GroupCommand:
    """What one driver receives, in its own joint names and order."""

    group: str
    kind: str  # GroupSpec.command_type
    topic: str
    names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray | None  # joint_trajectory only
    time_from_start: float  # joint_trajectory only


class OutputRouter:
    """Split each gate output per group."""

    def __init__(self, profile: Profile) -> None:
        self.groups = list(profile.groups.values())
        self._servos = {g.map.group: GripServo(g.kp, g.torque_cap) for g in self.groups if g.grip == "position_offset"}

    def route(self, positions: np.ndarray, velocities: np.ndarray, efforts: np.ndarray,
              measured: np.ndarray, reported: np.ndarray | None = None) -> list[GroupCommand]:
        """reported: the measured joint efforts in URDF order (NaN where unknown), which for a
        position-only hand are its driver's commanded torques."""
        return [self._one(g, positions, velocities, efforts, measured, reported) for g in self.groups]

    def _one(self, g: GroupSpec, positions: np.ndarray, velocities: np.ndarray, efforts: np.ndarray,
             measured: np.ndarray, reported: np.ndarray | None) -> GroupCommand:
        idx = g.map.urdf_index
        q = np.asarray(positions, float)[idx]
        if g.grip == "position_offset":
            fed_back = None if reported is None else np.asarray(reported, float)[idx]
            q = self._servos[g.map.group].command(q, np.asarray(efforts, float)[idx], np.asarray(measured, float)[idx],
                                                  fed_back)
        v = np.asarray(velocities, float)[idx] if g.command_type == "joint_trajectory" else None
        return GroupCommand(g.map.group, g.command_type, g.command_topic, g.map.driver_names, q, v, g.horizon_s)
