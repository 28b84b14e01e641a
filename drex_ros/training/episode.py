"""One grasp episode in MuJoCo: plan the arm, drive the hand, test lift-and-hold.

The arm follows `core.grasp_plan`; the hand gets position targets and a grip effort (a
fraction of the Allegro joints' 0.7 N*m limit, applied as the hand actuators' force limit)
from a controller at `CONTROL_RATE_HZ`. The expert controller opens the hand into a claw
around the object while approaching, closes it toward a posture past the object's faces
(so the joints press with exactly the effort limit) and keeps the grip effort it was given.
No rendering: episodes are a few hundred ms of CPU.

Success (the issue's definition): the object rises 10 cm above its start and stays at least
that high for `HOLD_CHECK_S` (3 s), checked from `SETTLE_S` after the lift reference ends
(the arm trails its reference by a few cm, so the object is just passing 10 cm then)
through the shake and into the hold.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from drex_ros.core.robot.grasp_plan import HAND_CLOSED, HAND_OPEN, GraspPlan, GraspPlanError, min_jerk, plan_grasp
from drex_ros.core.robot.model import HAND_JOINTS, N_ARM, robot_model
from drex_ros.core.robot.objects import half_extents
from drex_ros.core.sim.scene import ObjectConfig, Scene, SceneConfig
from drex_ros.training.fragility import CRUSH_WINDOW_S

CONTROL_RATE_HZ = 50.0
HAND_EFFORT_LIMIT = 0.7  # N*m, the Allegro joints' limit the grip fraction refers to
LIFT_SUCCESS_M = 0.10
HOLD_CHECK_S = 3.0
SETTLE_S = 0.5


@dataclass
class ObjectSample:
    """One randomized object: what the scene is built from and what the policy is told."""

    shape: str
    size: tuple[float, ...]
    mass: float
    friction: float
    position: tuple[float, float]
    yaw: float
    crush_limit: float = math.inf  # N of sustained squeeze it survives (training.fragility)

    def extents(self) -> np.ndarray:
        """Bounding-box extents (m), the contract's object_size."""
        return 2 * half_extents(self.shape, self.size)

    def to_config(self) -> ObjectConfig:
        return ObjectConfig(shape=self.shape, size=tuple(self.size), mass=self.mass, friction=self.friction,
                            position=tuple(self.position), yaw=self.yaw)


def sample_object(rng: np.random.Generator, mass_range: tuple[float, float] = (0.05, 1.5),
                  friction_range: tuple[float, float] = (0.5, 1.0)) -> ObjectSample:
    """Random shape, size (the gripped width 4-6 cm), pose in the workspace, mass and friction."""
    shape = str(rng.choice(["box", "cylinder", "sphere"]))
    if shape == "box":
        size = (rng.uniform(0.04, 0.06), rng.uniform(0.04, 0.06), rng.uniform(0.04, 0.09))
    elif shape == "cylinder":
        size = (rng.uniform(0.02, 0.03), rng.uniform(0.04, 0.10))
    else:
        size = (rng.uniform(0.02, 0.03),)
    return ObjectSample(
        shape=shape,
        size=tuple(float(s) for s in size),
        mass=float(rng.uniform(*mass_range)),
        friction=float(rng.uniform(*friction_range)),
        position=(float(rng.uniform(0.48, 0.62)), float(rng.uniform(-0.10, 0.10))),
        yaw=float(rng.uniform(-np.pi, np.pi)),
    )


def hold_window(plan: GraspPlan) -> tuple[float, float]:
    t0 = plan.phases()["lift"][1] + SETTLE_S
    return t0, t0 + HOLD_CHECK_S


def expert_hand_targets(plan: GraspPlan, t: float) -> np.ndarray:
    """Open claw until the close phase, then a min-jerk sweep to the closed posture."""
    t0, t1 = plan.phases()["close"]
    return HAND_OPEN + min_jerk((t - t0) / (t1 - t0)) * (HAND_CLOSED - HAND_OPEN)


