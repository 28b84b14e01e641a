"""policy_node: runs a contract-following ONNX grasp policy at its control rate.

Subscribes /joint_states, /drex/object_pose (PoseStamped, frame `world`), /drex/object_mass
([mass_kg, std_kg, friction], latched) and /drex/policy/arm_reference (JointState of arm
joints) and /drex/policy/plan_time (std_msgs/Float64, the task's grasp-plan clock, which
phase_time then follows); publishes full-robot JointState commands on /drex/policy/joint_command (position
targets; effort = per-joint effort limit, scaled by the policy's grip output on grip joints).
The header stamp of a command is the stamp of the /joint_states message it was computed
from, so downstream stages and benchmarks can tell its age.

~/enable (std_srvs/SetBool) starts and stops the policy (or `autostart`). At start-up the
model's contract is checked against the URDF and this configuration; any difference is
logged and the node refuses to start (PolicyStartupError). While enabled, a missing or
stale input, a deadline trip or a non-finite output means no command is published (the
safety watchdog holds the robot) and the reason goes to the log and /diagnostics.

Fused (nodes/chain_node.py, `downstream` given): each command goes to the smoothing stage by a
direct call, and the command topic gets a copy at `introspection_rate_hz` (0: none).
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import SetBool

from drex_ros.core.control.command_source import POLICY
from drex_ros.core.policy.contract import ContractError
from drex_ros.core.policy.loop import ClockRate, LoopConfig, PolicyLoop
from drex_ros.core.policy.runtime import PolicyModel, RuntimeExpectations, check_contract
from drex_ros.core.policy.setup import (
    PolicyStartupError,
    StateDecimator,
    object_extents,
    resolve_model_path,
    runtime_expectations,
)
from drex_ros.core.robot.model import robot_model
from drex_ros.core.sim.scene_build import joint_gains
from drex_ros.nodes.joint_state_cdr import JointStateReader
from drex_ros.nodes.ros_io import (
    LATCHED_QOS,
    LATEST_STATE_QOS,
    Diagnostics,
    Downstream,
    RateLimit,
    make_joint_state,
    spin_node,
)

PARAMETERS = {
    "model_path": "",
    "num_threads": 1,
    "control_rate_hz": 0.0,  # 0 = the model's rate; otherwise must equal it
    "expected_obs_dim": 0,  # 0 = no expectation
    "autostart": False,
    "trigger": "timer",  # "timer" or "joint_states" (step on the state message that makes a period due)
    "blend_steps": 20,
    "joint_state_timeout": 0.1,
    "object_pose_timeout": 0.5,
    "occluded_object_hold": 0.0,
    "deadline_fraction": 1.0,
    "deadline_clock": "auto",  # wall, thread_cpu (the step's own CPU time) or auto (see _load_checked_model)
    "max_overruns": 3,
    "overrun_window": 20,
    "world_frame": "world",
    "object_shape": "box",  # with object_size (the sim/task convention) -> the observed bounding box
    "joint_states_topic": "/joint_states",
    "object_pose_topic": "/drex/object_pose",
    "object_mass_topic": "/drex/object_mass",
    "arm_reference_topic": "/drex/policy/arm_reference",
    "plan_time_topic": "/drex/policy/plan_time",
    "command_topic": "/drex/policy/joint_command",
    "estop_topic": "/drex/estop",  # true disables the policy; only ~/enable starts it again
    "introspection_rate_hz": 0.0,  # fused chain only: copies of the commands on command_topic
}
# Lists with no sensible default: left unset unless a parameter file gives them.
LIST_PARAMETERS = {
    "object_size": Parameter.Type.DOUBLE_ARRAY,  # m: box x y z | cylinder radius height | sphere radius
    "gain_joints": Parameter.Type.STRING_ARRAY,  # with gain_kp / gain_kd: the gains the robot runs
    "gain_kp": Parameter.Type.DOUBLE_ARRAY,
    "gain_kd": Parameter.Type.DOUBLE_ARRAY,
}
LOG_PERIOD_S = 2.0


class PolicyNode(Node):
    def __init__(self, *, downstream: Downstream | None = None, **kwargs) -> None:
        super().__init__("policy_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        for name, kind in LIST_PARAMETERS.items():
            self.declare_parameter(name, kind)
        self.robot = robot_model()
        self._clock_rate = ClockRate()  # sim time: how fast the robot's clock runs (for the deadline)
        try:
            self.loop = self._load_checked_model()
            self.loop.set_object_size(self._object_extents())
            if self._param("trigger") not in ("timer", "joint_states"):
                raise PolicyStartupError(f"trigger must be 'timer' or 'joint_states', got {self._param('trigger')!r}")
        except PolicyStartupError as exc:
            self.get_logger().fatal(f"refusing to start: {exc}")
            self.destroy_node()
            raise
        self._diag = Diagnostics(self)
        self._last_problem, self._last_log = "", 0.0
        self._state_stamp = None
        self._steps = self._published = 0
        self._period = 1.0 / self.loop.model.contract.control_rate_hz
        self._decimator = StateDecimator(self._period)
        self._plan_clock_announced = False
        self._by_state = self._param("trigger") == "joint_states"
        self._pub = self.create_publisher(JointState, self._param("command_topic"), 10)
        self._downstream = downstream
        self._introspect = RateLimit(float(self._param("introspection_rate_hz")) if downstream else float("inf"))
        self._states = JointStateReader()  # raw: the state's bytes become arrays once (nodes/joint_state_cdr.py)
        self.create_subscription(JointState, self._param("joint_states_topic"), self._on_joint_state,
                                 LATEST_STATE_QOS, raw=True)
        self.create_subscription(PoseStamped, self._param("object_pose_topic"), self._on_object_pose, 10)
        self.create_subscription(Float64MultiArray, self._param("object_mass_topic"), self._on_object_mass,
                                 LATCHED_QOS)
        self.create_subscription(JointState, self._param("arm_reference_topic"), self._on_arm_reference, 10)
        self.create_subscription(Float64, self._param("plan_time_topic"), self._on_plan_time, 10)
        self.create_subscription(Bool, self._param("estop_topic"), self._on_estop, 10)
        self.create_service(SetBool, "~/enable", self._on_enable)
        if not self._by_state:
            self.create_timer(self._period, self._step)
        self.create_timer(1.0, self._publish_diagnostics)
        self._autostart = bool(self._param("autostart"))
        c = self.loop.model.contract
        self.get_logger().info(
            f"policy ready: obs {c.obs_dim} ({', '.join(c.field_names())}), {len(c.position_targets)} position "
            f"targets, grip on {len(c.grip_effort)} joints, {c.control_rate_hz:g} Hz, trigger {self._param('trigger')}"
            f"{', autostart' if self._autostart else '; call ~/enable to start'}")

    # ---- set-up -------------------------------------------------------------------------
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _list(self, name: str) -> list:
        try:
            return list(self.get_parameter(name).value or [])
        except ParameterUninitializedException:
            return []

    def _expectations(self) -> RuntimeExpectations:
        # No gains configured: the simulator's.
        return runtime_expectations(self._param("control_rate_hz"), self._param("expected_obs_dim"),
                                    self._list("gain_joints"), self._list("gain_kp"), self._list("gain_kd"),
                                    joint_gains())

    def _load_checked_model(self) -> PolicyLoop:
        path = self._param("model_path")
        try:
            if not path:
                raise PolicyStartupError("parameter model_path is empty: no policy to run")
            path = str(resolve_model_path(path))
            model = PolicyModel(path, num_threads=int(self._param("num_threads")))
            problems = check_contract(model.contract, self.robot.joint_names, self._expectations())
            if problems:
                raise PolicyStartupError(f"model {path} does not fit this robot/configuration:\n  - "
                                         + "\n  - ".join(problems))
        except (ContractError, OSError) as exc:
            raise PolicyStartupError(f"model {path}: {exc}") from exc
        config = LoopConfig(joint_state_timeout=float(self._param("joint_state_timeout")),
                            object_pose_timeout=float(self._param("object_pose_timeout")),
                            occluded_object_hold=float(self._param("occluded_object_hold")),
                            blend_steps=int(self._param("blend_steps")),
                            deadline_fraction=float(self._param("deadline_fraction")),
                            max_overruns=int(self._param("max_overruns")),
                            overrun_window=int(self._param("overrun_window")))
        # On sim time the deadline is counted in the robot's (sim) seconds, like the safety node's watchdog.
        # thread_cpu: the step's own CPU time - in one process with other nodes (drex bringup) the wall
        # time of a step is mostly waiting for their share of the GIL, not the policy's compute.
        # auto: wall time on the robot's clock; on sim time the step's CPU time, because a host that
        # preempts the policy preempts the simulator too and the robot's clock waits (on a loaded host
        # the wall deadline tripped on 370 ms steps that no simulated robot waited for).
        kind = self._param("deadline_clock")
        if kind not in ("wall", "thread_cpu", "auto"):
            raise PolicyStartupError(f"deadline_clock must be 'wall', 'thread_cpu' or 'auto', got {kind!r}")
        sim_time = bool(self.get_parameter("use_sim_time").value)
        base = time.thread_time if kind == "thread_cpu" or (kind == "auto" and sim_time) else time.perf_counter
        self._clock_rate.base = base
        return PolicyLoop(model, self.robot, config, step_clock=self._clock_rate.seconds if sim_time else base)

    def _object_extents(self) -> np.ndarray | None:
        return object_extents(self._param("object_shape"), self._list("object_size"))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ---- inputs -------------------------------------------------------------------------
    def _on_joint_state(self, data: bytes) -> None:
        now = self._now()
        msg = self._states.decode(data)
        self.loop.update_joint_state(msg.name, msg.position, msg.velocity, msg.effort, now)
        self._state_stamp = Time(sec=msg.sec, nanosec=msg.nanosec)
        if self._autostart and not self.loop.enabled and self.loop.stop_reason == "not enabled":
            ok, text = self.loop.enable(now)
            if ok:
                self._autostart = False
                self.get_logger().info(f"autostart: {text}")
        if self._by_state and self._decimator.due(msg.stamp_seconds or now):
            self._step()

    def _on_object_pose(self, msg: PoseStamped) -> None:
        if msg.header.frame_id != self._param("world_frame"):
            self._report(f"object pose in frame {msg.header.frame_id!r}, expected {self._param('world_frame')!r}; "
                         "ignored")
            return
        p, o = msg.pose.position, msg.pose.orientation
        values = (p.x, p.y, p.z, o.w, o.x, o.y, o.z)
        if not all(np.isfinite(values)) or o.w * o.w + o.x * o.x + o.y * o.y + o.z * o.z < 0.5:
            self._report(f"object pose {values} ignored: non-finite or not a unit quaternion")
            return
        self.loop.update_object_pose((p.x, p.y, p.z), (o.w, o.x, o.y, o.z), self._now())

    def _on_object_mass(self, msg: Float64MultiArray) -> None:
        data = list(msg.data)
        if not data or not (data[0] > 0) or data[0] == float("inf"):
            self._report(f"object mass message {data} ignored: expected [mass_kg > 0, std_kg, friction]")
            return
        friction = data[2] if len(data) >= 3 else None
        self.loop.update_object_mass(data[0], friction)
        self.get_logger().info(f"object mass {data[0]:.3f} kg" + (f", friction {friction:.2f}" if friction else ""))

    def _on_arm_reference(self, msg: JointState) -> None:
        ignored = self.loop.set_arm_reference(msg.name, msg.position)
        if ignored:
            self._report(f"arm reference: ignored joints {ignored} (unknown or non-finite)")

    def _on_plan_time(self, msg: Float64) -> None:
        self.loop.set_plan_time(msg.data, self._now())
        if self.loop.enabled and self.loop.following_plan_clock() and not self._plan_clock_announced:
            self._plan_clock_announced = True  # once per enable
            self.get_logger().info(f"phase clock follows the task's plan clock (at {msg.data:.2f} s)")

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and (self.loop.enabled or self._autostart):
            self.loop.disable("e-stop")
            self._autostart = False
            self.get_logger().error("e-stop: policy disabled (the task enables it again)")

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data:
            response.success, response.message = self.loop.enable(self._now())
            self._decimator.reset()
            self._plan_clock_announced = False
        else:
            self.loop.disable("disabled by ~/enable")
            response.success, response.message = True, "policy disabled"
        self._autostart = False
        # rclpy fixes one severity per call site, hence two calls.
        if response.success:
            self.get_logger().info(response.message)
        else:
            self.get_logger().error(response.message)
        return response

    # ---- the control step -----------------------------------------------------------------
    def _step(self) -> None:
        was_enabled = self.loop.enabled
        now = self._now()
        self._clock_rate.update(now, time.perf_counter())
        result = self.loop.step(now)
        if not was_enabled:
            return
        self._steps += 1
        if result.positions is None:
            if not self.loop.enabled:
                self.get_logger().error(f"policy stopped: {self.loop.stop_reason}")
                self._publish_diagnostics()
            else:
                self._report(f"no command: {result.problem}")
            return
        stamp = self._state_stamp if self._state_stamp is not None else self.get_clock().now().to_msg()
        if self._downstream is not None:
            self._downstream(self.loop.names, result.positions, result.efforts, POLICY, stamp)
        if self._introspect.due():
            self._pub.publish(make_joint_state(stamp, self.robot.joint_names, result.positions,
                                               effort=result.efforts, frame_id=POLICY))
        self._published += 1
        if self._last_problem:
            self.get_logger().info("inputs complete again; commanding")
            self._last_problem = ""

    def _report(self, problem: str) -> None:
        """Log + diagnose a problem when its kind changes (numbers aside) or every LOG_PERIOD_S."""
        now = time.monotonic()
        kind = re.sub(r"-?\d+(\.\d+)?", "#", problem)
        if kind != re.sub(r"-?\d+(\.\d+)?", "#", self._last_problem) or now - self._last_log > LOG_PERIOD_S:
            self.get_logger().warning(problem)
            self._diag.publish("error", problem, self._values())
            self._last_log = now
        self._last_problem = problem

    def _values(self) -> dict[str, object]:
        m = self.loop.monitor
        return {"enabled": self.loop.enabled, "stop_reason": self.loop.stop_reason, "steps": self._steps,
                "published": self._published, "refused": self.loop.refusals, "overruns": m.overruns,
                "worst_step_ms": f"{m.worst * 1e3:.3f}", "budget_ms": f"{m.budget * 1e3:.3f}",
                "joint_state_age_s": f"{self._now() - self.loop.inputs.joint_state_time:.3f}"}

    def _publish_diagnostics(self) -> None:
        if not self.loop.enabled:
            level = "error" if self.loop.stop_reason.startswith("deadline") else "ok"
            self._diag.publish(level, f"idle: {self.loop.stop_reason}", self._values())
        elif self._last_problem:
            self._diag.publish("error", self._last_problem, self._values())
        else:
            self._diag.publish("ok", "commanding", self._values())


def main(args: list[str] | None = None) -> None:
    try:
        spin_node(PolicyNode, args)
    except PolicyStartupError:
        sys.exit(1)  # the reason is already logged


if __name__ == "__main__":
    main()
