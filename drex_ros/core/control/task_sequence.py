"""The task orchestrator's state machine: perceive -> probe -> identify -> grasp -> lift -> hold.

Pure logic, clocked by the caller: `TaskSequence.update(obs)` takes what the node has
observed (times in seconds of the robot's clock) and returns what to do. Every phase has
a timeout, and the inputs each phase depends on are watched for staleness, so a dead
driver, camera or node ends the run in `failed` with a reason instead of hanging; the
caller then disables the policy and the safety node's watchdog holds the robot still.

Probing vs identifying is read off the command stream: the mass-ID node's push sends
commands; once they stop while the identification request is still open, the node is
computing.

The grasp plan's clock (the arm reference) runs from the start of the grasp, but it waits
at the end of the close phase until the grip has settled on the object (fingers stalled on
it and still): the policy closes the hand on its own clock, and a lift that starts while
the fingers still close pulls the object out of the hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from drex_ros.core.identify_reply import is_unidentifiable


class Phase(StrEnum):
    IDLE = "idle"
    PERCEIVING = "perceiving"
    PROBING = "probing"
    IDENTIFYING = "identifying"
    GRASPING = "grasping"
    LIFTING = "lifting"
    HOLDING = "holding"
    DONE = "done"
    FAILED = "failed"
    # Not a phase of a task: the robot calibration's excitation, between tasks (task_node).
    CALIBRATING = "calibrating"


ACTIVE = (Phase.PERCEIVING, Phase.PROBING, Phase.IDENTIFYING, Phase.GRASPING, Phase.LIFTING, Phase.HOLDING)


# kg: the conservative mass to grasp with when identification gives no number. As if heavy: it
# drops nothing the hand can hold but crushes fragile light objects; of the constants swept in
# MODEL_CARD.md it holds the most of a uniform 0.05-1.5 kg mix.
# task_node's default (config/task.yaml), the demo's and `drex eval`'s.
CONSERVATIVE_FALLBACK_MASS = 1.2

@dataclass
class TaskSettings:
    timeouts: dict[str, float] = field(default_factory=lambda: {
        "perceiving": 10.0, "probing": 90.0, "identifying": 60.0, "grasping": 20.0, "lifting": 10.0,
        "holding": 10.0})
    # Task-level watchdogs (the safety node guards the fast loop). A busy node may process a
    # new /clock before the queued state messages, so these leave room for one stall.
    joint_state_timeout: float = 1.0  # s without /joint_states -> failed
    object_pose_timeout: float = 3.0  # s without a pose while it matters -> failed
    # A grasp starts only from a pose this young (policy_node's own limit): the probe moved the
    # object, and a pose from before it, or from before the camera lost it, is not where it is.
    grasp_pose_max_age: float = 0.5
    command_timeout: float = 1.0  # s without policy output while grasping -> failed
    # s without policy output after which the grasp plan's clock stands until it resumes: a plan
    # that ran on while a starved policy was silent had the arm jump ahead when it came back, and
    # under a CPU hog that shook a light box out of the lifting hand.
    plan_pause_after: float = 0.25
    watchdog_strikes: int = 3  # consecutive updates a watchdog problem must persist
    settle_poses: int = 5  # consecutive poses within settle_tolerance to accept the object as seen
    settle_tolerance: float = 0.003  # m
    lift_height: float = 0.10  # m above the start to count as lifted
    hold_time: float = 3.0  # s lifted to count as held
    grip_settle: float = 0.2  # s the grip must stay settled on the object before the arm lifts
    grip_timeout: float = 3.0  # s past the plan's lift time without a settled grip -> failed
    # The probe streams commands at 250 Hz; a pause this long means it is over and the mass-ID
    # node is computing (long enough that a busy host's scheduling hiccup is not taken for it).
    probe_gap: float = 1.0
    skip_identification: bool = False  # grasp with a given mass instead (for comparisons)
    # > 0: when the probe says "unidentifiable", grasp as if the object weighed this much
    # (announced on /drex/object_mass with std NaN) instead of failing the task.
    fallback_mass: float = 0.0
    fallback_friction: float = 0.5


@dataclass
class Observation:
    """What the node saw, in seconds of the robot clock (None = never seen)."""

    now: float
    joint_state_time: float | None = None
    object_position: np.ndarray | None = None
    object_pose_time: float | None = None
    last_command_time: float | None = None  # on /drex/policy/joint_command
    identify_done: bool = False
    identify_ok: bool = False
    identify_message: str = ""
    mass: float | None = None
    grip_settled: bool = False  # fingers stalled on the object and still (hand_hold.grip_settled)


@dataclass
class Actions:
    """What the caller must do after an update."""

    request_identification: bool = False
    start_grasp: bool = False  # plan from start_position, enable the policy, start the arm reference
    publish_fallback_mass: bool = False  # identification gave no number: announce the fallback mass
    stop: bool = False  # disable the policy and the arm reference
    grasp_time: float | None = None  # seconds into the grasp plan, while grasping/lifting/holding


class TaskSequence:
    def __init__(self, settings: TaskSettings | None = None,
                 grasp_phases: dict[str, tuple[float, float]] | None = None) -> None:
        self.settings = settings or TaskSettings()
        self.phase = Phase.IDLE
        self.reason = ""
        self.phase_start = 0.0
        self.durations: dict[str, float] = {}
        self.start_position: np.ndarray | None = None
        self._settled: list[np.ndarray] = []
        self._probe_seen = False
        self._answer_time: float | None = None  # when the mass was known and the grasp waited for a pose
        self._grasp_start = 0.0
        self._plan_wait = 0.0  # s the plan's clock stood at the lift while the grip settled
        self._silent_wait = 0.0  # s it stood while the policy was silent (not the grip's to wait)
        self._last_grasp_update = 0.0
        self._grip_since: float | None = None
        self._lift_start_after: float = 0.0  # plan time at which lifting begins
        self._hold_start_after: float = 0.0
        self._lifted_since: float | None = None
        self._strikes = 0
        self.used_fallback = False
        if grasp_phases:
            self.set_grasp_phases(grasp_phases)

    def set_grasp_phases(self, phases: dict[str, tuple[float, float]]) -> None:
        """Plan-time boundaries from the grasp plan (keys: 'lift', 'hold' needed)."""
        self._lift_start_after = phases["lift"][0]
        self._hold_start_after = phases["hold"][0]

    def grasp_elapsed(self, now: float) -> float | None:
        """Seconds into the grasp plan while grasping, lifting or holding; else None."""
        if self.phase not in (Phase.GRASPING, Phase.LIFTING, Phase.HOLDING):
            return None
        return now - self._grasp_start - self._plan_wait - self._silent_wait

    # --- transitions ------------------------------------------------------------------------
    def start(self, now: float) -> bool:
        if self.phase in ACTIVE:
            return False
        self.durations, self.reason, self.start_position = {}, "", None
        self.used_fallback, self._answer_time = False, None
        self._settled, self._probe_seen, self._lifted_since, self._strikes = [], False, None, 0
        self._enter(Phase.PERCEIVING, now)
        return True

    def fail(self, reason: str, now: float) -> Actions:
        if self.phase in ACTIVE:
            self._enter(Phase.FAILED, now)
            self.reason = reason
        return Actions(stop=True)

    def _enter(self, phase: Phase, now: float) -> None:
        if self.phase in ACTIVE:
            self.durations[self.phase.value] = now - self.phase_start
        self.phase, self.phase_start = phase, now

    # --- the clocked update ---------------------------------------------------------------------
    def update(self, obs: Observation) -> Actions:
        if self.phase not in ACTIVE:
            return Actions()
        problem = self._watchdogs(obs)
        # A node that just woke from a stall may read a new /clock before its queued state
        # messages; a watchdog fires only when its problem persists over consecutive updates.
        self._strikes = self._strikes + 1 if problem else 0
        if self._strikes >= self.settings.watchdog_strikes:
            return self.fail(problem, obs.now)
        handler = {
            Phase.PERCEIVING: self._perceiving,
            Phase.PROBING: self._identifying,
            Phase.IDENTIFYING: self._identifying,
        }.get(self.phase, self._grasping)
        return handler(obs)

    def _watchdogs(self, obs: Observation) -> str:
        s = self.settings
        elapsed = obs.now - self.phase_start
        if elapsed > s.timeouts[self.phase.value]:
            return f"{self.phase.value} timed out after {elapsed:.1f} s"
        if obs.joint_state_time is None or obs.now - obs.joint_state_time > s.joint_state_timeout:
            return "no fresh /joint_states (robot driver or sim down?)"
        # While the hand reaches for it the object rests untouched, and the hand hides it from the
        # camera: the pose it was planned from stands. Once lifting, it must be seen or held.
        pose_matters = self.phase in (Phase.LIFTING, Phase.HOLDING) or (
            self.phase is Phase.PERCEIVING and elapsed > s.object_pose_timeout)
        if pose_matters and (obs.object_pose_time is None or obs.now - obs.object_pose_time > s.object_pose_timeout):
            return "object pose lost (perception down or object out of view)"
        grasp_running = self.phase in (Phase.GRASPING, Phase.LIFTING, Phase.HOLDING)
        if grasp_running and elapsed > s.command_timeout and (
                obs.last_command_time is None or obs.now - obs.last_command_time > s.command_timeout):
            return "policy_node stopped publishing commands"
        return ""

    def _perceiving(self, obs: Observation) -> Actions:
        if obs.object_position is None or obs.object_pose_time is None or obs.object_pose_time < self.phase_start:
            return Actions()
        self._settled.append(np.asarray(obs.object_position, dtype=float))
        self._settled = self._settled[-self.settings.settle_poses:]
        spread = np.ptp(np.array(self._settled), axis=0).max() if len(self._settled) > 1 else np.inf
        if len(self._settled) < self.settings.settle_poses or spread > self.settings.settle_tolerance:
            return Actions()
        if self.settings.skip_identification:
            return self._begin_grasp(obs)
        self._enter(Phase.PROBING, obs.now)
        return Actions(request_identification=True)

    def _identifying(self, obs: Observation) -> Actions:
        if obs.identify_done and self.phase is Phase.PROBING and obs.last_command_time is not None:
            # The answer came within probe_gap of the push's last command (a fast identification):
            # the probe ended with that command, identification took the rest.
            self._enter(Phase.IDENTIFYING, max(self.phase_start, min(obs.last_command_time, obs.now)))
        if obs.identify_done:
            if not obs.identify_ok:
                fallback = self.settings.fallback_mass > 0 and is_unidentifiable(obs.identify_message)
                if not fallback:
                    return self.fail(f"mass identification failed: {obs.identify_message}", obs.now)
                if not self.used_fallback:
                    self.used_fallback = True
                    return Actions(publish_fallback_mass=True)
            if obs.mass is None:
                return Actions()  # the latched mass message is on its way
            return self._grasp_when_seen(obs)
        last = obs.last_command_time
        commands_flowing = last is not None and obs.now - last < self.settings.probe_gap
        self._probe_seen |= commands_flowing
        if self.phase is Phase.PROBING and self._probe_seen and not commands_flowing:
            self._enter(Phase.IDENTIFYING, obs.now)
        return Actions()

    def _grasp_when_seen(self, obs: Observation) -> Actions:
        s = self.settings
        fresh = obs.object_pose_time is not None and obs.now - obs.object_pose_time <= s.grasp_pose_max_age
        if obs.object_position is not None and fresh:
            return self._begin_grasp(obs)
        self._answer_time = obs.now if self._answer_time is None else self._answer_time
        if obs.now - self._answer_time > s.object_pose_timeout:
            seen = "never" if obs.object_pose_time is None else f"{obs.now - obs.object_pose_time:.1f} s ago"
            return self.fail(f"no fresh object pose after the probe (last seen {seen}): object out of view?", obs.now)
        return Actions()

    def _begin_grasp(self, obs: Observation) -> Actions:
        self.start_position = np.asarray(obs.object_position, dtype=float)
        self._enter(Phase.GRASPING, obs.now)
        self._grasp_start, self._plan_wait, self._silent_wait, self._grip_since = obs.now, 0.0, 0.0, None
        self._last_grasp_update = obs.now
        return Actions(start_grasp=True, grasp_time=0.0)

    def _grip_ready(self, obs: Observation) -> bool:
        if not obs.grip_settled:
            self._grip_since = None
            return False
        self._grip_since = obs.now if self._grip_since is None else self._grip_since
        return obs.now - self._grip_since >= self.settings.grip_settle

    def _grasping(self, obs: Observation) -> Actions:
        silent = obs.last_command_time is None or obs.now - obs.last_command_time > self.settings.plan_pause_after
        if silent:
            self._silent_wait += obs.now - self._last_grasp_update
        self._last_grasp_update = obs.now
        t = self.grasp_elapsed(obs.now)
        grip_ready = self._grip_ready(obs)
        if self.phase is Phase.GRASPING and t >= self._lift_start_after:
            if not grip_ready:
                waited = t - self._lift_start_after + self._plan_wait  # since the plan reached the lift
                if waited > self.settings.grip_timeout:
                    return self.fail(f"the grip did not settle on the object within {self.settings.grip_timeout:.1f} s "
                                     "of the planned lift (missed grasp?)", obs.now)
                self._plan_wait = waited
                return Actions(grasp_time=self._lift_start_after)
            self._enter(Phase.LIFTING, obs.now)
        elif self.phase is Phase.LIFTING and t >= self._hold_start_after:
            self._enter(Phase.HOLDING, obs.now)
        if self.phase is Phase.HOLDING:
            lifted = obs.object_position[2] - self.start_position[2] >= self.settings.lift_height
            if not lifted:
                self._lifted_since = None
                if obs.now - self.phase_start > self.settings.hold_time:
                    return self.fail(f"object not held {self.settings.lift_height * 100:.0f} cm up "
                                     f"(height gain {100 * (obs.object_position[2] - self.start_position[2]):.1f} cm)",
                                     obs.now)
            else:
                self._lifted_since = obs.now if self._lifted_since is None else self._lifted_since
                if obs.now - self._lifted_since >= self.settings.hold_time:
                    self._enter(Phase.DONE, obs.now)
        return Actions(grasp_time=t)
