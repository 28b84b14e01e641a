"""task_node: runs one grasping task end to end and reports its phase on /drex/task_state.

/drex/start_task (std_srvs/Trigger) starts a run: wait for a settled object pose, ask the
mass-ID node to push and identify (/drex/identify_mass), then plan the arm's grasp
reference (core.grasp_plan) from the perceived pose, publish it on
/drex/policy/arm_reference with the plan's clock on /drex/policy/plan_time (the policy's
phase clock follows it), and enable the policy (/policy_node/enable), and watch the
object rise and stay up. The arm lifts only once the grip has settled on the object.
The logic lives in core.task_sequence; this node feeds it.
"""

from __future__ import annotations

import json

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from drex_ros.core.control.command_source import owner_for_phase
from drex_ros.core.control.hand_hold import HeldObjectTracker, InHandSettings, grip_settled
from drex_ros.core.control.task_sequence import (
    ACTIVE,
    CONSERVATIVE_FALLBACK_MASS,
    Observation,
    Phase,
    TaskSequence,
    TaskSettings,
)
from drex_ros.core.robot.grasp_plan import GraspPlan, GraspPlanError, plan_grasp
from drex_ros.core.robot.model import ARM_JOINTS, JOINT_NAMES, robot_model
from drex_ros.nodes.joint_state_cdr import JointStateReader
from drex_ros.nodes.ros_io import (
    LATCHED_QOS,
    LATEST_STATE_QOS,
    Diagnostics,
    joint_state_arrays,
    make_joint_state,
    spin_node,
    to_sec,
)

SERVICE_GRACE_S = 5.0  # how long a service may take to be discovered or to accept

PARAMETERS = {
    "rate_hz": 50.0,
    "object_shape": "box",
    "object_size": [0.06, 0.06, 0.06],
    "identify_service": "/drex/identify_mass",
    # /drex/calibrate_robot (served here, between tasks): the command stream goes to the mass-ID
    # node, which streams the excitation, saves it and writes robot_calibration.yaml (this service).
    "excite_service": "/drex/excite_robot",
    "policy_enable_service": "/policy_node/enable",
    "skip_identification": False,
    "fallback_mass": CONSERVATIVE_FALLBACK_MASS,  # > 0: grasp as if this heavy when unidentifiable
    "fallback_friction": 0.5,
    "lift_height": 0.10,
    "hold_time": 3.0,
    "joint_state_timeout": 1.0,
    "object_pose_timeout": 3.0,
    "grasp_pose_max_age": 0.5,  # s; a grasp starts only from a pose this young (the probe moved the object)
    "command_timeout": 1.0,
    "plan_pause_after": 0.25,  # s without policy output: the grasp plan's clock stands until it resumes
    "timeout_perceiving": 10.0,
    "timeout_probing": 90.0,  # sim s: push and tared weighing probes with their pauses
    "timeout_identifying": 60.0,
    "timeout_grasping": 20.0,
    "timeout_lifting": 10.0,
    "timeout_holding": 10.0,
    "finger_stall_rad": 0.25,      # a finger this far from its command is blocked by the held object
    "fresh_pose_s": 0.2,           # a pose this recent is used as seen; older, a held object is carried
    "release_after_s": 1.0,        # fingers free this long (sim s) = the held object is gone
    "grip_settled_speed": 0.3,     # rad/s: fingers slower than this have stopped closing
    "grip_settle": 0.2,            # s the grip must stay settled before the arm lifts
    "grip_timeout": 3.0,           # s past the planned lift without a settled grip -> failed
    "estop_topic": "/drex/estop",  # true ends a running task (failed: e-stop)
    "command_owner_topic": "/drex/command_owner",  # who may command, granted per phase (latched)
}


class TaskNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("task_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        self.sequence = TaskSequence(self._settings())
        self.plan: GraspPlan | None = None
        self._q: np.ndarray | None = None
        self._qd: np.ndarray | None = None
        self._joint_time: float | None = None
        self._pose: tuple[np.ndarray, np.ndarray, float] | None = None
        self._command_time: float | None = None
        # The policy's last full-robot command: what the fingers are trying to reach. (Not the safety
        # output: a safety hold commands the measured position, which would hide a held object.)
        self._commanded: np.ndarray | None = None
        self._held = HeldObjectTracker(robot_model().palm_pose, InHandSettings(
            stall_rad=float(self._param("finger_stall_rad")), fresh_pose_s=float(self._param("fresh_pose_s")),
            release_after_s=float(self._param("release_after_s")),
            settled_speed=float(self._param("grip_settled_speed"))))
        self._mass: float | None = None
        self._identify = {"done": False, "ok": False, "message": ""}
        self._reported = ""
        self._pending: dict[str, float] = {}  # call -> when it was asked for
        self._enable_in_flight = False
        self._identify_sent = False
        self._identify_server_lost: float | None = None
        self._diag = Diagnostics(self)
        self._state_pub = self.create_publisher(String, "/drex/task_state", LATCHED_QOS)
        self._arm_pub = self.create_publisher(JointState, "/drex/policy/arm_reference", 10)
        self._plan_time_pub = self.create_publisher(Float64, "/drex/policy/plan_time", 10)
        self._mass_pub = self.create_publisher(Float64MultiArray, "/drex/object_mass", LATCHED_QOS)
        self._owner_pub = self.create_publisher(String, self._param("command_owner_topic"), LATCHED_QOS)
        self._owner: str | None = None
        self._estop = False
        self.create_subscription(Bool, self._param("estop_topic"), self._on_estop, 10)
        # Raw: a 500 Hz JointState made into Python objects cost this node a share of a core, and
        # under a CPU hog it fell a second behind and failed the task "no fresh /joint_states"
        # (bench loop). The bytes become arrays once (nodes/joint_state_cdr.py).
        self._states = JointStateReader()
        self.create_subscription(JointState, "/joint_states", self._on_joints, LATEST_STATE_QOS, raw=True)
        self.create_subscription(PoseStamped, "/drex/object_pose", self._on_pose, 10)
        self.create_subscription(Float64MultiArray, "/drex/object_mass", self._on_mass, LATCHED_QOS)
        self.create_subscription(JointState, "/drex/policy/joint_command", self._on_command, 10)
        clients = MutuallyExclusiveCallbackGroup()
        self._identify_client = self.create_client(Trigger, self._param("identify_service"), callback_group=clients)
        self._enable_client = self.create_client(SetBool, self._param("policy_enable_service"), callback_group=clients)
        self._excite_client = self.create_client(Trigger, self._param("excite_service"), callback_group=clients)
        self._calibrating = False
        self.create_service(Trigger, "/drex/start_task", self._on_start)
        # Reentrant: the handler awaits the excitation for a minute, and a second call must hear "running".
        self.create_service(Trigger, "/drex/calibrate_robot", self._on_calibrate,
                            callback_group=ReentrantCallbackGroup())
        self.create_timer(1.0 / float(self._param("rate_hz")), self._tick)
        self._publish_state()

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _settings(self) -> TaskSettings:
        s = TaskSettings()
        s.timeouts = {k: float(self._param(f"timeout_{k}")) for k in s.timeouts}
        for name in ("lift_height", "hold_time", "joint_state_timeout", "object_pose_timeout", "command_timeout",
                     "plan_pause_after", "grip_settle", "grip_timeout", "grasp_pose_max_age"):
            setattr(s, name, float(self._param(name)))
        s.skip_identification = bool(self._param("skip_identification"))
        s.fallback_mass = float(self._param("fallback_mass"))
        s.fallback_friction = float(self._param("fallback_friction"))
        return s

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs ---------------------------------------------------------------------------
    def _on_joints(self, data: bytes) -> None:
        msg = self._states.decode(data)
        arrays = joint_state_arrays(msg, JOINT_NAMES)
        q, qd, stamp = arrays["position"], arrays["velocity"], msg.stamp_seconds
        if not np.all(np.isfinite(q)):
            return
        if not np.all(np.isfinite(qd)):  # a driver that reports no velocities: difference the positions
            dt = None if self._joint_time is None else stamp - self._joint_time
            qd = (q - self._q) / dt if dt and dt > 0 else np.full_like(q, np.nan)
        self._q, self._qd, self._joint_time = q, qd, stamp

    def _on_pose(self, msg: PoseStamped) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        self._pose = (np.array([p.x, p.y, p.z]), np.array([o.w, o.x, o.y, o.z]), to_sec(msg.header.stamp))

    def _on_mass(self, msg: Float64MultiArray) -> None:
        if len(msg.data) >= 1 and np.isfinite(msg.data[0]) and msg.data[0] > 0:
            self._mass = float(msg.data[0])

    def _on_command(self, msg: JointState) -> None:
        self._command_time = self._now()
        self._commanded = joint_state_arrays(msg, JOINT_NAMES)["position"]

    def _object_estimate(self, now: float) -> tuple[np.ndarray, float] | None:
        """(position, time) of the object: as seen, or carried with the palm while the hand hides it."""
        seen = None if self._pose is None else (self._pose[0], self._pose[2])
        elapsed = self.sequence.grasp_elapsed(now)
        closing = elapsed is not None and self.plan is not None and elapsed >= self.plan.phases()["close"][0]
        live = self._command_live(now)
        estimate, event = self._held.update(now, seen, self._q, self._commanded if live else None, closing,
                                            rest=self.sequence.start_position)
        if event == "anchored":
            self.get_logger().info("grip closed on the object: its pose is carried with the palm while hidden")
        elif event == "dropped" and self.sequence.phase in (Phase.LIFTING, Phase.HOLDING):
            self._fail(f"object dropped while {self.sequence.phase.value}: the fingers closed on nothing")
        return estimate

    def _command_live(self, now: float) -> bool:
        return self._command_time is not None and now - self._command_time <= float(self._param("command_timeout"))

    def _grip_settled(self, now: float) -> bool:
        if not self._command_live(now) or self._q is None or self._qd is None:
            return False
        return grip_settled(self._q, self._qd, self._commanded, self._held.settings)

    def _on_estop(self, msg: Bool) -> None:
        engaged = bool(msg.data)
        if engaged and not self._estop and self.sequence.phase in ACTIVE:
            self.get_logger().error(f"e-stop during {self.sequence.phase.value}: the task ends, the policy stops")
            self._fail("e-stop")
            self._publish_state()
        self._estop = engaged

    # --- services -------------------------------------------------------------------------
    def _on_start(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self._estop:
            response.success = False
            response.message = ("the e-stop is engaged: release it (publish false on /drex/estop), reset it "
                                "(/drex/reset_estop), then start the task")
            return response
        if self._calibrating:
            response.success, response.message = False, "the robot calibration is running: start the task after it"
            return response
        self.sequence.settings = self._settings()
        self.plan, self._identify = None, {"done": False, "ok": False, "message": ""}
        self._held.reset()
        self._pending.clear()
        self._identify_sent = False
        started = self.sequence.start(self._now())
        response.success = started
        response.message = "task started" if started else f"a task is already running ({self.sequence.phase})"
        self._publish_state()
        return response

    async def _on_calibrate(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """The robot calibration's excitation, between tasks: the stream is the mass-ID node's meanwhile."""
        refusal = ("the e-stop is engaged" if self._estop else "a calibration is already running"
                   if self._calibrating else f"a task is running ({self.sequence.phase.value})"
                   if self.sequence.phase in ACTIVE else "")
        # Between tasks nothing else waits on this node: a short blocking wait for discovery is fine.
        if not refusal and not self._excite_client.wait_for_service(timeout_sec=SERVICE_GRACE_S):
            refusal = f"the excitation service {self._param('excite_service')} is not available"
        if refusal:
            response.success, response.message = False, f"robot calibration refused: {refusal}"
            return response
        self._calibrating = True
        self._publish_state()
        try:
            result = await self._excite_client.call_async(Trigger.Request())
        finally:
            self._calibrating = False
            self._publish_state()
        response.success, response.message = result.success, result.message
        (self.get_logger().info if result.success else self.get_logger().error)(result.message)
        return response

    def _request_identification(self) -> None:
        self._pending["identify"] = self._now()

    def _enable_policy(self, enable: bool) -> None:
        if enable:
            self._pending["enable"] = self._now()
            return
        self._pending.pop("enable", None)
        if self._enable_client.service_is_ready():
            self._enable_client.call_async(SetBool.Request(data=False))

    def _serve_pending(self) -> None:
        """Make the calls the sequence asked for once their servers are discovered (a grace period)."""
        now = self._now()
        if "identify" in self._pending:
            if self._identify_client.service_is_ready():
                del self._pending["identify"]
                self.get_logger().info("asking the mass-ID node to push and identify")
                self._identify_client.call_async(Trigger.Request()).add_done_callback(self._on_identified)
                self._identify_sent, self._identify_server_lost = True, None
            elif now - self._pending["identify"] > SERVICE_GRACE_S:
                del self._pending["identify"]
                self._fail(f"mass identification service {self._param('identify_service')} is not available")
        if "enable" in self._pending and not self._enable_in_flight:
            if self._enable_client.service_is_ready():
                self._enable_in_flight = True
                self._enable_client.call_async(SetBool.Request(data=True)).add_done_callback(self._on_enabled)
            elif now - self._pending["enable"] > SERVICE_GRACE_S:
                del self._pending["enable"]
                self._fail(f"policy enable service {self._param('policy_enable_service')} is not available")

    def _watch_identify_server(self) -> None:
        """A mass-ID node that dies mid-probe never answers: notice its service vanish instead of waiting."""
        waiting = self._identify_sent and not self._identify["done"] and self.sequence.phase in (
            Phase.PROBING, Phase.IDENTIFYING)
        if not waiting or self._identify_client.service_is_ready():
            self._identify_server_lost = None
            return
        now = self._now()
        if self._identify_server_lost is None:
            self._identify_server_lost = now
        if now - self._identify_server_lost > SERVICE_GRACE_S:
            self._fail(f"the mass-ID node went away during the probe ({self._param('identify_service')} vanished)")

    def _on_identified(self, future) -> None:
        result = future.result()
        self._identify = {"done": True, "ok": bool(result and result.success),
                          "message": result.message if result else "no response"}
        self.get_logger().info(f"mass identification: {self._identify['message']}")

    def _on_enabled(self, future) -> None:
        self._enable_in_flight = False
        result = future.result()
        if "enable" not in self._pending:
            return
        if result is not None and result.success:
            del self._pending["enable"]
            self.get_logger().info(f"policy enabled: {result.message}")
        elif self._now() - self._pending["enable"] > SERVICE_GRACE_S:
            del self._pending["enable"]
            self._fail(f"the policy refused to start: {result.message if result else 'no response'}")

    def _tick(self) -> None:
        obs = Observation(now=self._now(), joint_state_time=self._joint_time, last_command_time=self._command_time,
                          identify_done=self._identify["done"], identify_ok=self._identify["ok"],
                          identify_message=self._identify["message"], mass=self._mass)
        obs.grip_settled = self._grip_settled(obs.now)
        estimate = self._object_estimate(obs.now)
        if estimate is not None:
            obs.object_position, obs.object_pose_time = estimate
        actions = self.sequence.update(obs)
        self._serve_pending()
        self._watch_identify_server()
        if actions.publish_fallback_mass:
            s = self.sequence.settings
            self.get_logger().warning(f"mass unidentifiable; grasping with the fallback mass {s.fallback_mass} kg, "
                                      f"friction {s.fallback_friction} (std NaN = not identified)")
            self._mass_pub.publish(Float64MultiArray(data=[s.fallback_mass, float("nan"), s.fallback_friction]))
        if actions.request_identification:
            self._request_identification()
        if actions.start_grasp:
            self._start_grasp()
        if actions.stop:
            self._enable_policy(False)
        if self.plan is not None and self.sequence.phase not in (Phase.FAILED, Phase.IDLE):
            t = actions.grasp_time if actions.grasp_time is not None else self.plan.duration
            self._arm_pub.publish(make_joint_state(self.get_clock().now().to_msg(), ARM_JOINTS,
                                                   self.plan.arm_targets(t)))
            self._plan_time_pub.publish(Float64(data=float(t)))  # the policy's phase clock follows it
        self._publish_state()

    def _start_grasp(self) -> None:
        try:
            self.plan = plan_grasp(self._pose[0], self._pose[1], self._param("object_shape"),
                                   tuple(self._param("object_size")), self._q)
        except GraspPlanError as exc:
            self._fail(f"no grasp plan: {exc}")
            return
        self.sequence.set_grasp_phases(self.plan.phases())
        self.get_logger().info(f"grasp planned ({self.plan.duration:.1f} s), enabling the policy")
        self._enable_policy(True)

    def _fail(self, reason: str) -> None:
        self.sequence.fail(reason, self._now())
        self._enable_policy(False)

    def _publish_state(self) -> None:
        phase = Phase.CALIBRATING if self._calibrating else self.sequence.phase
        owner = owner_for_phase(phase)
        if owner != self._owner:
            self._owner = owner
            self._owner_pub.publish(String(data=owner))
            self.get_logger().info(f"command stream granted to {owner or 'nobody'}")
        if phase.value != self._reported:
            self._reported = phase.value
            # Logged before the state is published: whoever stops the stack on `done` must not cut
            # these lines off. rclpy fixes one severity per call site, hence two calls.
            if phase is Phase.FAILED:
                self.get_logger().error(f"task state: failed ({self.sequence.reason})")
            else:
                self.get_logger().info(f"task state: {phase.value}")
            if phase in (Phase.DONE, Phase.FAILED):
                self.get_logger().info("phase durations: " + json.dumps(self.sequence.durations))
            self._state_pub.publish(String(data=phase.value))
            level = "error" if phase is Phase.FAILED else "ok"
            durations = {f"{k}_s": f"{v:.2f}" for k, v in self.sequence.durations.items()}
            self._diag.publish(level, self.sequence.reason or phase.value, {"phase": phase.value, **durations})


def main(args: list[str] | None = None) -> None:
    spin_node(TaskNode, args)


if __name__ == "__main__":
    main()
