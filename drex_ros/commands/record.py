"""Record the stack's topics to a rosbag2 MCAP bag until Ctrl-C."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="bag to create (a folder holding the .mcap file)")
    parser.add_argument("--images", action="store_true", help="also record the camera images (large)")
    parser.add_argument("--topic", action="append", default=[], help="record only these topics (repeatable)")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.parameter import Parameter

    from drex_ros.core.bag import BagError
    from drex_ros.nodes.recorder_node import RecorderNode

    rclpy.init(args=getattr(args, "ros_args", []))
    overrides = [Parameter("path", value=args.output), Parameter("images", value=args.images)]
    if args.topic:
        overrides.append(Parameter("topics", value=args.topic))
    try:
        node = RecorderNode(parameter_overrides=overrides)
    except BagError as exc:
        print(f"drex record: {exc}")
        rclpy.shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
