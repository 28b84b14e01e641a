"""Calibrate the robot from an excitation bag: the arm's effort offsets and joint friction.

The bag is what `drex excite` records (mass_id_node's /drex/excite_robot: the arm swings every
joint in free space through the command chain). The fit is core/massid/robot_calibration.py;
the result is a YAML file the identifier reads (`drex identify --calibration`, mass_id_node's
`robot_calibration` parameter), with a standard deviation for every value and "unidentifiable"
(null) for a joint the motion did not excite. A PNG shows the per-joint residual before and after.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from drex_ros.core.bag import BagError, bag_folder
from drex_ros.core.massid.recording import read_arm_recording
from drex_ros.core.massid.robot_calibration import PER_JOINT, calibrate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="the excitation bag (rosbag2 directory or .mcap)")
    parser.add_argument("--out", type=Path, default=Path("robot_calibration.yaml"),
                        help="where to write the calibration (a hardware profile keeps it in its folder)")


def run(args: argparse.Namespace) -> int:
    try:
        rec = read_arm_recording(bag_folder(args.bag))
    except BagError as exc:
        print(f"drex calibrate-robot: error: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        cal = calibrate(rec, (float(rec.joint_t[0]), float(rec.joint_t[-1])))
    except ValueError as exc:
        print(f"drex calibrate-robot: error: {exc}", file=sys.stderr)
        return 1
    print(f"calibrated from {rec.joint_t[-1] - rec.joint_t[0]:.1f} s of motion in {time.perf_counter() - start:.1f} s "
          f"({cal.samples} sliding samples, {cal.inertial_rank} inertial combinations identified)")
    print(f"{'joint':>5} " + " ".join(f"{n + ' (+/- 2 std)':>22}" for n in PER_JOINT) + f" {'residual':>9}")
    for j in range(len(cal.offset)):
        cells = [f"{getattr(cal, n)[j]:+9.4f} +/- {2 * cal.std[n][j]:7.4f}" for n in PER_JOINT]
        print(f"{j + 1:>5} " + " ".join(f"{c:>22}" for c in cells) + f" {cal.residual_rms[j]:9.4f}")
    for note in cal.notes:
        print(f"  {note}")
    print(f"written to {cal.save(args.out)}")
    return 0
