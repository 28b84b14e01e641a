"""Mass identification accuracy and wall time on probes recorded through the sim node.

Objects: three shapes, masses log-spaced over 0.05-1.5 kg, friction 0.3-1.0 (unknown to the
identifier), sizes and poses varied. Each probe is recorded the way the stack runs it, every
node its own process over real DDS: sim_node -> mass_id_node (push, then the weighing probe;
record only) -> smoother_node -> safety_node -> sim_node; the camera pipeline is emulated here
by a relay that republishes /drex/sim/object_pose_gt as /drex/object_pose at 30 Hz with 2 mm /
1 deg noise, dropped frames, latency and a clock offset. The bags are then identified one by
one in this process (timed), from the bags alone, as mass_id_node would: the push, and the
weighing bag only where the push fell short (core.weigh.weighing_reason). `push_only` in the
summary gives the push's own figures, every number it gave.

`--reality perturbed` records each object in a different plausible cell (core/sim/reality.py:
effort offsets and noise, link-side sensing, inertial errors, joint friction, command delay,
timestep, contact, object CoM, camera), set in sim_node and the relay only; the identifier sees
the bags alone. `coverage_2std` and `confident_wrong` say whether the reported std can be trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from drex_ros.core.bag import BagError
from drex_ros.evaluation.massid_probes import BenchObject, identify_bag, latest_bags, record_probe
from drex_ros.node_process import use_private_domain

SIZES = {"box": ((0.04, 0.08), (0.04, 0.08), (0.04, 0.08)), "cylinder": ((0.025, 0.04), (0.05, 0.10)),
         "sphere": ((0.025, 0.04),)}


def make_objects(n: int, seed: int = 0) -> list[BenchObject]:
    rng = np.random.default_rng(seed)
    masses = np.exp(np.linspace(np.log(0.05), np.log(1.5), n))
    shapes = ("box", "cylinder", "sphere")
    out = []
    for i, m in enumerate(masses):
        shape = shapes[i % 3]
        size = tuple(float(round(rng.uniform(*r), 3)) for r in SIZES[shape])
        friction = float(round(rng.uniform(0.3, 1.0), 3))
        position = (float(round(rng.uniform(0.52, 0.58), 3)), float(round(rng.uniform(-0.06, 0.06), 3)))
        yaw = float(round(rng.uniform(-0.3, 0.3), 3)) if shape == "box" else 0.0
        out.append(BenchObject(shape, size, float(round(m, 4)), friction, position, yaw, index=i))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--objects", type=int, default=21, help="number of objects (>= 20 for the report)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/drex_bench_massid"), help="where the bags go")
    parser.add_argument("--reuse", action="store_true", help="identify existing bags instead of recording")
    parser.add_argument("--rtf", type=float, default=0.5,
                        help="sim real-time factor while recording (below 1 leaves the recorder time on a busy host)")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID for the recordings (default: 150 + pid %% 80, away from the tests' 1-101)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--reality", choices=("exact", "perturbed"), default="exact",
                        help="the simulated cell: the identifier's own model (exact), or a different plausible cell "
                             "per object drawn from core/sim/reality.py's ranges (perturbed; sim_node and the pose "
                             "relay only, never the identifier)")
    parser.add_argument("--reality-seed", type=int, default=0, help="seeds the perturbed cells")
    parser.add_argument("--no-calibration", action="store_true",
                        help="identify without robot calibration (perturbed: each cell is otherwise calibrated "
                             "from an excitation recorded in it first)")


def _error_figures(errs: np.ndarray) -> dict:
    return {"median_err_pct": float(np.median(errs)) if errs.size else None,
            "p90_err_pct": float(np.percentile(errs, 90)) if errs.size else None,
            "max_err_pct": float(errs.max()) if errs.size else None}


def reality_seed(args: argparse.Namespace, obj: BenchObject) -> int | None:
    """The perturbed cell object `obj` is recorded in (a different one per object), or None (exact)."""
    return None if args.reality == "exact" else 1000 * args.reality_seed + obj.index


def _honesty(rows: list[dict]) -> dict:
    """Do the numbers' std cover the truth? A confident wrong number (more than 10 % off, its
    2 std short of the truth) is the worst outcome: the policy trusts it."""
    given = [r for r in rows if r["mass_est"] is not None]
    covered = [abs(r["mass_est"] - r["mass"]) <= 2 * r["std_est"] for r in given]
    wrong = [abs(r["mass_est"] / r["mass"] - 1) > 0.10 and not c for r, c in zip(given, covered, strict=True)]
    return {"coverage_2std": float(np.mean(covered)) if given else None, "confident_wrong": int(sum(wrong))}


def _summary(rows: list[dict]) -> dict:
    errs = np.array([abs(r["err_pct"]) for r in rows if r["err_pct"] is not None])
    push_errs = np.array([abs(100.0 * (r["push_mass_est"] / r["mass"] - 1.0)) for r in rows
                          if r.get("push_mass_est") is not None])
    walls = np.array([r["wall_s"] for r in rows if np.isfinite(r["wall_s"])])
    # A refused sphere takes under a second: the wall time of full identifications, on its own.
    walls_identified = np.array([r["wall_s"] for r in rows if r["mass_est"] is not None])
    zs = np.array([(r["mass_est"] - r["mass"]) / r["std_est"] for r in rows if r["mass_est"] is not None])
    return {
        "objects": len(rows),
        "unidentifiable": int(sum(1 for r in rows if not r["identifiable"])),
        "weighed": int(sum(1 for r in rows if r["identifiable"] and r.get("method") == "weigh")),
        **_error_figures(errs),
        "median_wall_s": float(np.median(walls)) if walls.size else None,
        "median_wall_identified_s": float(np.median(walls_identified)) if walls_identified.size else None,
        # Is the reported std honest? RMS of (estimate - truth) / std over the identified objects (~1).
        "rms_z": float(np.sqrt(np.mean(np.square(zs)))) if zs.size else None,
        # The push alone, every number it gave (the weighing probe not run): what weighing adds.
        "push_only": {"identified": int(push_errs.size), **_error_figures(push_errs)},
        **_honesty(rows),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "targets": {"median_err_pct": 3.0, "p90_err_pct": 6.0, "median_wall_s": 3.0, "unidentifiable_share": 0.10,
                    "coverage_2std": 0.9, "confident_wrong": 0},
    }


def _calibrations(objects: list[BenchObject], args: argparse.Namespace) -> tuple[dict[int, object], list[float]]:
    """Each perturbed cell calibrated once, from an excitation recorded in it (in-process:
    evaluation/robot_calibration_eval.py); the fits' wall times. None under --reality exact or
    --no-calibration."""
    if args.reality == "exact" or args.no_calibration:
        return {}, []
    import time

    from tqdm import tqdm

    from drex_ros.core.massid.robot_calibration import calibrate
    from drex_ros.core.sim.reality import reality_from
    from drex_ros.evaluation.robot_calibration_eval import record_excitation

    out, walls = {}, []
    for obj in tqdm(objects, desc="calibrating each cell", disable=args.json, file=sys.stderr):
        rec, span = record_excitation(reality_from("perturbed", reality_seed(args, obj)))
        start = time.perf_counter()
        out[obj.index] = calibrate(rec, span)
        walls.append(time.perf_counter() - start)
    return out, walls


def run(args: argparse.Namespace) -> int:
    import rclpy
    from tqdm import tqdm

    objects = make_objects(args.objects, args.seed)
    say = (lambda _m: None) if args.json else (lambda m: tqdm.write(m))
    bags: dict[int, tuple[Path, Path | None]] = {}
    failed: dict[int, str] = {}
    need = []
    for obj in objects:
        d = args.out / f"object_{obj.index:02d}"
        if args.reuse and d.exists() and any(d.glob("massid_*")):
            bags[obj.index] = latest_bags(d)
        else:
            need.append(obj)
    if need:
        # A private domain: a second simulator in the domain (a running stack, another benchmark)
        # would mix its /clock and commands with this one's.
        use_private_domain(args.domain_id)
        rclpy.init()
        try:
            for obj in tqdm(need, desc="recording probes", disable=args.json, file=sys.stderr):
                try:
                    bags[obj.index] = record_probe(obj, args.out / f"object_{obj.index:02d}", say, args.rtf,
                                                   reality_seed(args, obj))
                except RuntimeError as exc:  # reported in the table, the run goes on
                    failed[obj.index] = str(exc).splitlines()[0]
                    say(f"  object {obj.index}: {failed[obj.index]}")
        finally:
            rclpy.shutdown()
    calibrations, cal_walls = _calibrations([o for o in objects if o.index in bags], args)
    rows = []
    for obj in tqdm(objects, desc="identifying", disable=args.json, file=sys.stderr):
        if obj.index in failed:
            rows.append({**asdict(obj), "bag": None, "identifiable": False, "reason": failed[obj.index],
                         "mass_est": None, "std_est": None, "friction_est": None, "wall_s": float("nan"),
                         "rollouts": 0, "err_pct": None, "method": "push", "weigh_reason": "",
                         "push_mass_est": None})
            continue
        try:
            rows.append(identify_bag(obj, *bags[obj.index], calibration=calibrations.get(obj.index)))
        except BagError as exc:  # a reused bag that cannot be read: say which, no traceback
            print(f"drex bench massid: {exc}", file=sys.stderr)
            return 2
    summary = {**_summary(rows), "reality": args.reality,
               "reality_seed": None if args.reality == "exact" else args.reality_seed,
               "calibrated": bool(calibrations),
               "calibration_wall_s": float(np.median(cal_walls)) if cal_walls else None}
    for r in rows:
        r["reality_seed"] = reality_seed(args, objects[r["index"]])
    if args.json:
        print(json.dumps({**summary, "rows": rows}))
        return 0
    print(f"{'#':>2} {'shape':<8} {'true kg':>8} {'est kg':>8} {'std kg':>7} {'err %':>7} {'by':<5} {'push kg':>8} "
          f"{'mu true':>7} {'mu est':>7} {'wall s':>6}  note")
    for r in rows:
        est = "-" if r["mass_est"] is None else f"{r['mass_est']:.4f}"
        std = "-" if r["std_est"] is None else f"{r['std_est']:.4f}"
        err = "-" if r["err_pct"] is None else f"{r['err_pct']:+.1f}"
        mu = "-" if r["friction_est"] is None else f"{r['friction_est']:.2f}"
        push = "-" if r["push_mass_est"] is None else f"{r['push_mass_est']:.4f}"
        note = f"weighed: {r['weigh_reason']}" if r["method"] == "weigh" else \
            ("" if r["identifiable"] else "unidentifiable: " + r["reason"])
        print(f"{r['index']:>2} {r['shape']:<8} {r['mass']:>8.4f} {est:>8} {std:>7} {err:>7} {r['method']:<5} "
              f"{push:>8} {r['friction']:>7.2f} {mu:>7} {r['wall_s']:>6.2f}  {note}")
    print(json.dumps({k: v for k, v in summary.items()}, indent=1))
    return 0
