"""Running a probe on a robot, without ROS: buffers of what was measured, the command stream with
its stall handling, and the push-then-weigh decision. mass_id_node injects its clock, publisher,
planners and logger; everything here is tested without DDS.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from drex_ros.core.massid.identify import identify
from drex_ros.core.massid.push_probe import ProbeError, ProbePlan, ProbePlanError
from drex_ros.core.massid.recording import recording_from_buffers
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassEstimate, MassIdConfig, RecordingError
from drex_ros.core.massid.weigh import weighing_reason, with_push_friction
from drex_ros.core.robot.grasp_plan import object_yaw

BUFFER_S = 60.0  # s of measurements kept: a probe and the second before it fit easily
JOINT_CATCH_UP_S = 30.0  # wall seconds the joint-state callbacks may lag behind the probe's end
SPHERE_NOT_PUSHED = ("a sphere is not pushed: it rolls off the palm and on out of reach (in-process it left at "
                     "0.34 m/s and was 63 cm away when the probe ended), and its push reads the mass only to "
                     "+/-20%; push_spheres:=true pushes it anyway")


class ProbeBuffers:
    """Joint states, applied commands and object poses as they arrive, (stamp, receipt, ...)
    tuples on the node's clock; thread-safe, trimmed to the last BUFFER_S."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.joints: deque = deque()  # (stamp, recv, q, v, effort)
        self.commands: deque = deque()  # (stamp, recv, q)
        self.poses: deque = deque()  # (stamp, recv, position, quat wxyz)

    def add(self, buf: deque, item: tuple) -> None:
        with self._lock:
            buf.append(item)
            while buf and buf[0][1] < item[1] - BUFFER_S:
                buf.popleft()

    def last_joint(self) -> tuple | None:
        with self._lock:
            return self.joints[-1] if self.joints else None

    def recent_poses(self, since: float) -> list[tuple]:
        with self._lock:
            return [p for p in self.poses if p[1] > since]

    def recording(self, t_from: float, shape: str, size: tuple[float, ...], command_topic: str,
                  min_poses: int = 10) -> Recording:
        with self._lock:
            joints = [j for j in self.joints if j[0] >= t_from]
            commands = [c for c in self.commands if c[1] >= t_from]
            poses = [p for p in self.poses if p[0] >= t_from]
        return recording_from_buffers(joints, commands, poses, shape, size, command_topic, min_poses)


