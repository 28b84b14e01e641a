"""The policy's control step: inputs -> observation -> ONNX -> full-robot command.

One `PolicyLoop.step(now)` per control period:
1. refuse (no command, a reason) when disabled or when an input the model declares is
   missing or stale;
2. run the model and decode its action;
3. merge into a command for every robot joint: joints in the model's action come from the
   model, other joints from the latest arm reference (IK waypoints from the task), else
   from the measured position captured when the policy was enabled;
4. blend in: for `blend_steps` steps after the policy starts, the command moves linearly
   from the measured position to the merged target; after a refusal, from the policy's own
   last command instead: the robot kept that command meanwhile (the safety node holds the
   hand at it), and the measured posture of fingers stalled on a held object is no squeeze
   at all (a resume from it loosened a grip under load and dropped the object);
5. occlusion: once grasping, the hand hides the markers; for `occluded_object_hold`
   seconds a stale object pose is replaced by the last one seen, carried along with the
   palm (the object is assumed held), instead of stopping the policy mid-lift;
6. phase clock: `phase_time` counts from the enable, unless the task publishes its grasp
   plan's clock (`set_plan_time`); then it is that clock, which stands still while the task
   holds the arm at the lift waiting for the grip to settle. The model was trained with hand
   and arm on one clock; on its own clock the policy went on to its lift-phase finger
   targets while the arm still waited, and the moving thumb rolled a light box out.
7. deadline monitor: a step whose compute time exceeds its budget is an overrun; too many
   overruns within a window stop the policy (the safety watchdog then holds the robot)
   until it is enabled again, rather than letting commands arrive late.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from drex_ros.core.control.hand_hold import CarriedObject
from drex_ros.core.policy.runtime import (
    MissingInput,
    ObservationBuilder,
    PolicyInputs,
    PolicyModel,
    quat_wxyz,
    rotation_from_wxyz,
)
from drex_ros.core.robot.joints import JointIndex
from drex_ros.core.robot.model import RobotModel


@dataclass
class LoopConfig:
    joint_state_timeout: float = 0.1  # s
    object_pose_timeout: float = 0.5  # s
    blend_steps: int = 20
    deadline_fraction: float = 1.0  # compute budget as a fraction of the control period
    # s the object may stay unseen while enabled before the policy refuses; meanwhile it is
    # assumed to move with the palm (held and occluded by the hand). 0 = refuse at once.
    occluded_object_hold: float = 0.0
    max_overruns: int = 3  # this many overruns ...
    overrun_window: int = 20  # ... within this many steps stop the policy


class BlendIn:
    """Linear blend from a start position to the target over `steps` calls of `apply`."""

    def __init__(self, steps: int) -> None:
        self.steps = max(int(steps), 0)
        self._start: np.ndarray | None = None
        self._k = 0

    def start(self, q0: np.ndarray) -> None:
        self._start, self._k = np.asarray(q0, dtype=float).copy(), 0

    @property
    def active(self) -> bool:
        return self._start is not None and self._k < self.steps

    def apply(self, target: np.ndarray) -> np.ndarray:
        if not self.active:
            return target
        self._k += 1
        w = self._k / self.steps
        return self._start + w * (np.asarray(target, dtype=float) - self._start)


class DeadlineMonitor:
    """Counts steps that overran their budget; trips after too many within a sliding window."""

    def __init__(self, budget: float, max_overruns: int, window: int) -> None:
        self.budget, self.max_overruns, self.window = budget, max_overruns, max(window, 1)
        self._recent: deque[bool] = deque(maxlen=self.window)
        self.overruns = 0
        self.steps = 0
        self.worst = 0.0
        self.tripped = False

    def reset(self) -> None:
        self._recent.clear()
        self.tripped = False

    def record(self, duration: float) -> bool:
        overran = duration > self.budget
        self.steps += 1
        self.overruns += overran
        self.worst = max(self.worst, duration)
        self._recent.append(overran)
        if sum(self._recent) >= self.max_overruns:
            self.tripped = True
        return overran


@dataclass
class StepResult:
    positions: np.ndarray | None  # all robot joints, canonical order; None = publish nothing
    efforts: np.ndarray | None
    problem: str | None = None
    duration: float = 0.0
    overran: bool = False


class ClockRate:
    """How fast a robot clock runs against the wall (sim time: the real-time factor), smoothed.

    `seconds()` is wall time scaled to that clock, for measuring a step's compute time in the
    robot's seconds: a simulator at 0.2x real time gives a 50 Hz step 100 ms of wall time.
    (A robot clock read inside a callback cannot do this: it only advances between callbacks.)
    """

    def __init__(self, smoothing: float = 0.1, base: Callable[[], float] = time.perf_counter) -> None:
        """base: the wall-rate clock scaled (perf_counter, or thread_time for CPU time)."""
        self.rate, self.smoothing, self.base = 1.0, smoothing, base
        self._last: tuple[float, float] | None = None

    def update(self, robot_now: float, wall_now: float) -> None:
        if self._last is not None:
            d_robot, d_wall = robot_now - self._last[0], wall_now - self._last[1]
            if d_wall > 1e-4 and d_robot >= 0:
                self.rate += self.smoothing * (min(d_robot / d_wall, 100.0) - self.rate)
        self._last = (robot_now, wall_now)

    def seconds(self) -> float:
        return self.base() * self.rate


class PolicyLoop:
    def __init__(self, model: PolicyModel, robot: RobotModel, config: LoopConfig | None = None,
                 step_clock: Callable[[], float] = time.perf_counter) -> None:
        """step_clock: what a step's compute time is measured on: wall time on the robot, a
        ClockRate's seconds on a simulator's clock."""
        self.model, self.robot = model, robot
        self.step_clock = step_clock
        self.config = config or LoopConfig()
        self.names = tuple(robot.joint_names)
        self._joints = JointIndex(self.names)
        self._index = self._joints.index
        self.builder = ObservationBuilder(model.contract, robot, self.config.joint_state_timeout,
                                          self.config.object_pose_timeout)
        self.inputs = PolicyInputs(len(self.names))
        self.joint_times = np.full(len(self.names), -np.inf)
        period = 1.0 / model.contract.control_rate_hz
        self.period = period
        self.monitor = DeadlineMonitor(self.config.deadline_fraction * period, self.config.max_overruns,
                                       self.config.overrun_window)
        self.blend = BlendIn(self.config.blend_steps)
        self.enabled = False
        self.stop_reason = "not enabled"
        self._enabled_at = 0.0
        self._plan_time, self._plan_time_at = 0.0, -np.inf
        self._hold = np.zeros(len(self.names))
        self._ref_idx, self._ref_val = np.zeros(0, dtype=int), np.zeros(0)
        contract = model.contract
        self._target_idx = np.array([self._index[j] for j in contract.position_targets], dtype=int)
        self._grip_idx = np.array([self._index[j] for j in contract.grip_effort], dtype=int)
        self._restart_blend = True
        self._last_command: np.ndarray | None = None  # since the last enable
        self._full_effort = np.asarray(robot.limits.effort, dtype=float)
        self.refusals = 0
        self._carried = CarriedObject()
        self._last_seen = -np.inf
        self.occluded_steps = 0

    # ---- inputs -------------------------------------------------------------------------
    def update_joint_state(self, names: Sequence[str], position: Sequence[float], velocity: Sequence[float],
                           effort: Sequence[float], now: float) -> None:
        """Merge one JointState (any subset of joints; velocity/effort may be empty)."""
        inp = self.inputs
        m = self._joints.map(names)
        taken = m.src < len(position)
        src, dst = m.src[taken], m.dst[taken]
        inp.position[dst] = np.asarray(position, dtype=float)[src]
        inp.velocity[dst] = _padded(velocity, len(names))[src]
        inp.effort[dst] = _padded(effort, len(names))[src]
        self.joint_times[dst] = now
        inp.joint_state_time = float(self.joint_times.min())

    def update_object_pose(self, position: Sequence[float], quat_wxyz: Sequence[float], now: float) -> None:
        self.inputs.object_position = np.asarray(position, dtype=float)
        self.inputs.object_quat = np.asarray(quat_wxyz, dtype=float)
        self.inputs.object_pose_time = now

    def update_object_mass(self, mass: float, friction: float | None) -> None:
        self.inputs.object_mass = float(mass)
        self.inputs.object_friction = None if friction is None else float(friction)

    def set_plan_time(self, plan_time: float, now: float) -> None:
        """The task's grasp-plan clock, received at `now`; it drives phase_time after an enable."""
        if np.isfinite(plan_time):
            self._plan_time, self._plan_time_at = float(plan_time), now

    def following_plan_clock(self) -> bool:
        return self._plan_time_at >= self._enabled_at

    def set_object_size(self, size: Sequence[float] | None) -> None:
        self.inputs.object_size = None if size is None or len(size) == 0 else np.asarray(size, dtype=float)

    def set_arm_reference(self, names: Sequence[str], positions: Sequence[float]) -> list[str]:
        """Store the task's reference for non-policy joints; returns names it ignored."""
        ignored = [n for n, p in zip(names, positions, strict=False) if n not in self._index or not np.isfinite(p)]
        kept = [(self._index[n], float(p)) for n, p in zip(names, positions, strict=False)
                if n in self._index and np.isfinite(p)]
        self._ref_idx = np.array([i for i, _ in kept], dtype=int)
        self._ref_val = np.array([p for _, p in kept])
        return ignored

    # ---- enable / disable -----------------------------------------------------------------
    def measured_fresh(self, now: float) -> bool:
        return (now - self.inputs.joint_state_time <= self.config.joint_state_timeout
                and bool(np.all(np.isfinite(self.inputs.position))))

    def enable(self, now: float) -> tuple[bool, str]:
        if not self.measured_fresh(now):
            return False, "cannot enable: no fresh /joint_states for every robot joint"
        self._hold = self.inputs.position.copy()
        self._enabled_at = now
        self._carried.release()
        self._restart_blend, self._last_command = True, None
        self.monitor.reset()
        self.enabled, self.stop_reason = True, ""
        return True, f"policy enabled; blending in over {self.blend.steps} steps"

    def disable(self, reason: str) -> None:
        self.enabled, self.stop_reason = False, reason

    # ---- occlusion -----------------------------------------------------------------------
    def _carry_occluded_object(self, now: float) -> None:
        """Remember the object in the palm frame while seen; move it with the palm while hidden."""
        inp, hold = self.inputs, self.config.occluded_object_hold
        if hold <= 0 or inp.object_position is None or not np.all(np.isfinite(inp.position)):
            return
        palm = self.robot.palm_pose(inp.position)
        age = now - inp.object_pose_time
        if age <= self.config.object_pose_timeout and inp.object_pose_time >= self._enabled_at:
            self._carried.anchor(palm, inp.object_position, rotation_from_wxyz(inp.object_quat))
            self._last_seen = inp.object_pose_time
        elif self._carried.anchored and now - self._last_seen <= hold:
            inp.object_position = self._carried.position(palm)
            inp.object_quat = quat_wxyz(self._carried.rotation(palm))
            inp.object_pose_time = now
            self.occluded_steps += 1

    # ---- the control step -------------------------------------------------------------------
    def step(self, now: float) -> StepResult:
        if not self.enabled:
            return StepResult(None, None, f"disabled: {self.stop_reason}")
        t0 = self.step_clock()
        self.inputs.phase_time = self._plan_time if self.following_plan_clock() else now - self._enabled_at
        self._carry_occluded_object(now)
        try:
            obs = self.builder.build(self.inputs, now)
            action = self.model.act(obs)
            if not np.all(np.isfinite(action)):
                raise ValueError("policy output holds non-finite values")
        except (MissingInput, ValueError) as exc:
            self._restart_blend = True  # resume from the last command, which the robot kept
            self.refusals += 1
            return StepResult(None, None, str(exc), self.step_clock() - t0)
        # Same mapping as policy.decode_action, on precomputed indices (this runs every period).
        positions = self._hold.copy()
        positions[self._ref_idx] = self._ref_val
        n = len(self._target_idx)
        positions[self._target_idx] = action[:n]
        effort = self._full_effort.copy()
        if len(self._grip_idx):
            effort[self._grip_idx] *= min(max(float(action[n]), 0.0), 1.0)
        if self._restart_blend:
            self.blend.start(self.inputs.position if self._last_command is None else self._last_command)
            self._restart_blend = False
        positions = self.blend.apply(positions)
        self._last_command = positions.copy()
        duration = self.step_clock() - t0
        overran = self.monitor.record(duration)
        if self.monitor.tripped:
            self.disable(f"deadline: {self.monitor.max_overruns} overruns of the {self.monitor.budget * 1e3:.2f} ms "
                         f"budget within {self.monitor.window} steps (worst {self.monitor.worst * 1e3:.2f} ms)")
            return StepResult(None, None, self.stop_reason, duration, overran)
        return StepResult(positions, effort, None, duration, overran)


def _padded(values: Sequence[float], n: int) -> np.ndarray:
    """`values` as n floats, NaN past their end (a JointState may leave velocity or effort short)."""
    out = np.full(n, np.nan)
    k = min(len(values), n)
    out[:k] = np.asarray(values, dtype=float)[:k]
    return out
