"""The last gate before the robot: clamps every joint command, holds on silence, latches e-stop.

Every output holds all robot joints in the robot's canonical order, finite, inside the URDF
position limits shrunk by `position_margin`, with efforts in [0, effort_scale * limit].

Targets: a command's target is clipped into the position limits minus the margin and to at most
`max_step_arm` / `max_step_hand` rad from the measured position (where the two do not meet, the
robot measures itself outside its limits, the limit point nearest the measured position). The
output then moves towards the target within motion bounds over real time (core/control/
motion_bounds.py): every joint at most `velocity_scale` x its velocity limit over any window,
bursts included; the 7 arm joints also within `dynamics_scale` x Franka's acceleration and jerk
limits, braking so as to stop at the target. The step bound is thus met as fast as these bounds
allow, not by a step: a Franka aborts on a position step. The first output after start-up or a
gap longer than `max_dt` starts at rest at the measured position (or the last output).

Refused rather than clamped: non-finite targets (that joint keeps its previous output), joints the
robot does not have (dropped), a joint named twice (no value), malformed messages, and whole
commands that: come from a source other than the owner (`set_owner`; "any" takes every source,
"" none; counted `not_owner`), carry a header stamp older than the last accepted command's (zero
stamps exempt; the order restarts with each hold), or move no known joint to a finite target
(`noop_command`). Only an accepted command feeds the watchdog. Efforts: a non-finite or negative
effort becomes 0 (the minimum, never full effort), one above the limit the limit; a command
without efforts gets the full limit.

States: a /joint_states message naming a joint twice is refused whole. Samples are merged per
joint (drivers may publish arm and hand separately), each at its measurement time: the stamp's
age (`stamp_age`, beyond `stamp_tolerance` of clock offset) when the driver stamps, else arrival.
A sample stamped in the future beyond the tolerance, or implausible (core/control/state_check.py:
outside the limits, moving faster than the joint can, velocity inconsistent with position) makes
its joint stale until a plausible one comes; samples older than the joint's last are ignored.
While any joint's state is older than `state_timeout` nothing is published at all, since a robot
whose state is unknown is not commanded. A clock that runs backwards makes every joint stale and
restarts the watchdog: a hold follows once states come, never silence.

Holds: with no accepted command for `command_timeout`, or while the e-stop is latched, the output
holds: the arm goes to the measured position from the moment the hold began, the hand to its last
output when `hold_keeps_grip` (a held object stays held), else measured; it gets there within the
same motion bounds (decelerating, no step). E-stop latches on a true input, or at start-up with
`start_latched` (what a real-robot profile sets; the sim profile starts unlatched), and clears
only through `reset_estop()`, which refuses while the e-stop input still reads true.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from drex_ros.core.control.motion_bounds import MotionBounds
from drex_ros.core.control.state_check import StateCheck, StateCheckConfig
from drex_ros.core.robot.joints import JointIndex
from drex_ros.core.robot.model import ARM_JOINTS, JointLimits

# Panda per-joint limits, Franka "Robot and interface specifications" (Limits for Panda):
# https://frankaemika.github.io/docs/control_parameters.html#limits-for-panda
FRANKA_VELOCITY = (2.175,) * 4 + (2.61,) * 3  # rad/s
FRANKA_ACCELERATION = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0)  # rad/s^2
FRANKA_JERK = (7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0)  # rad/s^3
ANY_SOURCE = "any"


class SafetyConfigError(ValueError):
    """A parameter the gate refuses; the message names it."""


@dataclass(frozen=True)
class SafetyConfig:
    position_margin: float = 0.02  # rad inside the URDF limits
    max_step_arm: float = 0.15  # rad from the measured position
    max_step_hand: float = 0.6  # rad from the measured position
    velocity_scale: float = 0.5  # fraction of the URDF velocity limit (<= 1)
    effort_scale: float = 1.0  # fraction of the URDF effort limit (<= 1)
    dynamics_scale: float = 0.5  # fraction of the arm's acceleration and jerk limits (<= 1)
    arm_max_acceleration: tuple[float, ...] = FRANKA_ACCELERATION  # rad/s^2, at most Franka's
    arm_max_jerk: tuple[float, ...] = FRANKA_JERK  # rad/s^3, at most Franka's
    max_dt: float = 0.1  # s; a longer gap between outputs restarts the motion at rest
    command_timeout: float = 0.1  # s without an accepted command -> hold
    state_timeout: float = 0.1  # s; older measured state -> publish nothing
    stamp_tolerance: float = 0.05  # s of clock offset between the driver's stamps and this clock
    state_limit_tolerance: float = 0.05  # rad: a measured joint farther outside its limits is implausible
    state_rate_scale: float = 1.5  # x velocity limit: a measured joint moving faster is implausible
    state_jump_tolerance: float = 0.02  # rad of measurement noise allowed on top
    state_velocity_tolerance: float = 0.5  # rad/s: measured velocity vs position change
    hold_keeps_grip: bool = True
    start_latched: bool = False  # come up with the e-stop latched (real robot: true)

    def validate(self, limits: JointLimits) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            values = np.atleast_1d(np.asarray(value, dtype=float))
            zero_ok = f.name in ("position_margin", "stamp_tolerance", "state_jump_tolerance")
            if not np.all(np.isfinite(values)) or np.any(values < 0) or (not zero_ok and np.any(values == 0)):
                raise SafetyConfigError(f"safety {f.name} must be a positive finite number, got {value}")
        for name in ("velocity_scale", "effort_scale", "dynamics_scale"):
            if getattr(self, name) > 1.0:
                raise SafetyConfigError(f"safety {name} must be at most 1 (the hardware's limit), "
                                        f"got {getattr(self, name)}")
        for name, ceiling in (("arm_max_acceleration", FRANKA_ACCELERATION), ("arm_max_jerk", FRANKA_JERK)):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (len(ceiling),) or np.any(value > np.asarray(ceiling)):
                raise SafetyConfigError(f"safety {name} must be {len(ceiling)} values at most Franka's {ceiling}, "
                                        f"got {getattr(self, name)}")
        arm = np.array([n in ARM_JOINTS for n in limits.names])
        span = np.asarray(limits.upper, float) - np.asarray(limits.lower, float)
        for name, group in (("max_step_arm", arm), ("max_step_hand", ~arm)):
            if group.any() and getattr(self, name) > span[group].max():
                raise SafetyConfigError(f"safety {name} {getattr(self, name)} rad is beyond the joints' range "
                                        f"({span[group].max():.3f} rad)")


@dataclass
class SafetyOutput:
    positions: np.ndarray  # canonical order, all joints
    efforts: np.ndarray
    mode: str  # "command" or "hold"
    reasons: Counter  # what was clamped or refused in this output
    velocities: np.ndarray  # the positions' rate of change over the gate's last interval (its own clock)


class SafetyGate:
    """Stateful clamp + motion bounds + watchdog + e-stop latch. Times are seconds on one clock."""

    def __init__(self, limits: JointLimits, config: SafetyConfig | None = None) -> None:
        c = self.config = config or SafetyConfig()
        c.validate(limits)
        self.names = tuple(limits.names)
        self._joints = JointIndex(self.names)
        lower, upper = np.asarray(limits.lower, float), np.asarray(limits.upper, float)
        mid = 0.5 * (lower + upper)
        # A joint narrower than twice the margin is pinned to its middle rather than inverted.
        self.lower = np.minimum(lower + c.position_margin, mid)
        self.upper = np.maximum(upper - c.position_margin, mid)
        self._is_arm = np.array([name in ARM_JOINTS for name in self.names])
        velocity = np.asarray(limits.velocity, float).copy()
        arm = np.flatnonzero(self._is_arm)
        velocity[arm] = np.minimum(velocity[arm], FRANKA_VELOCITY[: arm.size])
        self.max_velocity = c.velocity_scale * velocity
        self.max_acceleration, self.max_jerk = np.full(len(self.names), np.inf), np.full(len(self.names), np.inf)
        self.max_acceleration[arm] = c.dynamics_scale * np.asarray(c.arm_max_acceleration)[: arm.size]
        self.max_jerk[arm] = c.dynamics_scale * np.asarray(c.arm_max_jerk)[: arm.size]
        self.max_effort = c.effort_scale * np.asarray(limits.effort, float)
        self.max_step = np.where(self._is_arm, c.max_step_arm, c.max_step_hand)
        self._bounds = MotionBounds(self.lower, self.upper, self.max_velocity, self.max_acceleration,
                                    self.max_jerk, max_gap=c.max_dt)
        self._check = StateCheck(lower, upper, np.asarray(limits.velocity, float), StateCheckConfig(
            c.state_limit_tolerance, c.state_rate_scale, c.state_jump_tolerance, c.state_velocity_tolerance))
        n = len(self.names)
        self._state_q = np.full(n, np.nan)
        self._state_t = np.full(n, -np.inf)
        self._prev_effort = self.max_effort.copy()
        self._last_command_t = -np.inf
        self._last_stamp = -np.inf
        self._clock = -np.inf
        self._hold: tuple[np.ndarray, np.ndarray] | None = None
        self._hold_reason = ""
        self._pending_reason = ""
        self.owner = ANY_SOURCE
        self.estop_latched = bool(c.start_latched)
        self.estop_input = False
        self.counters: Counter = Counter()

    # ---- inputs -------------------------------------------------------------------------
    def on_state(self, names: Sequence[str], positions: Sequence[float], t: float,
                 velocities: Sequence[float] = (), stamp_age: float | None = None) -> None:
        """Merge a measured joint state (any subset of joints; unknown names ignored).

        stamp_age: now minus the message's header stamp on the driver's clock (None: not stamped,
        judged by arrival)."""
        self._observe_clock(t)
        if len(names) != len(positions):
            self.counters["state_malformed"] += 1
            return
        m = self._joints.map(names)
        if m.duplicated.any():
            self.counters["state_duplicate"] += 1
            return
        sample_t = self._sample_time(t, stamp_age)
        if sample_t is None:
            self._state_t[m.dst] = -np.inf
            return
        q = np.asarray(positions, dtype=float)[m.src]
        v = np.asarray(velocities, dtype=float)[m.src] if len(velocities) == len(names) else np.full(q.shape, np.nan)
        newer = ~(sample_t < self._check.t[m.dst])  # NaN (no sample yet) compares False
        if not newer.all():
            self.counters["state_out_of_order"] += int((~newer).sum())
        dst, q, v = m.dst[newer], q[newer], v[newer]
        ok = self._check.check(dst, q, v, sample_t)
        self._state_q[dst[ok]] = q[ok]
        self._state_t[dst[ok]] = sample_t
        if not ok.all():
            self._state_t[dst[~ok]] = -np.inf
            self.counters["state_implausible"] += int((~ok).sum())

    def _sample_time(self, t: float, stamp_age: float | None) -> float | None:
        if stamp_age is None:
            return t
        tol = self.config.stamp_tolerance
        if not np.isfinite(stamp_age) or stamp_age < -tol:
            self.counters["state_future_stamp"] += 1
            return None
        if stamp_age - tol > self.config.state_timeout:
            self.counters["state_old_stamp"] += 1
            return None
        return t - max(0.0, stamp_age - tol)

    def state_age(self, t: float) -> float:
        return float(t - self._state_t.min())

    def state_fresh(self, t: float) -> bool:
        return self.state_age(t) <= self.config.state_timeout

    def measured(self) -> np.ndarray:
        return self._state_q.copy()

    def set_owner(self, name: str) -> None:
        """The command source granted from now on: "any" takes every source, "" none."""
        if name != self.owner:
            self.owner = name
            self.counters["owner_changed"] += 1

    def set_estop(self, engaged: bool, t: float) -> None:
        self._observe_clock(t)
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
        # The hold goes on with the same target (a reset moves nothing) until a command is accepted.
        self._last_command_t = -np.inf
        if self._hold is not None:
            self._hold_reason = "watchdog"
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
                   t: float, source: str = "", stamp: float | None = None) -> SafetyOutput | None:
        """Clamp one command from `source` (header stamp `stamp`, 0/None: unstamped). None means
        publish nothing: refused (see the module docstring), stale state, or e-stop latched."""
        self._observe_clock(t)
        if len(positions) != len(names) or (len(efforts) and len(efforts) != len(names)):
            return self._refuse("malformed_command")
        if self.owner != ANY_SOURCE and (not self.owner or source != self.owner):
            return self._refuse("not_owner")
        if stamp and stamp < self._last_stamp:
            return self._refuse("old_command_stamp")
        m = self._joints.map(names)
        values = np.asarray(positions, dtype=float)[m.src]
        if not np.isfinite(values).any():
            return self._refuse("noop_command")
        if not self.state_fresh(t):
            return self._refuse("stale_state")
        if self.estop_latched:
            return self._refuse("estop_dropped_command")
        self._last_command_t, self._hold = t, None
        if stamp:
            self._last_stamp = stamp
        reasons: Counter = Counter()
        target, effort = self._fallback()
        target[m.dst] = values
        effort[m.dst] = np.asarray(efforts, dtype=float)[m.src] if len(efforts) else self.max_effort[m.dst]
        if m.unknown:
            reasons["unknown_joint"] += m.unknown
        if m.duplicated.any():
            reasons["duplicate_joint"] += int(m.duplicated.sum())
        bad = ~np.isfinite(target)
        if bad.any():
            reasons["nonfinite_position"] += int(bad.sum())
            target[bad] = self._fallback()[0][bad]
        out = SafetyOutput(self._move(self._clip_target(target, reasons), t, reasons),
                           self._clip_effort(effort, reasons), "command", reasons, self._bounds.velocity)
        self.counters.update(reasons)  # holds are counted per episode (watchdog_hold, estop_latched, forced_hold)
        return out

    def on_tick(self, t: float) -> SafetyOutput | None:
        """Periodic check: returns a hold output when the watchdog or e-stop demands one."""
        self._observe_clock(t)
        if not self.state_fresh(t):
            if np.isfinite(self._state_q).any() or self._bounds.q is not None:
                self.counters["stale_state"] += 1
            return None
        if self.estop_latched:
            if self._hold is None:
                self._begin_hold("estop")
        elif t - self._last_command_t > self.config.command_timeout:
            if self._hold is None:
                reason, self._pending_reason = self._pending_reason or "watchdog", ""
                self._begin_hold(reason)
                if reason == "watchdog":
                    self.counters["watchdog_hold"] += 1
        else:
            return None
        q, e = self._hold
        return SafetyOutput(self._move(q, t, Counter()), e.copy(), "hold", Counter({self._hold_reason: 1}),
                            self._bounds.velocity)

    @property
    def hold_reason(self) -> str:
        return self._hold_reason if self._hold is not None else ""

    # ---- internals ----------------------------------------------------------------------
    def _refuse(self, reason: str) -> None:
        self.counters[reason] += 1
        return None

    def _observe_clock(self, t: float) -> None:
        """A clock that went backwards: no state, no command and no output time can be trusted."""
        if t < self._clock:
            self.counters["clock_backwards"] += 1
            self._state_t[:] = -np.inf
            self._check.forget()
            self._last_command_t = self._last_stamp = -np.inf
            self._bounds.t = -np.inf  # the next output restarts at rest where the last one was
        self._clock = t

    def _fallback(self) -> tuple[np.ndarray, np.ndarray]:
        """What a joint without a usable command gets: its previous output, else measured."""
        q = self._bounds.q if self._bounds.q is not None else self._state_q
        return q.copy(), self._prev_effort.copy()

    def _clip_target(self, target: np.ndarray, reasons: Counter) -> np.ndarray:
        q_meas = self._state_q
        step_lo = np.maximum(self.lower, q_meas - self.max_step)
        step_hi = np.minimum(self.upper, q_meas + self.max_step)
        for name, mask in (("position_limit", (target < self.lower) | (target > self.upper)),
                           ("max_step", (target < q_meas - self.max_step) | (target > q_meas + self.max_step))):
            if mask.any():
                reasons[name] += int(mask.sum())
        # Measured outside the limits (step box empty): the limit point nearest the measured position.
        return np.where(step_lo <= step_hi, np.clip(target, step_lo, step_hi), np.clip(q_meas, self.lower, self.upper))

    def _clip_effort(self, effort: np.ndarray, reasons: Counter) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(effort) | (effort < 0)
            over = ~bad & (effort > self.max_effort)
        if bad.any():
            reasons["bad_effort"] += int(bad.sum())  # NaN, inf or negative: the minimum, never full effort
        if over.any():
            reasons["max_effort"] += int(over.sum())
        self._prev_effort = np.where(bad, 0.0, np.minimum(effort, self.max_effort))
        return self._prev_effort.copy()

    def _move(self, target: np.ndarray, t: float, reasons: Counter) -> np.ndarray:
        if self._bounds.q is None:
            return self._bounds.restart(self._state_q, t)
        return self._bounds.step(target, t, reasons)

    def _begin_hold(self, reason: str) -> None:
        q = np.clip(self._state_q, self.lower, self.upper)
        e = self.max_effort.copy()
        if self.config.hold_keeps_grip and self._bounds.q is not None:
            hand = ~self._is_arm
            q[hand], e[hand] = self._bounds.q[hand], self._prev_effort[hand]
        q = np.where(np.isfinite(q), q, 0.5 * (self.lower + self.upper))
        self._hold = (q, e)
        self._hold_reason = reason
        self._last_stamp = -np.inf  # a new episode: an upstream that restarted its clock is heard again
