"""mass_id_node: runs the push probe on the robot (sim or real) and identifies the object's mass.

Service /drex/identify_mass (std_srvs/Trigger): plans the probe from the latest joint state and
the object's resting pose (/drex/object_pose), streams it as full 23-joint commands on
/drex/policy/joint_command (smoother and safety apply), records /joint_states,
/drex/joint_command and /drex/object_pose meanwhile, identifies (core.massid), and publishes
/drex/object_mass = [mass_kg, std_kg, friction] latched. Where the push did not pin the mass
down (no number, or a std above weigh_above_rel_std) on an object it does not read heavier
than weigh_max_mass, the weighing probe follows (core.weigh_probe: grasp at full grip, lift,
hold, set down) and its reading is published instead, with the friction mu * m of the push over it;
if the weighing fails, the push's answer stands. A probe whose data cannot support an
estimate (unidentifiable, or a recording the identifier refuses), and an object no push can
reach (no probe can be planned), publish nothing and answer success=false, "unidentifiable:
<reason>": the task then grasps with its fallback mass. A probe that could not run (no joint
states, no object pose, aborted, timed out) answers the reason alone.
Optionally saves each probe as an MCAP bag.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from drex_ros.core.bag import BagError
from drex_ros.core.identify_reply import unidentifiable_reply
from drex_ros.core.massid.identify import identify
from drex_ros.core.massid.push_probe import ProbeConfig, ProbeError, ProbePlan, ProbePlanError, plan_probe
from drex_ros.core.massid.recording import write_recording
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassEstimate, MassIdConfig, RecordingError
from drex_ros.core.massid.weigh import weighing_reason, with_push_friction
from drex_ros.core.massid.weigh_probe import plan_weigh_probe
from drex_ros.core.robot.grasp_plan import object_yaw
from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.nodes.ros_io import (
    LATCHED_QOS,
    Diagnostics,
    joint_state_arrays,
    make_joint_state,
    spin_node,
    to_sec,
)

JOINT_CATCH_UP_S = 30.0  # wall seconds the joint-state callbacks may lag behind the probe's end

PARAMETERS = {
    "object_shape": "box",
    "object_size": [0.06, 0.06, 0.06],
    "command_topic": "/drex/policy/joint_command",
    "applied_command_topic": "/drex/joint_command",
    "joint_states_topic": "/joint_states",
    "object_pose_topic": "/drex/object_pose",
    "mass_topic": "/drex/object_mass",
    "service": "/drex/identify_mass",
    "command_rate_hz": 250.0,
    "rest_poses": 10,  # object poses averaged for the resting pose the probe is planned from
    "pose_wait_s": 3.0,  # wait this long (wall) for them
    "probe_timeout_s": 120.0,  # wall-clock limit for running the probe
    "record_dir": "",  # if set, every probe is also saved there as an MCAP bag
    "identify": True,  # false: run and record the probe only (benchmarks identify the bags offline)
    "mass_min": 0.02,
    "mass_max": 3.0,
    "friction_min": 0.1,
    "friction_max": 1.5,
    "threads": 2,
    "max_rel_std": 0.075,  # relative mass std above this -> unidentifiable (no number)
    "max_force_misfit": 0.2,  # N RMS between the replay at the fit and the recorded push force (+ 2x chaos)
    # A gap this long (s, node clock) between two command ticks is a stall of this node: the plan
    # is paused for it instead of jumping ahead (see _tick), up to stall_budget_s in all. (With
    # 0.05 s, a host at load 10 on 2 cores late on every tick crawled the probe past its timeout.)
    "stall_pause_s": 0.2,
    "stall_budget_s": 3.0,
    # A pushed sphere rolls off the palm and on out of reach, and its push reads the mass only to
    # +-20% (always "unidentifiable"): by default a sphere is not pushed at all (see SPHERE_NOT_PUSHED).
    "push_spheres": False,
    # The weighing probe (core.weigh_probe: grasp at full grip, lift, hold, set down) after a push
    # that gave no number or one with a relative std above weigh_above_rel_std, on an object the
    # push does not read heavier than weigh_max_mass (the full grip may drop it). A sphere is
    # weighed instead of pushed only on request: after it is let go it rolls on (and with no push
    # there is no friction for the grasp policy).
    "weigh_fallback": True,
    "weigh_above_rel_std": 0.02,
    "weigh_max_mass": 0.75,
    "weigh_spheres": False,
}
SPHERE_NOT_PUSHED = ("a sphere is not pushed: it rolls off the palm and on out of reach (in-process it left at "
                     "0.34 m/s and was 63 cm away when the probe ended), and its push reads the mass only to "
                     "+/-20%; push_spheres:=true pushes it anyway")
BUFFER_S = 60.0
QUEUE = 5000


class MassIdNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("mass_id_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = self._param
        self._limits = robot_model().limits
        self._names = list(JOINT_NAMES)
        self._diag = Diagnostics(self)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        data_group = ReentrantCallbackGroup()
        # Joint states in their own exclusive group: handled one at a time, in arrival order.
        joint_group = MutuallyExclusiveCallbackGroup()
        self._lock = threading.Lock()
        self._joints: deque = deque()  # (stamp, recv, q, v, effort)
        self._commands: deque = deque()  # (stamp, recv, q)
        self._poses: deque = deque()  # (stamp, recv, position, quat wxyz)
        # Deep queues: every joint state and command matters (the force is inverted step by step).
        self.create_subscription(JointState, p("joint_states_topic"), self._on_joints, QUEUE,
                                 callback_group=joint_group)
        self.create_subscription(JointState, p("applied_command_topic"), self._on_command, QUEUE,
                                 callback_group=data_group)
        self.create_subscription(PoseStamped, p("object_pose_topic"), self._on_pose, 20, callback_group=data_group)
        self._pub_cmd = self.create_publisher(JointState, p("command_topic"), 10)
        self._pub_mass = self.create_publisher(Float64MultiArray, p("mass_topic"), LATCHED_QOS)
        self.create_service(Trigger, p("service"), self._on_identify,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._plan = None
        self._k = 0  # last probe command sent: never goes back
        self._t_start = 0.0
        self._t_last_tick = 0.0
        self._stalls: list[float] = []  # pauses inserted into the running probe (s)
        self._done = threading.Event()
        self._abort_reason = ""
        self._timer = None
        self.get_logger().info(f"ready: {p('service')} probes a {p('object_shape')} {list(p('object_size'))} m")

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _object(self) -> tuple[str, tuple[float, ...]]:
        return self._param("object_shape"), tuple(float(s) for s in self._param("object_size"))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- recording ---------------------------------------------------------------------
    def _trim(self, buf: deque, now: float) -> None:
        while buf and buf[0][1] < now - BUFFER_S:
            buf.popleft()

    def _on_joints(self, msg: JointState) -> None:
        if list(msg.name) == self._names and len(msg.velocity) == len(msg.effort) == len(self._names):
            q, v, e = np.array(msg.position), np.array(msg.velocity), np.array(msg.effort)  # fast path
        else:
            a = joint_state_arrays(msg, JOINT_NAMES)
            q, v, e = a["position"], a["velocity"], a["effort"]
        now = self._now()
        with self._lock:
            self._joints.append((to_sec(msg.header.stamp), now, q, v, e))
            self._trim(self._joints, now)

    def _on_command(self, msg: JointState) -> None:
        a = joint_state_arrays(msg, JOINT_NAMES)
        now = self._now()
        with self._lock:
            self._commands.append((to_sec(msg.header.stamp), now, a["position"]))
            self._trim(self._commands, now)

    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        now = self._now()
        with self._lock:
            self._poses.append((to_sec(msg.header.stamp), now, np.array([p.x, p.y, p.z]),
                                np.array([o.w, o.x, o.y, o.z])))
            self._trim(self._poses, now)

    def _recording(self, t_from: float) -> Recording:
        with self._lock:
            joints = [j for j in self._joints if j[0] >= t_from]
            commands = [c for c in self._commands if c[1] >= t_from]
            poses = [p for p in self._poses if p[0] >= t_from]
        if len(joints) < 50 or len(commands) < 10 or len(poses) < 10:
            raise RecordingError(f"too little data recorded: {len(joints)} joint states, {len(commands)} "
                                 f"commands on {self._param('applied_command_topic')}, {len(poses)} object poses")
        joints.sort(key=lambda j: j[0])  # stamp order (callbacks may deliver out of order)
        joints = [j for i, j in enumerate(joints) if i == 0 or j[0] > joints[i - 1][0]]
        poses.sort(key=lambda p: p[0])
        jt = np.array([j[0] for j in joints])
        # Command stamps pass through smoother and safety; a stamp off the joint clock (e.g. a
        # watchdog hold stamped on another clock) is replaced by its receipt time.
        stamps, recv = np.array([c[0] for c in commands]), np.array([c[1] for c in commands])
        ct = np.where(np.abs(stamps - recv) < 0.5, stamps, recv)
        order = np.argsort(ct, kind="stable")
        keep = order[np.r_[True, np.diff(ct[order]) > 0]]
        v = np.array([j[3] for j in joints])
        shape, size = self._object()
        return Recording(shape, size, jt, np.array([j[2] for j in joints]), v if np.all(np.isfinite(v)) else None,
                         np.nan_to_num(np.array([j[4] for j in joints])), ct[keep],
                         np.array([c[2] for c in commands])[keep], np.array([p[0] for p in poses]),
                         np.array([p[2] for p in poses]), np.array([p[3] for p in poses]))

    # --- probe execution -------------------------------------------------------------------
    def _tick(self) -> None:
        plan = self._plan
        if plan is None:
            return
        # A stalled node (a loaded host can starve this Python timer) sent nothing meanwhile and
        # the drivers held the last target. Jumping to the command for the current time would be
        # a step of centimetres, a lurch into the object (bench box 0.14 kg: gaps of 0.5 and 1.3 s
        # in the applied commands during its push, steps of up to 0.17 rad after them, a push the
        # replay could not reproduce: 9 N force misfit). The plan is paused instead and resumes
        # where it stopped. (Stalls downstream - smoother, safety, DDS - are not seen here.)
        rate = float(self._param("command_rate_hz"))
        now = self._now()
        gap = now - self._t_last_tick
        if self._k > 0 and gap > float(self._param("stall_pause_s")) \
                and sum(self._stalls) + gap <= float(self._param("stall_budget_s")):
            self._t_start += gap - 1.0 / rate
            self._stalls.append(gap)
        self._t_last_tick = now
        # Monotonic: a clock that jumps back (a mis-stamped /clock message) must not replay an
        # earlier part of the probe - that is a jerk of the arm in the middle of the push.
        k = max(self._k, int((now - self._t_start) * rate))
        self._k = k
        if k >= len(plan.commands):
            self._done.set()
            k = len(plan.commands) - 1
        msg = make_joint_state(self.get_clock().now().to_msg(), JOINT_NAMES, plan.commands[k],
                               effort=self._limits.effort)
        self._pub_cmd.publish(msg)

    def _resting_pose(self) -> tuple[np.ndarray, float]:
        n = int(self._param("rest_poses"))
        deadline = time.monotonic() + float(self._param("pose_wait_s"))
        while time.monotonic() < deadline:
            with self._lock:
                recent = [p for p in self._poses if p[1] > self._now() - 2.0]
            if len(recent) >= n:
                pos = np.median(np.array([p[2] for p in recent[-n:]]), axis=0)
                return pos, object_yaw(recent[-1][3])
            time.sleep(0.05)
        raise ProbeError(f"fewer than {n} object poses on {self._param('object_pose_topic')} in the last 2 s: "
                         "is the object tracked?")

    def _start_state(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The latest complete joint positions and the object's resting position and yaw."""
        deadline = time.monotonic() + float(self._param("pose_wait_s"))
        while True:
            with self._lock:
                last = self._joints[-1] if self._joints else None
            if (last is not None and np.all(np.isfinite(last[2]))) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if last is None or not np.all(np.isfinite(last[2])):
            raise ProbeError(f"no complete joint state on {self._param('joint_states_topic')}")
        position, yaw = self._resting_pose()
        return last[2], position, yaw

    def _push(self) -> Recording:
        q, position, yaw = self._start_state()
        shape, size = self._object()
        plan = plan_probe(q, position, yaw, shape, size, ProbeConfig(rate_hz=float(self._param("command_rate_hz"))))
        self.get_logger().info(f"probe planned: push along {np.round(plan.direction[:2], 2)}, "
                               f"{plan.times[-1]:.1f} s of commands")
        return self._execute(plan)

    def _weigh(self) -> Recording:
        q, position, yaw = self._start_state()
        shape, size = self._object()
        plan = plan_weigh_probe(q, position, yaw, shape, size, float(self._param("command_rate_hz")))
        self.get_logger().info(f"weighing probe planned: grasp, lift, hold, set down; {plan.times[-1]:.1f} s "
                               "of commands")
        return self._execute(plan)

    def _execute(self, plan: ProbePlan) -> Recording:
        """Stream the plan's commands; the recording from 1 s before its start to its end."""
        t_from = self._now() - 1.0
        if self._abort_reason:  # shutting down: no new timer on a node about to be destroyed
            raise ProbeError(f"probe aborted: {self._abort_reason}")
        self._done.clear()
        self._t_start = self._t_last_tick = self._now()
        self._k = 0
        self._stalls = []
        self._plan = plan
        # Ticks on the steady clock, commands indexed by (sim) time: a sim that runs slower than
        # real time gets its command repeated rather than none (safety's watchdog holds the arm
        # after 0.1 s without a command, which would turn the push into stop-and-go).
        self._timer = self.create_timer(1.0 / float(self._param("command_rate_hz")), self._tick,
                                        callback_group=self._timer_group, clock=self._steady)
        finished = self._done.wait(timeout=float(self._param("probe_timeout_s")))
        self.destroy_timer(self._timer)
        self._plan = None
        if self._stalls:
            self.get_logger().warning(f"the probe was paused {len(self._stalls)} times for command stalls of this "
                                      f"node (longest {max(self._stalls):.2f} s, {sum(self._stalls):.2f} s in all)")
        if self._abort_reason:
            raise ProbeError(f"probe aborted: {self._abort_reason}")
        if not finished:
            raise ProbeError(f"the probe did not finish within {self._param('probe_timeout_s')} s (is time running?)")
        # Callbacks may lag on a busy host: wait until the joint states caught up with the end,
        # and never identify from a recording whose end (the push) is missing.
        t_end = self._now()
        deadline = time.monotonic() + JOINT_CATCH_UP_S
        caught_up = False
        while not caught_up and time.monotonic() < deadline and not self._abort_reason:
            with self._lock:
                last = self._joints[-1][0] if self._joints else float("-inf")
            caught_up = last >= t_end - 0.01
            time.sleep(0.02)
        if not caught_up:
            raise RecordingError(f"the recorded joint states end {t_end - last:.2f} s before the probe did, "
                                 f"{JOINT_CATCH_UP_S:.0f} s after it: this node could not keep up with "
                                 "/joint_states, and the push is not in the recording")
        self.get_logger().info("probe done")
        return self._recording(t_from)

    def abort(self, reason: str) -> None:
        """End a probe in progress now (shutdown): its service call fails with the reason."""
        self._abort_reason = reason
        self._done.set()

    def _config(self) -> MassIdConfig:
        p = self._param
        return MassIdConfig(mass_bounds=(p("mass_min"), p("mass_max")),
                            friction_bounds=(p("friction_min"), p("friction_max")), nthread=int(p("threads")),
                            max_rel_std=float(p("max_rel_std")), max_force_misfit=float(p("max_force_misfit")),
                            weigh_above_rel_std=float(p("weigh_above_rel_std")),
                            weigh_max_mass=float(p("weigh_max_mass")))

    def _save(self, rec: Recording, kind: str, saved: list[str]) -> None:
        if self._param("record_dir"):
            path = Path(self._param("record_dir")) / f"{kind}_{time.strftime('%Y%m%d_%H%M%S')}"
            write_recording(path, rec)
            saved.append(f"{kind} probe saved to {path}")
            self.get_logger().info(saved[-1])

    def _probe_and_identify(self, cfg: MassIdConfig, saved: list[str]) -> MassEstimate | None:
        """The push (none for a sphere), then the weighing probe where the push fell short.

        None when identification is off (the recordings only: the weighing probe follows every
        push then, and whoever identifies the bags decides which one counts).
        """
        p = self._param
        push = None
        if p("object_shape") == "sphere" and not p("push_spheres"):
            if not p("weigh_spheres"):
                raise ProbePlanError(SPHERE_NOT_PUSHED)
            why = "a sphere is weighed, not pushed"
        else:
            rec = self._push()
            self._save(rec, "massid", saved)
            if not p("identify"):
                if not p("weigh_fallback"):
                    return None
                why = "identification is off: every push is followed by the weighing probe"
            else:
                self.get_logger().info("identifying the push")
                # A refused push recording raises: no weighing without the push's friction.
                push = identify(rec, cfg, progress=self.get_logger().info)
                why = weighing_reason(push, cfg) if p("weigh_fallback") else ""
                if not why:
                    return push
        self.get_logger().info(f"weighing the object: {why}")
        try:
            rec = self._weigh()
            self._save(rec, "weigh", saved)
            if not p("identify"):
                return None
            weighed = identify(rec, cfg, progress=self.get_logger().info)
        except (RecordingError, ProbePlanError) as exc:
            weighed, failure = None, str(exc)
        else:
            failure = weighed.reason
        if weighed is not None and weighed.identifiable:
            return weighed if push is None else with_push_friction(weighed, push, cfg)
        self.get_logger().warning(f"weighing gave no number ({failure}): the push's answer stands")
        if push is None:  # a sphere, weighed instead of pushed
            raise RecordingError(failure)
        return push if push.identifiable else replace(push, reason=f"{push.reason}; weighing: {failure}")

    def _on_identify(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        saved: list[str] = []
        try:
            est = self._probe_and_identify(self._config(), saved)
        except (RecordingError, ProbePlanError) as exc:  # no data that can support an estimate
            reason = f"no probe can be planned: {exc}" if isinstance(exc, ProbePlanError) else str(exc)
            response.success, response.message = False, unidentifiable_reply(reason)
            self.get_logger().warning(response.message)
            self._diag.publish("warn", "mass unidentifiable", {"reason": reason})
            return response
        except (ProbeError, BagError) as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().error(f"mass identification failed: {exc}")
            self._diag.publish("error", "mass identification failed", {"reason": exc})
            return response
        if est is None:
            response.success, response.message = True, "; ".join(saved) or "probe done (identification off)"
            return response
        if not est.identifiable:
            response.success, response.message = False, unidentifiable_reply(est.reason)
            self.get_logger().warning(response.message)
            self._diag.publish("warn", "mass unidentifiable", {"reason": est.reason})
            return response
        friction = float("nan") if est.friction is None else est.friction
        self._pub_mass.publish(Float64MultiArray(data=[est.mass, est.std, friction]))
        response.success, response.message = True, est.summary()
        self._diag.publish("ok", "mass identified", {"mass": est.mass, "std": est.std, "friction": friction,
                                                     "method": est.method})
        return response


# Measured in its own process (bench probes at 0.5x real time): without a pause the executor
# spun at 90-100% of a core for the node's whole life, and 1 in 20 eval probes lost most of its
# joint states. 0.5 ms, not bringup's 2 ms: here ~770 callbacks/s arrive (joint states, applied
# commands and the 250 Hz command timer), more than 2 ms per dispatch could serve.
DISPATCH_PAUSE_S = 0.0005


def main(args: list[str] | None = None) -> None:
    # Several threads: the identify service runs for seconds while the probe's recording goes on.
    spin_node(MassIdNode, args, lambda: MultiThreadedExecutor(num_threads=4), DISPATCH_PAUSE_S)


if __name__ == "__main__":
    main()
