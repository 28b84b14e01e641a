"""Identify an object's mass from a recorded push or weighing probe (rosbag2 MCAP bag).

Reads /joint_states, /drex/joint_command and /drex/object_pose (no ground truth), prints the
result and writes a PNG: for a push, observed vs simulated object trajectory, measured vs
simulated push force, and the loss over mass; for a weighing (a bag in which the object is
lifted), the lift and the weight read over the hold. The object's shape and size are given on
the command line (the perception model knows them; the bag does not).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drex_ros.core.bag import BagError, bag_folder
from drex_ros.core.massid.identify import identify
from drex_ros.core.massid.recording import read_recording
from drex_ros.core.massid.robot_calibration import RobotCalibration
from drex_ros.core.massid.trajectory_match import mass_friction_of
from drex_ros.core.massid.types import MassIdConfig, RecordingError

SIZE_COUNT = {"box": 3, "cylinder": 2, "sphere": 1}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 directory, or the .mcap file inside it")
    parser.add_argument("--shape", required=True, choices=sorted(SIZE_COUNT))
    parser.add_argument("--size", required=True, type=float, nargs="+",
                        help="box: x y z; cylinder: radius height; sphere: radius (m)")
    parser.add_argument("--plot", help="PNG to write (default: next to the bag, <bag>_massid.png)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (saves a few rollouts)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--calibration", default="",
                        help="robot_calibration.yaml from `drex calibrate-robot`: its effort offsets and joint "
                             "friction are taken out of the arm's efforts first")


def run(args: argparse.Namespace) -> int:
    if len(args.size) != SIZE_COUNT[args.shape]:
        print(f"drex identify: error: a {args.shape} needs {SIZE_COUNT[args.shape]} size values, got {len(args.size)}",
              file=sys.stderr)
        return 2
    cfg = MassIdConfig()
    if args.calibration:
        try:
            cfg.calibration = RobotCalibration.load(args.calibration)
        except ValueError as exc:
            print(f"drex identify: error: {exc}", file=sys.stderr)
            return 2
    quiet = args.json
    try:
        bag = bag_folder(args.bag)
        rec = read_recording(bag, args.shape, tuple(args.size))
    except BagError as exc:  # not a bag that can be read: a usage error
        print(f"drex identify: error: {exc}", file=sys.stderr)
        return 2
    try:
        est = identify(rec, cfg, progress=None if quiet else (lambda msg: print(f"  {msg}", flush=True)))
    except RecordingError as exc:  # a readable bag whose data the identifier refuses
        print(f"drex identify: error: {exc}", file=sys.stderr)
        return 1
    out = {"bag": str(bag), "identifiable": est.identifiable, "mass": est.mass, "std": est.std,
           "friction": est.friction, "friction_std": est.friction_std, "residual": est.residual_rms,
           "reason": est.reason, "command_delay_s": est.cmd_delay, "camera_offset_s": est.pose_offset,
           "rollouts": est.rollouts, "wall_s": est.wall_s, "force_misfit_n": est.force_rms,
           # the best fit, kept for diagnosis even when it is not a trustworthy number
           "best_fit_mass": mass_friction_of(est.best_x)[0], "method": est.method}
    if not args.no_plot:
        png = Path(args.plot) if args.plot else bag.parent / f"{bag.name}_massid.png"
        if est.method == "weigh":
            from drex_ros.core.massid.weigh_report import plot_weighing

            plot_weighing(rec, est, png, cfg, title=str(bag))
        else:
            from drex_ros.core.massid.report import build_report, plot_report

            plot_report(build_report(rec, est, cfg), png, title=str(bag))
        out["plot"] = str(png)
    if args.json:
        print(json.dumps(out))
    else:
        print(("mass: " + est.summary()) if est.identifiable else f"mass: unidentifiable ({est.reason})")
        if "plot" in out:
            print(f"plot: {out['plot']}")
    return 0