def resting_pose(buffers: ProbeBuffers, now: Callable[[], float], n: int, wait_s: float,
                 topic: str) -> tuple[np.ndarray, float]:
    """The object's resting position (median of the last n poses within 2 s) and yaw."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        recent = buffers.recent_poses(now() - 2.0)
        if len(recent) >= n:
            pos = np.median(np.array([p[2] for p in recent[-n:]]), axis=0)
            return pos, object_yaw(recent[-1][3])
        time.sleep(0.05)
    raise ProbeError(f"fewer than {n} object poses on {topic} in the last 2 s: is the object tracked?")


def latest_joint_positions(buffers: ProbeBuffers, wait_s: float, topic: str) -> np.ndarray:
    deadline = time.monotonic() + wait_s
    while True:
        last = buffers.last_joint()
        if (last is not None and np.all(np.isfinite(last[2]))) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if last is None or not np.all(np.isfinite(last[2])):
        raise ProbeError(f"no complete joint state on {topic}")
    return np.array(last[2], float)  # a copy: the buffer may hold read-only views into messages


@dataclass
class StreamSettings:
    rate_hz: float = 250.0
    timeout_s: float = 600.0  # wall-clock cap on running the probe, however slowly time runs
    clock_stall_s: float = 10.0  # wall seconds the node's clock may stand still before "time is not running"
    stall_pause_s: float = 0.2  # a gap this long between ticks is a stall: the plan pauses for it
    stall_budget_s: float = 3.0  # ... up to this much in all


class CommandStream:
    """Streams a plan's commands on ticks of a steady timer, indexed by the node's (sim) clock.

    A stalled node (a loaded host can starve a Python timer) sent nothing meanwhile and the
    drivers held the last target; jumping to the command for the current time would be a lurch
    of centimetres into the object, a push the replay cannot reproduce. The plan is paused
    instead and resumes where it stopped. The index never goes back: a clock that jumps back
    must not replay an earlier part of the probe. Ticking on a steady clock while indexing by
    sim time repeats a command when the sim runs slow, rather than sending none (safety's
    watchdog would turn the push into stop-and-go).
    """

    def __init__(self, settings: StreamSettings, now: Callable[[], float],
                 publish: Callable[[np.ndarray], None]) -> None:
        self.settings, self._now, self._publish = settings, now, publish
        self.plan: ProbePlan | None = None
        self.done = threading.Event()
        self.abort_reason = ""
        self.stalls: list[float] = []
        self._k = 0
        self._t_start = self._t_last_tick = 0.0

    def start(self, plan: ProbePlan) -> None:
        if self.abort_reason:
            raise ProbeError(f"probe aborted: {self.abort_reason}")
        self.done.clear()
        self._t_start = self._t_last_tick = self._now()
        self._k = 0
        self.stalls = []
        self.plan = plan

    def tick(self) -> None:
        plan, s = self.plan, self.settings
        if plan is None:
            return
        now = self._now()
        gap = now - self._t_last_tick
        if self._k > 0 and gap > s.stall_pause_s and sum(self.stalls) + gap <= s.stall_budget_s:
            self._t_start += gap - 1.0 / s.rate_hz
            self.stalls.append(gap)
        self._t_last_tick = now
        k = max(self._k, int((now - self._t_start) * s.rate_hz))
        self._k = k
        if k >= len(plan.commands):
            self.done.set()
            k = len(plan.commands) - 1
        self._publish(plan.commands[k])

    def wait(self) -> None:
        """Block until the plan is streamed; ProbeError if aborted, if the node's clock stands still
        (no simulator, no /clock), or past the wall-clock cap. A slow clock is not a failure: on a
        loaded host the simulator runs at a fraction of real time and the probe just takes longer."""
        s = self.settings
        cap = time.monotonic() + s.timeout_s
        clock, moved = self._now(), time.monotonic()
        try:
            while not self.done.wait(timeout=0.2) and not self.abort_reason:
                wall = time.monotonic()
                if self._now() > clock:
                    clock, moved = self._now(), wall
                elif wall - moved > s.clock_stall_s:
                    raise ProbeError(f"time is not running: the node's clock stood still for {s.clock_stall_s:.0f} s "
                                     "during the probe (is the simulator or the /clock publisher up?)")
                if wall > cap:
                    raise ProbeError(f"the probe did not finish within {s.timeout_s:.0f} s")
        finally:
            self.plan = None
        if self.abort_reason:
            raise ProbeError(f"probe aborted: {self.abort_reason}")

    def abort(self, reason: str) -> None:
        self.abort_reason = reason
        self.done.set()


def wait_for_joint_states(buffers: ProbeBuffers, t_end: float, aborted: Callable[[], bool]) -> None:
    """Callbacks may lag on a busy host: wait until the joint states reach the probe's end, and
    refuse a recording whose end (the push) is missing."""
    deadline = time.monotonic() + JOINT_CATCH_UP_S
    last = float("-inf")
    while time.monotonic() < deadline and not aborted():
        j = buffers.last_joint()
        last = j[0] if j is not None else float("-inf")
        if last >= t_end - 0.01:
            return
        time.sleep(0.02)
    raise RecordingError(f"the recorded joint states end {t_end - last:.2f} s before the probe did, "
                         f"{JOINT_CATCH_UP_S:.0f} s after it: this node could not keep up with "
                         "/joint_states, and the push is not in the recording")


@dataclass
class ProbePolicy:
    """Which probes run: mass_id_node's parameters of the same names."""

    shape: str
    identify: bool = True
    push_spheres: bool = False
    weigh_spheres: bool = False
    weigh_fallback: bool = True


def probe_and_identify(policy: ProbePolicy, cfg: MassIdConfig, push: Callable[[], Recording],
                       weigh: Callable[[], Recording], save: Callable[[Recording, str], None],
                       log: Callable[[str], None], warn: Callable[[str], None]) -> MassEstimate | None:
    """The push (none for a sphere), then the weighing probe where the push fell short.

    None when identification is off (the recordings only: the weighing probe follows every push
    then, and whoever identifies the bags decides which one counts). A refused push recording is
    followed by the weighing too; if that gives no number either, the push's refusal is raised.
    """
    pushed, refused = None, None
    if policy.shape == "sphere" and not policy.push_spheres:
        if not policy.weigh_spheres:
            raise ProbePlanError(SPHERE_NOT_PUSHED)
        why = "a sphere is weighed, not pushed"
    else:
        rec = push()
        save(rec, "massid")
        if not policy.identify:
            if not policy.weigh_fallback:
                return None
            why = "identification is off: every push is followed by the weighing probe"
        else:
            log("identifying the push")
            try:
                pushed = identify(rec, cfg, progress=log)
            except RecordingError as exc:
                if not policy.weigh_fallback:
                    raise
                refused = exc
            why = weighing_reason(pushed, cfg, str(refused or "")) if policy.weigh_fallback else ""
            if not why:
                return pushed
    log(f"weighing the object: {why}")
    try:
        rec = weigh()
        save(rec, "weigh")
        if not policy.identify:
            return None
        weighed = identify(rec, cfg, progress=log, weighing=True)
    except (RecordingError, ProbePlanError) as exc:
        weighed, failure = None, str(exc)
    else:
        failure = weighed.reason
    if weighed is not None and weighed.identifiable:
        return with_push_friction(weighed, pushed, cfg)
    warn(f"weighing gave no number ({failure}): the push's answer stands")
    if refused is not None:
        raise RecordingError(f"{refused}; weighing: {failure}")
    if pushed is None:  # a sphere, weighed instead of pushed
        raise RecordingError(failure)
    return pushed if pushed.identifiable else replace(pushed, reason=f"{pushed.reason}; weighing: {failure}")
