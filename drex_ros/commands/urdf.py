"""Write the composed Panda + Allegro URDF (for RViz, robot_state_publisher, ...)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drex_ros.core.paths import PACKAGE_DIR
from drex_ros.core.robot.description import write_urdf

CHECKOUT_URDF = PACKAGE_DIR.parent / "urdf" / "panda_allegro.urdf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", nargs="?", type=Path, default=None,
                        help=f"output path (default: the source checkout's {CHECKOUT_URDF})")


def run(args: argparse.Namespace) -> int:
    output = args.output
    if output is None:
        if not CHECKOUT_URDF.parent.is_dir():
            print(f"drex urdf: no source checkout here ({CHECKOUT_URDF.parent} does not exist); "
                  "give an output path", file=sys.stderr)
            return 2
        output = CHECKOUT_URDF
    print(f"wrote {write_urdf(output)}")
    return 0
