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

import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from drex_ros.core.bag import BagError
from drex_ros.core.control.command_source import MASS_ID
from drex_ros.core.identify_reply import unidentifiable_reply
from drex_ros.core.massid.excitation import plan_excitation
from drex_ros.core.massid.probe_runner import (
    CommandStream,
    ProbeBuffers,
    ProbePolicy,
    StreamSettings,
    latest_joint_positions,
    probe_and_identify,
    resting_pose,
    wait_for_joint_states,
)
from drex_ros.core.massid.push_probe import ProbeConfig, ProbeError, ProbePlan, ProbePlanError, plan_probe
from drex_ros.core.massid.recording import write_recording
from drex_ros.core.massid.robot_calibration import RobotCalibration, calibrate
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassEstimate, MassIdConfig, RecordingError
from drex_ros.core.massid.weigh_probe import plan_weigh_probe
from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.nodes.joint_state_cdr import JointStateReader
from drex_ros.nodes.ros_io import (
    LATCHED_QOS,
    Diagnostics,
    joint_state_arrays,
    make_joint_state,
    spin_node,
    to_sec,
)

PARAMETERS = {
    "object_shape": "box",
    "object_size": [0.06, 0.06, 0.06],
    "command_topic": "/drex/policy/joint_command",
    "applied_command_topic": "/drex/joint_command",
    "joint_states_topic": "/joint_states",
    "object_pose_topic": "/drex/object_pose",
    "mass_topic": "/drex/object_mass",
    "service": "/drex/identify_mass",
    # The robot calibration's excitation (core/massid/excitation.py), streamed like a probe, saved
    # to record_dir and fitted there into robot_calibration.yaml (task_node's /drex/calibrate_robot
    # grants the command stream and calls it; `drex excite` calls that).
    "excite_service": "/drex/excite_robot",
    "command_rate_hz": 250.0,
    "rest_poses": 10,  # object poses averaged for the resting pose the probe is planned from
    "pose_wait_s": 3.0,  # wait this long (wall) for them
    "probe_timeout_s": 600.0,  # wall-clock cap on a probe (a loaded host runs the sim slowly: not a failure)
    "clock_stall_s": 10.0,  # wall s the clock may stand still during a probe before it fails
    "record_dir": "",  # if set, every probe is also saved there as an MCAP bag
    # robot_calibration.yaml from `drex calibrate-robot`: its effort offsets and joint friction are
    # taken out of the arm's efforts before identifying ("": none)
    "robot_calibration": "",
    # The friction published with a weighed mass when the push read none (it gave no number): the
    # low end of the policy's training range, so the grip errs firm. Published here, not by a second
    # node, so the policy never sees the mass without it.
    "unread_friction": 0.5,
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
    "estop_topic": "/drex/estop",  # true aborts a running probe (the service call fails with "e-stop")
}
QUEUE = 5000


class MassIdNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("mass_id_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = self._param
        self._limits = robot_model().limits
        self._names = tuple(JOINT_NAMES)
        self._diag = Diagnostics(self)
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._buffers = ProbeBuffers()
        data_group = ReentrantCallbackGroup()
        # Joint states in their own exclusive group: handled one at a time, in arrival order.
        joint_group = MutuallyExclusiveCallbackGroup()
        # Deep queues: every joint state and command matters (the force is inverted step by step).
        # Joint states raw: 500-1000 Hz of JointStates turned into Python objects cost a share of a
        # core, and on a loaded host the recorder fell behind and lost a third of a weighing hold.
        self._states = JointStateReader()
        self.create_subscription(JointState, p("joint_states_topic"), self._on_joints, QUEUE,
                                 callback_group=joint_group, raw=True)
        self.create_subscription(JointState, p("applied_command_topic"), self._on_command, QUEUE,
                                 callback_group=data_group)
        self.create_subscription(PoseStamped, p("object_pose_topic"), self._on_pose, 20, callback_group=data_group)
        self._pub_cmd = self.create_publisher(JointState, p("command_topic"), 10)
        self._pub_mass = self.create_publisher(Float64MultiArray, p("mass_topic"), LATCHED_QOS)
        probes = MutuallyExclusiveCallbackGroup()  # one probe at a time: identify or excite
        self.create_service(Trigger, p("service"), self._on_identify, callback_group=probes)
        self.create_service(Trigger, p("excite_service"), self._on_excite, callback_group=probes)
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._stream = CommandStream(StreamSettings(), self._now, self._publish_command)
        self._closing = False
        self._busy = False
        self.create_subscription(Bool, p("estop_topic"), self._on_estop, 10, callback_group=data_group)
        self.get_logger().info(f"ready: {p('service')} probes a {p('object_shape')} {list(p('object_size'))} m")

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _object(self) -> tuple[str, tuple[float, ...]]:
        return self._param("object_shape"), tuple(float(s) for s in self._param("object_size"))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- recording ---------------------------------------------------------------------
    def _on_joints(self, data: bytes) -> None:
        msg = self._states.decode(data)
        if msg.name == self._names and len(msg.velocity) == len(msg.effort) == len(self._names):
            q, v, e = msg.position, msg.velocity, msg.effort  # fast path: views into the message's bytes
        else:
            a = joint_state_arrays(msg, JOINT_NAMES)
            q, v, e = a["position"], a["velocity"], a["effort"]
        self._buffers.add(self._buffers.joints, (msg.stamp_seconds, self._now(), q, v, e))

    def _on_command(self, msg: JointState) -> None:
        a = joint_state_arrays(msg, JOINT_NAMES)
        self._buffers.add(self._buffers.commands, (to_sec(msg.header.stamp), self._now(), a["position"]))

    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self._buffers.add(self._buffers.poses, (to_sec(msg.header.stamp), self._now(), np.array([p.x, p.y, p.z]),
                                                np.array([o.w, o.x, o.y, o.z])))

    # --- probe execution -------------------------------------------------------------------
    def _publish_command(self, q: np.ndarray) -> None:
        self._pub_cmd.publish(make_joint_state(self.get_clock().now().to_msg(), JOINT_NAMES, q,
                                               effort=self._limits.effort, frame_id=MASS_ID))

    def _start_state(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The latest complete joint positions and the object's resting position and yaw."""
        wait = float(self._param("pose_wait_s"))
        q = latest_joint_positions(self._buffers, wait, self._param("joint_states_topic"))
        position, yaw = resting_pose(self._buffers, self._now, int(self._param("rest_poses")), wait,
                                     self._param("object_pose_topic"))
        return q, position, yaw

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

    def _execute(self, plan: ProbePlan, min_poses: int = 10) -> Recording:
        """Stream the plan's commands; the recording from 1 s before its start to its end."""
        p = self._param
        t_from = self._now() - 1.0
        self._stream.settings = StreamSettings(float(p("command_rate_hz")), float(p("probe_timeout_s")),
                                               float(p("clock_stall_s")), float(p("stall_pause_s")),
                                               float(p("stall_budget_s")))
        self._stream.start(plan)
        timer = self.create_timer(1.0 / float(p("command_rate_hz")), self._stream.tick,
                                  callback_group=self._timer_group, clock=self._steady)
        try:
            self._stream.wait()
        finally:
            self.destroy_timer(timer)
            stalls = self._stream.stalls
            if stalls:
                self.get_logger().warning(f"the probe was paused {len(stalls)} times for command stalls of this "
                                          f"node (longest {max(stalls):.2f} s, {sum(stalls):.2f} s in all)")
        wait_for_joint_states(self._buffers, self._now(), lambda: bool(self._stream.abort_reason))
        self.get_logger().info("probe done")
        shape, size = self._object()
        return self._buffers.recording(t_from, shape, size, p("applied_command_topic"), min_poses)

    def abort(self, reason: str) -> None:
        """End a probe in progress now (shutdown): its service call fails with the reason."""
        self._closing = True
        self._stream.abort(reason)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and self._busy and not self._stream.abort_reason:
            self.get_logger().error("e-stop: the probe is aborted")
            self._stream.abort("e-stop")

    def _calibration(self) -> RobotCalibration | None:
        path = self._param("robot_calibration")
        if not path:
            return None
        try:
            return RobotCalibration.load(path)
        except ValueError as exc:
            raise ProbeError(f"robot_calibration: {exc}") from exc

    def _config(self) -> MassIdConfig:
        p = self._param
        return MassIdConfig(calibration=self._calibration(), mass_bounds=(p("mass_min"), p("mass_max")),
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
        p = self._param
        policy = ProbePolicy(p("object_shape"), bool(p("identify")), bool(p("push_spheres")),
                             bool(p("weigh_spheres")), bool(p("weigh_fallback")))
        log = self.get_logger().info
        return probe_and_identify(policy, cfg, self._push, self._weigh, lambda rec, kind: self._save(rec, kind, saved),
                                  log, self.get_logger().warning)

    def _on_excite(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._closing:
            self._stream.abort_reason = ""
        record_dir = self._param("record_dir")
        if not record_dir:
            response.success, response.message = False, "set record_dir: the excitation is saved there as a bag"
            return response
        self._busy = True
        try:
            q = latest_joint_positions(self._buffers, float(self._param("pose_wait_s")),
                                       self._param("joint_states_topic"))
            plan = plan_excitation(q, float(self._param("command_rate_hz")))
            self.get_logger().info(f"excitation planned: {plan.times[-1]:.0f} s of commands, the arm swings "
                                   "around home")
            saved: list[str] = []
            rec = self._execute(plan, min_poses=0)
            self._save(rec, "excite", saved)
            cal = calibrate(rec, (float(rec.joint_t[0]), float(rec.joint_t[-1])))
            out = cal.save(Path(record_dir) / "robot_calibration.yaml")
        except (ProbeError, RecordingError, ValueError) as exc:
            response.success, response.message = False, f"robot calibration failed: {exc}"
            self.get_logger().error(response.message)
            return response
        finally:
            self._busy = False
        response.success = True
        response.message = (f"{saved[0]}; robot calibration written to {out} (Coulomb friction "
                            f"{', '.join(f'{c:.3f}' for c in cal.coulomb)} N*m)" + "".join(f"; {n}" for n in cal.notes))
        self.get_logger().info(response.message)
        return response

    def _on_identify(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if not self._closing:
            self._stream.abort_reason = ""  # an e-stop ended the previous call, not this one
        self._busy = True
        try:
            return self._answer(response)
        finally:
            self._busy = False

    def _answer(self, response: Trigger.Response) -> Trigger.Response:
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
        friction = est.friction
        if friction is None:  # weighed, and the push read no friction: the policy needs one all the same
            friction = float(self._param("unread_friction"))
            self.get_logger().warning(f"no friction was read (the push gave no number): {friction} is published "
                                      "with the weighed mass (unread_friction)")
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
