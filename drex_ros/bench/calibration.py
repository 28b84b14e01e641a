"""Robot calibration: planted per-joint effort offsets and joint friction recovered within 2 std.

Each trial draws a cell (core/sim/reality.py's ranges: sensor offsets and noise, link-side
friction share, link and hand inertials, joint friction, command delay), records the excitation
in it (evaluation/robot_calibration_eval.py) and calibrates. Reported: the share of planted
parameters (offset, Coulomb, viscous; 7 joints each) whose estimate lies within 2 reported std,
per parameter and overall, the median absolute errors, the excitation's length and the fit's
wall time. `--timestep drawn` also draws the cell's physics timestep: a simulator stepping at
another rate than the model's puts integrator terms into the efforts that no real arm has.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np
from tqdm import tqdm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=int, default=10, help="cells drawn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timestep", choices=("model", "drawn"), default="model",
                        help="the cell's physics timestep: the model's (a real arm), or drawn like the other factors")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from drex_ros.core.massid.robot_calibration import calibrate
    from drex_ros.core.sim.reality import draw
    from drex_ros.evaluation.robot_calibration_eval import compare, record_excitation

    rows = []
    for k in tqdm(range(args.trials), desc="calibrating drawn cells", disable=args.json):
        reality = draw(np.random.default_rng(10_000 * args.seed + k))
        if args.timestep == "model":
            reality = dataclasses.replace(reality, timestep=None)
        rec, span = record_excitation(reality)
        t = time.perf_counter()
        cal = calibrate(rec, span)
        rows.append({"trial": k, "fit_s": time.perf_counter() - t, "motion_s": float(rec.joint_t[-1]),
                     "inertial_rank": cal.inertial_rank, **compare(cal, reality)})
    summary = _summary(rows, args)
    if args.json:
        print(json.dumps({**summary, "rows": rows}))
        return 0
    for name in ("offset", "coulomb", "viscous"):
        print(f"{name:8s} within 2 std: {summary['covered_2std'][name]:.2f}   median |error| "
              f"{summary['median_abs_error'][name]:.4f}")
    print(json.dumps(summary, indent=1))
    return 0


def _summary(rows: list[dict], args: argparse.Namespace) -> dict:
    names = ("offset", "coulomb", "viscous")
    covered = {n: float(np.mean([c for r in rows for c in r[n]["covered"]])) for n in names}
    errors = {n: float(np.nanmedian([abs(e - p) for r in rows for e, p in zip(r[n]["estimated"], r[n]["planted"],
                                                                             strict=True)])) for n in names}
    return {"trials": len(rows), "timestep": args.timestep,
            "covered_2std_all": float(np.mean([c for r in rows for n in names for c in r[n]["covered"]])),
            "covered_2std": covered, "median_abs_error": errors,
            "calibration_motion_s": float(np.median([r["motion_s"] for r in rows])),
            "calibration_fit_s": float(np.median([r["fit_s"] for r in rows])),
            "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
            "targets": {"covered_2std_all": 0.9, "calibration_motion_s": 60.0, "calibration_fit_s": 60.0}}