def expert_effort(plan: GraspPlan, t: float, grip: float) -> float:
    """Full effort while shaping the hand in free space, the grip effort from the close phase on."""
    return 1.0 if t < plan.phases()["close"][0] else grip


@dataclass
class StepInfo:
    """What a controller sees each control step (ground truth; the policy adapter picks its inputs)."""

    t: float
    q: np.ndarray  # 23 joints
    dq: np.ndarray
    tau: np.ndarray
    object_position: np.ndarray
    object_quat: np.ndarray


# A controller maps the step info to (16 hand position targets, grip effort fraction).
Controller = Callable[[StepInfo], tuple[np.ndarray, float]]


@dataclass
class EpisodeResult:
    success: bool
    max_lift: float  # m above the start height
    lift_at_end: float
    peak_grip: float  # largest grip fraction commanded while holding (from the end of the close phase)
    dropped_at: float | None  # plan time the hold check first failed (None if it never did)
    peak_squeeze: float = 0.0  # N, the largest squeeze on the object averaged over CRUSH_WINDOW_S
    crushed_at: float | None = None  # plan time that squeeze first exceeded the object's crush limit
    records: list[tuple[StepInfo, np.ndarray, float]] = field(default_factory=list, repr=False)

    @property
    def held_through_run(self) -> bool:
        """Never dropped and still lifted at the end of the run (`success` also wants the settled
        success window, which a run stopped earlier - an expert trial, a recording - never reaches)."""
        return self.dropped_at is None and self.lift_at_end >= LIFT_SUCCESS_M

    @property
    def outcome(self) -> str:
        """held, dropped or crushed (a crushed object counts as crushed even if it stayed up)."""
        if self.crushed_at is not None:
            return "crushed"
        return "held" if self.success else "dropped"


class GraspEpisode:
    """A scene with one object and its grasp plan; run controllers from the start or from the close phase."""

    def __init__(self, obj: ObjectSample) -> None:
        self.obj = obj
        self.scene = Scene(SceneConfig(object=obj.to_config()))
        q0 = robot_model().home()  # hand straight, as sim_node resets it; the controller opens it
        self.q_start = q0
        self.scene.reset(q0)
        pos, quat = self.scene.object_pose()
        self.start_height = float(pos[2])
        self.plan = plan_grasp(pos, quat, obj.shape, obj.size, q0)
        self.substeps = max(1, round(1.0 / (CONTROL_RATE_HZ * self.scene.timestep)))
        self.dt = self.substeps * self.scene.timestep
        self._checkpoint: np.ndarray | None = None
        self._checkpoint_t = 0.0
        self._spec = mujoco.mjtState.mjSTATE_INTEGRATION

    @property
    def hold_window(self) -> tuple[float, float]:
        """Plan times between which the object must stay >= 10 cm up (3 s from just after the lift)."""
        return hold_window(self.plan)

    def _info(self, t: float) -> StepInfo:
        s = self.scene
        pos, quat = s.object_pose()
        return StepInfo(t, s.joint_positions(), s.joint_velocities(), s.joint_efforts(), pos, quat)

    def _save(self, t: float) -> None:
        m, d = self.scene.model, self.scene.data
        self._checkpoint = np.zeros(mujoco.mj_stateSize(m, self._spec))
        mujoco.mj_getState(m, d, self._checkpoint, self._spec)
        self._checkpoint_t = t

    def run(self, controller: Controller, from_close: bool = False, until: float | None = None,
            record: bool = False, stop_on_drop: bool = False, check_from: float | None = None) -> EpisodeResult:
        """Run the plan with `controller` driving the hand.

        from_close: restart from the state saved at the start of the close phase by an
        earlier full run (the approach does not depend on the grip effort), which makes an
        effort search cheap. until: stop at this plan time (default: the end of the hold check).
        """
        s, plan = self.scene, self.plan
        t_close, t_closed = plan.phases()["close"]
        hold0, hold1 = self.hold_window
        hold0 = hold0 if check_from is None else check_from
        until = hold1 if until is None else until
        if from_close:
            if self._checkpoint is None:
                raise RuntimeError("no close-phase checkpoint: run the episode from the start once")
            mujoco.mj_setState(s.model, s.data, self._checkpoint, self._spec)
            mujoco.mj_forward(s.model, s.data)
            t = self._checkpoint_t
        else:
            s.reset(self.q_start)
            t = 0.0
        n_steps = int(round((until - t) / self.dt))
        max_lift, peak, dropped, records = -np.inf, 0.0, None, []
        squeeze = SqueezeMeter(max(1, round(CRUSH_WINDOW_S / self.dt)), self.obj.crush_limit)
        effort_limits = robot_model().limits.effort.copy()
        for _ in range(n_steps):
            if not from_close and self._checkpoint is None and t >= t_close - 1e-9:
                self._save(t)
            info = self._info(t)
            hand, grip = controller(info)
            grip = float(np.clip(grip, 0.0, 1.0))
            if t >= t_closed:  # the grip while holding, not the free-space closing before contact
                peak = max(peak, grip)
            if record:
                records.append((info, np.asarray(hand, dtype=float).copy(), grip))
            s.set_targets(np.concatenate([plan.arm_targets(t), hand]))
            effort_limits[N_ARM:] = grip * HAND_EFFORT_LIMIT
            s.set_effort_limits(effort_limits)
            s.step(self.substeps)
            t += self.dt
            squeeze.add(s.object_squeeze(), t)
            lift = float(s.object_pose()[0][2]) - self.start_height
            max_lift = max(max_lift, lift)
            if hold0 - 1e-9 <= t <= hold1 + 1e-9 and lift < LIFT_SUCCESS_M and dropped is None:
                dropped = t
                if stop_on_drop:
                    break
        lift_end = float(s.object_pose()[0][2]) - self.start_height
        success = dropped is None and squeeze.crushed_at is None and t >= hold1 - 1e-6
        return EpisodeResult(success, max_lift, lift_end, peak, dropped, squeeze.peak, squeeze.crushed_at, records)


