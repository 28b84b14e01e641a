"""Run the sim node, move the robot through a few poses and print what it published."""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds-per-pose", type=float, default=1.5, help="sim seconds spent at each pose")
    parser.add_argument("--no-camera", action="store_true", help="do not render camera images")


def _poses() -> list[np.ndarray]:
    from drex_ros.core.robot.model import JOINT_NAMES, robot_model

    home = robot_model().home()
    reach = home.copy()
    reach[[1, 3]] += [0.3, 0.3]
    turn = reach.copy()
    turn[0] += 0.4
    closed = turn.copy()
    for name in JOINT_NAMES[7:]:
        i = JOINT_NAMES.index(name)
        closed[i] = 0.6 * robot_model().limits.upper[i]
    return [home, reach, turn, closed, home]


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from drex_ros.core.robot.model import JOINT_NAMES, robot_model
    from drex_ros.nodes.ros_io import joint_state_arrays, make_joint_state
    from drex_ros.nodes.sim_node import SimNode

    rclpy.init()
    sim = SimNode(parameter_overrides=[rclpy.parameter.Parameter("publish_camera", value=not args.no_camera)])
    listener = rclpy.create_node("drex_sim_demo")
    counts: Counter = Counter()
    latest: dict[str, JointState] = {}
    topics = ["/joint_states", "/clock", "/camera/color/image_raw", "/camera/depth/image_rect_raw",
              "/camera/color/camera_info", "/drex/sim/object_pose_gt"]
    for topic, msg_type in zip(topics, _types(), strict=True):
        listener.create_subscription(msg_type, topic, lambda m, t=topic: (counts.update([t]), latest.update({t: m})),
                                     10)
    pub = listener.create_publisher(JointState, "/drex/joint_command", 10)
    executor = SingleThreadedExecutor()
    executor.add_node(sim)
    executor.add_node(listener)
    wall = time.monotonic()
    try:
        for k, pose in enumerate(_poses()):
            pub.publish(make_joint_state(listener.get_clock().now().to_msg(), JOINT_NAMES, pose,
                                         effort=robot_model().limits.effort))
            end = sim.hw.time + args.seconds_per_pose
            while sim.hw.time < end:
                executor.spin_once(timeout_sec=0.01)
            q = joint_state_arrays(latest["/joint_states"], JOINT_NAMES)["position"]
            err = np.abs(q - pose).max()
            print(f"pose {k + 1}: reached within {np.degrees(err):.2f} deg (max joint error) at t={sim.hw.time:.2f} s")
    finally:
        sim_time = sim.hw.time
        executor.shutdown()
        sim.destroy_node()
        listener.destroy_node()
        rclpy.shutdown()
    elapsed = time.monotonic() - wall
    print(f"\npublished in {sim_time:.1f} s of sim time ({elapsed:.1f} s wall):")
    for topic in topics:
        print(f"  {topic:<34} {counts[topic]:>6} msgs  {counts[topic] / sim_time:7.1f} Hz (sim time)")
    return 0


def _types():
    from geometry_msgs.msg import PoseStamped
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image, JointState

    return [JointState, Clock, Image, Image, CameraInfo, PoseStamped]
