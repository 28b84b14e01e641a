"""Calibrate the robot through the running stack: the excitation motion, recorded and fitted.

Calls task_node's /drex/calibrate_robot (between tasks; refused during one or while the e-stop
is engaged). The task node grants the command stream to mass_id_node, which swings the arm
around its home pose through smoother and safety (about 46 s of motion), saves the recording to
its record_dir as an `excite_*` bag and fits robot_calibration.yaml there
(core/massid/robot_calibration.py). Point mass_id_node's `robot_calibration` parameter at that
file; `drex calibrate-robot BAG` refits a saved bag.
"""

from __future__ import annotations

import argparse
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=900.0, help="wall seconds to wait for the result")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from std_srvs.srv import Trigger

    rclpy.init(args=args.ros_args or None)
    node = rclpy.create_node("drex_excite")
    try:
        client = node.create_client(Trigger, "/drex/calibrate_robot")
        if not client.wait_for_service(timeout_sec=10.0):
            print("drex excite: error: /drex/calibrate_robot is not available: is the stack (task_node) running?",
                  file=sys.stderr)
            return 2
        print("the arm swings around its home pose for about 46 s (keep the space around it clear) ...", flush=True)
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + args.timeout
        while not future.done() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not future.done():
            print(f"drex excite: error: no answer within {args.timeout:.0f} s", file=sys.stderr)
            return 1
        result = future.result()
        print(result.message if result.success else f"drex excite: {result.message}",
              file=sys.stdout if result.success else sys.stderr)
        return 0 if result.success else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
