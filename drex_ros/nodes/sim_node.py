"""sim_node: the MuJoCo hardware mirror. Publishes what the arm, hand and camera drivers would.

Publishes /joint_states, /camera/color/image_raw, /camera/depth/image_rect_raw,
/camera/color/camera_info, /clock and /drex/sim/object_pose_gt; takes position targets on
/drex/joint_command (JointState, effort = per-joint effort limit) or
forward_position_controller/commands (Float64MultiArray, canonical joint order).
~/reset (std_srvs/Trigger) rebuilds the world from the object parameters. The node is
the clock source, so it runs on the wall (steady) clock whatever use_sim_time says.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.core.sim.command_intake import CommandIntake, check_array_command, check_named_command
from drex_ros.core.sim.hardware import CameraFrame, SimulatedHardware
from drex_ros.core.sim.hardware_faults import FaultConfig
from drex_ros.core.sim.pace import PaceWindow, SimPace, parse_factor
from drex_ros.core.sim.reality import reality_from
from drex_ros.core.sim.scene import CameraModel, ObjectConfig, SceneConfig
from drex_ros.nodes.ros_io import Diagnostics, make_joint_state, spin_node, to_stamp

PARAMETERS = {
    "real_time_factor": 1.0,  # or "auto" (core/sim/pace.py)
    "joint_state_rate_hz": 500.0,
    "joint_state_history": 500,  # samples the /joint_states writer keeps for re-sending (1 s at 500 Hz)
    "camera_rate_hz": 15.0,
    "object_pose_rate_hz": 100.0,
    "publish_camera": True,
    "depth_encoding": "32FC1",
    "camera_frame_id": "camera_color_optical_frame",
    "object_shape": "box",
    "object_size": [0.06, 0.06, 0.06],
    "object_mass": 0.3,
    "object_friction": 0.6,
    "object_position": [0.55, 0.0],
    "object_yaw": 0.0,
    "initial_joint_positions": [0.0],  # [0.0] (one value) means the home pose
    "actuator_delay_steps": 0,
    "joint_position_noise": 0.0,
    "joint_velocity_noise": 0.0,
    "joint_effort_noise": 0.0,
    "joint_state_jitter": 0.0,
    "camera_position_noise": 0.0,
    "camera_rotation_noise_deg": 0.0,
    "camera_pixel_noise": 0.0,
    "camera_drop_probability": 0.0,
    "camera_latency": 0.0,
    "fault_seed": 0,
    # How the simulated cell differs from the nominal model (core/sim/reality.py): "exact" (none),
    # "perturbed" (drawn from reality_seed), or a YAML file of Reality fields (wins when set).
    "reality": "exact",
    "reality_seed": 0,
    "reality_file": "",
}
WARN_PERIOD_S = 2.0


class SimNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim_node", **kwargs)
        for name, default in PARAMETERS.items():
            dynamic = ParameterDescriptor(dynamic_typing=name == "real_time_factor")  # a number or "auto"
            self.declare_parameter(name, default, dynamic)
        if self.get_parameter("use_sim_time").value:
            # The sim is the clock; waiting on its own /clock would stall it.
            self.set_parameters([Parameter("use_sim_time", value=False)])
        self._limits = robot_model().limits
        self._diag = Diagnostics(self)
        self._rejections: Counter = Counter()
        self._last_warn = 0.0
        # Reliable delivery re-sends what a subscriber missed only while the writer still holds it:
        # the stack's nodes share this host with the sim (a robot's driver has its own computer),
        # and with 10 samples (20 ms) a busy recorder lost 5 % of the states in 60 ms gaps.
        self._pub_joints = self.create_publisher(JointState, "/joint_states",
                                                 int(self._param("joint_state_history")))
        self._pub_clock = self.create_publisher(ClockMsg, "/clock", 10)
        self._pub_rgb = self.create_publisher(Image, "/camera/color/image_raw", 5)
        self._pub_depth = self.create_publisher(Image, "/camera/depth/image_rect_raw", 5)
        self._pub_info = self.create_publisher(CameraInfo, "/camera/color/camera_info", 5)
        self._pub_gt = self.create_publisher(PoseStamped, "/drex/sim/object_pose_gt", 10)
        self.create_subscription(JointState, "/drex/joint_command", self._on_joint_command, 10)
        self.create_subscription(Float64MultiArray, "forward_position_controller/commands", self._on_array_command, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.hw: SimulatedHardware | None = None
        self._hw_lock = threading.Lock()
        self._start()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._timer = self.create_timer(0.002, self._tick, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)

    # --- set-up --------------------------------------------------------------------
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _scene_config(self) -> SceneConfig:
        obj = ObjectConfig(shape=self._param("object_shape"), size=tuple(self._param("object_size")),
                           mass=float(self._param("object_mass")), friction=float(self._param("object_friction")),
                           position=tuple(self._param("object_position")), yaw=float(self._param("object_yaw")))
        obj.validate()
        kind, path = self._param("reality"), self._param("reality_file")
        reality = None if kind == "exact" and not path else reality_from(kind, int(self._param("reality_seed")), path)
        return SceneConfig(object=obj, reality=reality)

    def _fault_config(self) -> FaultConfig:
        names = [n for n in FaultConfig.__dataclass_fields__ if n != "seed"]
        return FaultConfig(**{n: self._param(n) for n in names}, seed=int(self._param("fault_seed")))

    def _start(self) -> None:
        camera_rate = float(self._param("camera_rate_hz")) if self._param("publish_camera") else 0.0
        if self.hw is not None:
            self.hw.close()
        self.hw = SimulatedHardware(self._scene_config(), self._fault_config(),
                                    joint_rate=float(self._param("joint_state_rate_hz")), camera_rate=camera_rate,
                                    object_rate=float(self._param("object_pose_rate_hz")))
        q0 = np.asarray(self._param("initial_joint_positions"), dtype=float)
        if q0.size == len(JOINT_NAMES):
            self.hw.scene.reset(q0)
            self.hw.command(check_named_command(JOINT_NAMES, q0, [], self._limits))
        self._camera: CameraModel = self.hw.scene.camera_model(nominal=True)
        self._pace = SimPace(parse_factor(self._param("real_time_factor")), time.monotonic(), self.hw.time)
        self._achieved = float("nan")
        cfg = self.hw.scene.config.object
        self.get_logger().info(
            f"world ready: {cfg.shape} {cfg.size} m, {cfg.mass:.3f} kg, friction {cfg.friction:.2f}, "
            f"real_time_factor {self._param('real_time_factor')}, camera {'on' if camera_rate else 'off'}, "
            f"reality {'exact' if self.hw.scene.reality is None else 'perturbed'}")

    # --- commands ------------------------------------------------------------------
    def _apply(self, intake: CommandIntake, source: str) -> None:
        if intake.problems:
            self._rejections.update(intake.problems)
            now = time.monotonic()
            if now - self._last_warn > WARN_PERIOD_S:
                self._last_warn = now
                reasons = ", ".join(f"{k} x{v}" for k, v in intake.problems.items())
                self.get_logger().warning(f"{source}: dropped joints ({reasons})")
        if intake.any_accepted:
            self.hw.command(intake)

    def _on_joint_command(self, msg: JointState) -> None:
        self._apply(check_named_command(msg.name, msg.position, msg.effort, self._limits), "/drex/joint_command")

    def _on_array_command(self, msg: Float64MultiArray) -> None:
        self._apply(check_array_command(msg.data, self._limits), "forward_position_controller/commands")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            with self._hw_lock:  # not under a step in flight
                self._start()
        except (ValueError, TypeError) as exc:
            response.success, response.message = False, f"reset refused: {exc}"
            self.get_logger().error(response.message)
            return response
        response.success, response.message = True, "world rebuilt from parameters"
        return response

    # --- stepping and publishing ---------------------------------------------------------
    def _tick(self) -> None:
        # Held for the whole step: destroy_node must not free MuJoCo (and its GL context) under a
        # step still running in an executor thread (drex bringup's shutdown crashed with -11 there).
        with self._hw_lock:
            if self.hw is not None:
                self._step()

    def _step(self) -> None:
        out = self.hw.advance(self._pace.target(time.monotonic(), self.hw.time))
        for s in out.joints:
            stamp = to_stamp(s.time)
            self._publish(self._pub_joints, make_joint_state(stamp, JOINT_NAMES, s.position, s.velocity, s.effort))
            self._publish(self._pub_clock, ClockMsg(clock=stamp))
        for s in out.object_poses:
            self._publish(self._pub_gt, self._pose(s.time, s.position, s.quat_wxyz))
        for frame in out.frames:
            self._publish_frame(frame)
        window = self._pace.report(time.monotonic(), self.hw.time)
        if window is not None:
            self._report_pace(window)

    def _report_pace(self, w: PaceWindow) -> None:
        self._achieved = w.achieved
        if w.new_factor != w.factor:
            self.get_logger().info(f"real_time_factor auto: {w.factor:.2f} -> {w.new_factor:.2f} (ran at "
                                   f"{w.achieved:.2f}x{', fell behind' if w.behind else ''})")
        elif w.behind and not self._pace.auto:
            self.get_logger().warning(
                f"the sim fell behind real_time_factor {w.factor:.2f} {w.fell_behind}x in the last "
                f"{self._pace.window:.0f} s (ran at {w.achieved:.2f}x): this host is too busy, and subscribers "
                "may lose samples; lower real_time_factor or set it to auto", throttle_duration_sec=10.0)

    def _publish(self, publisher, msg) -> None:
        """A driver keeps running when DDS refuses one sample (e.g. a writer's history is full under load)."""
        try:
            publisher.publish(msg)
        except RCLError as exc:
            self._rejections["publish failed (DDS)"] += 1
            now = time.monotonic()
            if now - self._last_warn > WARN_PERIOD_S:
                self._last_warn = now
                self.get_logger().warning(f"{publisher.topic_name}: sample not published ({exc})")

    def _pose(self, t: float, p: np.ndarray, q: np.ndarray) -> PoseStamped:
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = to_stamp(t), "world"
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, p)
        o = msg.pose.orientation
        o.w, o.x, o.y, o.z = map(float, q)
        return msg

    def _publish_frame(self, frame: CameraFrame) -> None:
        stamp, frame_id = to_stamp(frame.capture_time), self._param("camera_frame_id")
        h, w = frame.depth.shape
        rgb = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3)
        rgb.header.stamp, rgb.header.frame_id = stamp, frame_id
        rgb.data = frame.rgb.tobytes()
        depth = Image(height=h, width=w, is_bigendian=0)
        depth.header.stamp, depth.header.frame_id = stamp, frame_id
        if self._param("depth_encoding") == "16UC1":
            mm = np.where(np.isfinite(frame.depth), np.round(frame.depth * 1000.0), 0)
            depth.encoding, depth.step = "16UC1", w * 2
            depth.data = np.clip(mm, 0, 65535).astype(np.uint16).tobytes()
        else:
            depth.encoding, depth.step = "32FC1", w * 4
            depth.data = frame.depth.astype(np.float32).tobytes()
        self._publish(self._pub_info, self._camera_info(stamp, frame_id))
        self._publish(self._pub_rgb, rgb)
        self._publish(self._pub_depth, depth)

    def _camera_info(self, stamp, frame_id: str) -> CameraInfo:
        cam = self._camera
        info = CameraInfo(height=cam.height, width=cam.width, distortion_model="plumb_bob")
        info.header.stamp, info.header.frame_id = stamp, frame_id
        info.d = [0.0] * 5
        info.k = cam.K.flatten().tolist()
        info.r = np.eye(3).flatten().tolist()
        info.p = np.hstack([cam.K, np.zeros((3, 1))]).flatten().tolist()
        return info

    def _publish_diagnostics(self) -> None:
        others = self.count_publishers("/clock") - 1
        if others > 0:
            # A second simulator (or a bag played with --clock) in this ROS domain: every node's sim
            # time would jump between the two, and each stack's commands would reach the other's robot.
            message = (f"{others} other /clock publisher(s) in ROS domain {os.environ.get('ROS_DOMAIN_ID', '0')}: "
                       "two simulated worlds cross-talk; give each stack its own ROS_DOMAIN_ID")
            self.get_logger().error(message, throttle_duration_sec=10.0)
            self._diag.publish("error", message, {"sim_time": f"{self.hw.time:.3f}"})
            return
        values = {"sim_time": f"{self.hw.time:.3f}", "real_time_factor": f"{self._pace.factor:.2f}",
                  "achieved_rate": f"{self._achieved:.2f}"}
        if self._rejections:
            self._diag.publish("warn", "commands rejected or samples not published", {**self._rejections, **values})
        else:
            self._diag.publish("ok", "running", values)

    def destroy_node(self) -> None:
        with self._hw_lock:
            if self.hw is not None:
                self.hw.close()
                self.hw = None
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(SimNode, args)


if __name__ == "__main__":
    main()
