"""The last gate before the robot: clamps every joint command, holds on silence, latches e-stop.

Every output holds all robot joints in the robot's canonical order, finite, inside the URDF
position limits shrunk by `position_margin`, with efforts in [0, effort_scale * limit].
Clamps, applied per joint as one interval intersection:
  - position limits (URDF, through pinocchio) minus a margin;
  - at most `max_step_arm` / `max_step_hand` rad away from the measured position;
  - at most `velocity_scale * URDF velocity limit * dt` away from the previous output, with dt
    the time since that output, bounded to [min_dt, max_dt] so bursts and gaps stay sane.
If the intervals do not intersect (the robot measures itself outside its own limits) the
position limits win and the output is the limit-respecting point nearest the measured position.
Inputs refused rather than clamped: non-finite positions (the joint holds instead), joints the
robot does not have (dropped), duplicated names (both hold), and malformed messages (dropped
whole; they do not feed the watchdog).

States: the measured state is merged per joint (drivers may publish arm and hand separately);
when any joint's state is older than `state_timeout` nothing is published at all, since a robot
whose state is unknown is not commanded. With no accepted command for `command_timeout`, or
while the e-stop is latched, the output holds: the arm at the measured position from the moment
the hold began, the hand at its last command when `hold_keeps_grip` (a held object stays held),
else measured. E-stop latches on a true input and clears only through `reset_estop()`, which
refuses while the e-stop input still reads true.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drex_ros.core.robot.joints import JointIndex
from drex_ros.core.robot.model import ARM_JOINTS, JointLimits


@dataclass(frozen=True)
class SafetyConfig:
    position_margin: float = 0.02  # rad inside the URDF limits
    max_step_arm: float = 0.15  # rad from the measured position
    max_step_hand: float = 0.6  # rad from the measured position
    velocity_scale: float = 0.5  # fraction of the URDF velocity limit
    effort_scale: float = 1.0  # fraction of the URDF effort limit
    min_dt: float = 0.005  # s; velocity bound is taken over at least this long
    max_dt: float = 0.1  # s; and at most this long
    command_timeout: float = 0.1  # s without an accepted command -> hold
    state_timeout: float = 0.1  # s; older measured state -> publish nothing
    hold_keeps_grip: bool = True

    def validate(self) -> None:
        for name in ("position_margin", "max_step_arm", "max_step_hand", "velocity_scale", "effort_scale",
                     "min_dt", "max_dt", "command_timeout", "state_timeout"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0 or (value == 0 and name != "position_margin"):
                raise ValueError(f"safety {name} must be a positive finite number, got {value}")
        if self.min_dt > self.max_dt:
            raise ValueError(f"min_dt {self.min_dt} > max_dt {self.max_dt}")


@dataclass
class SafetyOutput:
    positions: np.ndarray  # canonical order, all joints
    efforts: np.ndarray
    mode: str  # "command" or "hold"
    reasons: Counter  # what was clamped or refused in this output


class SafetyGate:
    """Stateful clamp + watchdog + e-stop latch. Times are seconds on one monotonic clock."""

    def __init__(self, limits: JointLimits, config: SafetyConfig | None = None) -> None:
        self.config = config or SafetyConfig()
        self.config.validate()
        self.names = tuple(limits.names)
        self._joints = JointIndex(self.names)
        n = len(self.names)
        margin = self.config.position_margin
        lower, upper = np.asarray(limits.lower, float), np.asarray(limits.upper, float)
        mid = 0.5 * (lower + upper)
        # A joint narrower than twice the margin is pinned to its middle rather than inverted.
        self.lower = np.minimum(lower + margin, mid)
        self.upper = np.maximum(upper - margin, mid)
        self.max_velocity = self.config.velocity_scale * np.asarray(limits.velocity, float)
        self.max_effort = self.config.effort_scale * np.asarray(limits.effort, float)
        is_arm = np.array([name in ARM_JOINTS for name in self.names])
        self.max_step = np.where(is_arm, self.config.max_step_arm, self.config.max_step_hand)
        self._is_arm = is_arm
        self._state_q = np.full(n, np.nan)
        self._state_t = np.full(n, -np.inf)
        self._prev: np.ndarray | None = None
        self._prev_effort: np.ndarray | None = None
        self._prev_t = -np.inf
        self._last_command_t = -np.inf
        self._hold: tuple[np.ndarray, np.ndarray] | None = None
        self._hold_reason = ""
        self._pending_reason = ""
        self.estop_latched = False
        self.estop_input = False
        self.counters: Counter = Counter()

    # ---- inputs -------------------------------------------------------------------------
    def on_state(self, names: Sequence[str], positions: Sequence[float], t: float) -> None:
        """Merge a measured joint state (any subset of joints; unknown names ignored)."""
        if len(names) != len(positions):
            self.counters["state_malformed"] += 1
            return
        m = self._joints.map(names)
        src, dst = m.src, m.dst
        values = np.asarray(positions, dtype=float)[src]
        finite = np.isfinite(values)
        self._state_q[dst[finite]] = values[finite]
        self._state_t[dst[finite]] = t
        if not finite.all():
            self.counters["state_nonfinite"] += int((~finite).sum())

    def state_age(self, t: float) -> float:
        return float(t - self._state_t.min())

    def state_fresh(self, t: float) -> bool:
        return self.state_age(t) <= self.config.state_timeout

    def measured(self) -> np.ndarray:
        return self._state_q.copy()

    def set_estop(self, engaged: bool, t: float) -> None:
        self.estop_input = bool(engaged)
        if engaged and not self.estop_latched:
            self.estop_latched = True
            self.counters["estop_latched"] += 1
            # An existing watchdog hold keeps its target; otherwise on_tick takes one from fresh state.
            if self._hold is not None:
                self._hold_reason = "estop"

    def reset_estop(self) -> tuple[bool, str]:
        if self.estop_input:
            return False, "e-stop input still reads true; release it first"
        if not self.estop_latched:
            return True, "e-stop was not latched"
        self.estop_latched = False
        self._hold = None
        self.counters["estop_reset"] += 1
        return True, "e-stop cleared"

    def force_hold(self, reason: str) -> None:
        """Hold from now on (as if the command stream had died) until the next accepted command."""
        self._last_command_t = -np.inf
        self._hold = None
        self._pending_reason = reason
        self.counters["forced_hold"] += 1

    # ---- outputs ------------------------------------------------------------------------
    def on_command(self, names: Sequence[str], positions: Sequence[float], efforts: Sequence[float],
                   t: float) -> SafetyOutput | None:
        """Clamp one command. None means publish nothing (malformed, stale state, or e-stop hold
        handled by `on_tick`)."""
        if len(positions) != len(names) or (len(efforts) and len(efforts) != len(names)):
            self.counters["malformed_command"] += 1
            return None
        if not self.state_fresh(t):
            self.counters["stale_state"] += 1
            return None
        if self.estop_latched:
            self.counters["estop_dropped_command"] += 1
            return None
        self._last_command_t = t
        self._hold = None
        reasons: Counter = Counter()
        fallback_q, fallback_e = self._fallback()
        target, effort = fallback_q.copy(), fallback_e.copy()
        m = self._joints.map(names)
        src, dst, unknown, dup = m.src, m.dst, m.unknown, m.duplicated
        if unknown:
            reasons["unknown_joint"] += unknown
        target[dst] = np.asarray(positions, dtype=float)[src]
        effort[dst] = np.asarray(efforts, dtype=float)[src] if len(efforts) else self.max_effort[dst]
        if dup.any():
            reasons["duplicate_joint"] += int(dup.sum())
            target[dup], effort[dup] = fallback_q[dup], fallback_e[dup]
        bad = ~np.isfinite(target)
        if bad.any():
            reasons["nonfinite_position"] += int(bad.sum())
            target[bad] = fallback_q[bad]
        return self._finish(target, effort, "command", reasons, t)

    def on_tick(self, t: float) -> SafetyOutput | None:
        """Periodic check: returns a hold output when the watchdog or e-stop demands one."""
        if not self.state_fresh(t):
            if np.isfinite(self._state_t.min()) or self._prev is not None:
                self.counters["stale_state"] += 1
            return None
        if self.estop_latched:
            if self._hold is None:
                self._begin_hold("estop", t)
        elif t - self._last_command_t > self.config.command_timeout:
            if self._hold is None:
                reason, self._pending_reason = self._pending_reason or "watchdog", ""
                self._begin_hold(reason, t)
                if reason == "watchdog":
                    self.counters["watchdog_hold"] += 1
        else:
            return None
        q, e = self._hold
        return self._finish(q.copy(), e.copy(), "hold", Counter({self._hold_reason: 1}), t)

    @property
    def hold_reason(self) -> str:
        return self._hold_reason if self._hold is not None else ""

    # ---- internals ----------------------------------------------------------------------
    def _fallback(self) -> tuple[np.ndarray, np.ndarray]:
        """What a joint without a usable command gets: its previous output, else measured."""
        if self._prev is not None:
            return self._prev.copy(), self._prev_effort.copy()
        return self._state_q.copy(), self.max_effort.copy()

    def _begin_hold(self, reason: str, t: float) -> None:
        q = self._state_q.copy()
        e = self.max_effort.copy()
        if self.config.hold_keeps_grip and self._prev is not None:
            hand = ~self._is_arm
            q[hand], e[hand] = self._prev[hand], self._prev_effort[hand]
        q = np.where(np.isfinite(q), q, 0.5 * (self.lower + self.upper))
        self._hold = (q, e)
        self._hold_reason = reason

    def _finish(self, target: np.ndarray, effort: np.ndarray, mode: str, reasons: Counter,
                t: float) -> SafetyOutput:
        q_meas = self._state_q
        lo, hi = self.lower.copy(), self.upper.copy()
        step_lo, step_hi = q_meas - self.max_step, q_meas + self.max_step
        vel_lo, vel_hi = np.full_like(lo, -np.inf), np.full_like(hi, np.inf)
        if self._prev is not None:
            dt = float(np.clip(t - self._prev_t, self.config.min_dt, self.config.max_dt))
            vel_lo, vel_hi = self._prev - self.max_velocity * dt, self._prev + self.max_velocity * dt
        all_lo = np.maximum.reduce([lo, step_lo, vel_lo])
        all_hi = np.minimum.reduce([hi, step_hi, vel_hi])
        box_step_lo, box_step_hi = np.maximum(lo, step_lo), np.minimum(hi, step_hi)
        # Where the constraints conflict, drop velocity first, then the step bound; never the limits.
        use_all = all_lo <= all_hi
        use_step = ~use_all & (box_step_lo <= box_step_hi)
        low = np.where(use_all, all_lo, np.where(use_step, box_step_lo, lo))
        high = np.where(use_all, all_hi, np.where(use_step, box_step_hi, hi))
        out = np.where(use_all | use_step, target, np.clip(q_meas, lo, hi))
        clipped = np.clip(out, low, high)
        if mode == "command":
            moved = clipped != out
            for name, mask in (("position_limit", (out < lo) | (out > hi)),
                               ("max_step", (out < step_lo) | (out > step_hi)),
                               ("max_velocity", (out < vel_lo) | (out > vel_hi))):
                if (mask & moved).any():
                    reasons[name] += int((mask & moved).sum())
            bad_e = ~np.isfinite(effort)
            if bad_e.any():
                reasons["nonfinite_effort"] += int(bad_e.sum())
            effort = np.where(bad_e, self.max_effort, effort)
            over = (effort > self.max_effort) | (effort < 0)
            if over.any():
                reasons["max_effort"] += int(over.sum())
        effort = np.clip(np.where(np.isfinite(effort), effort, self.max_effort), 0.0, self.max_effort)
        self._prev, self._prev_effort, self._prev_t = clipped, effort, t
        if mode == "command":  # holds are counted per episode (watchdog_hold, estop_latched, forced_hold)
            self.counters.update(reasons)
        return SafetyOutput(clipped.copy(), effort.copy(), mode, reasons)
