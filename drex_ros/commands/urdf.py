"""Write the composed Panda + Allegro URDF (for RViz, robot_state_publisher, ...)."""

from __future__ import annotations

import argparse

from drex_ros.core.robot.description import write_urdf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", nargs="?", default="urdf/panda_allegro.urdf", help="output path")


def run(args: argparse.Namespace) -> int:
    print(f"wrote {write_urdf(args.output)}")
    return 0