class SqueezeMeter:
    """The squeeze on the object averaged over a window of control steps: its peak, and when it
    first exceeded the crush limit."""

    def __init__(self, window: int, limit: float) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.limit = limit
        self.peak = 0.0
        self.crushed_at: float | None = None

    def add(self, force: float, t: float) -> None:
        self._recent.append(force)
        mean = sum(self._recent) / len(self._recent)
        self.peak = max(self.peak, mean)
        if mean > self.limit and self.crushed_at is None:
            self.crushed_at = t


def expert_controller(plan: GraspPlan, grip: float) -> Controller:
    def control(info: StepInfo) -> tuple[np.ndarray, float]:
        return expert_hand_targets(plan, info.t), expert_effort(plan, info.t, grip)
    return control


def noisy_expert_controller(plan: GraspPlan, grip: float, rng: np.random.Generator, sigma: float = 0.06,
                            tau: float = 0.2) -> Controller:
    """The expert with slowly varying noise on the executed hand targets (DART-style).

    Recorded episodes visit states a little off the expert's path, and are labelled with the
    clean expert action there, so the cloned policy learns to return to the path rather than
    drifting when the runtime's smoothing and blend-in move the hand slightly differently.
    """
    state = np.zeros(len(HAND_JOINTS))
    decay = np.exp(-1.0 / (CONTROL_RATE_HZ * tau))

    def control(info: StepInfo) -> tuple[np.ndarray, float]:
        nonlocal state
        state = decay * state + np.sqrt(1 - decay * decay) * rng.normal(0.0, sigma, len(state))
        return expert_hand_targets(plan, info.t) + state, expert_effort(plan, info.t, grip)
    return control


def reachable_episode(rng: np.random.Generator, mass_range: tuple[float, float],
                      tries: int = 5) -> GraspEpisode | None:
    """An episode for a random object, redrawn while its pose is out of reach (None after `tries`)."""
    for _ in range(tries):
        try:
            return GraspEpisode(sample_object(rng, mass_range=mass_range))
        except GraspPlanError:
            continue
    return None
