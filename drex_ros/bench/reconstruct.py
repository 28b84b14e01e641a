"""Object reconstruction against the true shape: chamfer, extents, volume, primitive choice, time.

Each object (box, cylinder and sphere over the hand's graspable sizes, an L-block, a bottle, a mug)
stands on the table at a random yaw; the scene camera and a 16-view D405-like scan ring render its
depth with ~1 % depth noise and edge dropouts; the frames are fused and the object model built.
Errors are against the object's true surface (world frame), for the object model (the primitive
where one was chosen, else the closed mesh); mesh_* are the closed mesh's alone. scan_plus_reconstruct_s counts the
rendering of the views (the scan motion itself is not simulated yet) and reconstruction; it is
wall time on whatever load the machine carries, printed with the load average.
Targets: chamfer median <= 3 mm, extent error p90 <= 4 mm, volume error median <= 10 %,
primitive correct >= 95 % on primitives, scan + reconstruct median <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("LP_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")  # Open3D and CoACD thread with OpenMP; the target is for 2 cores

TARGETS = {"chamfer_median_mm": ("<=", 3.0), "extent_err_p90_mm": ("<=", 4.0), "volume_err_median_pct": ("<=", 10.0),
           "primitive_correct_pct": (">=", 95.0), "scan_plus_reconstruct_s": ("<=", 60.0)}
MARGIN = 0.07  # m of table kept around the object's rough position for the plane fit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="one size per primitive (6 objects, not 11)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _chamfer_mm(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return float(1e3 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2)


def measure(obj, yaw: float, seed: int) -> dict:
    from drex_ros.core.reconstruction.frames import DepthFrame
    from drex_ros.core.reconstruction.pipeline import reconstruct
    from drex_ros.core.sim import scan_objects as so
    from drex_ros.core.sim.scan_views import ScanWorld, scan_views

    t0 = time.perf_counter()
    world = ScanWorld(obj, yaw=yaw)
    views = scan_views(world, np.random.default_rng(seed))
    frames = [DepthFrame(v.depth, v.K, v.world_T_camera, source=v.source) for v in views]
    centre = np.array([*world.position, 0.0])
    model = reconstruct(frames, centre + [-0.13, -0.13, -0.02], centre + [0.13, 0.13, 0.25])
    seconds = time.perf_counter() - t0
    world_T_object = np.linalg.inv(world.object_T_world())
    world.close()
    truth = so.surface_points(obj, 20000, seed) @ world_T_object[:3, :3].T + world_T_object[:3, 3]
    true_ext = truth.max(axis=0) - truth.min(axis=0)
    true_vol = so.volume(obj)
    return {"name": obj.name, "true": obj.primitive, "chosen": model.choice.kind,
            "size_mm": [round(1e3 * s, 1) for s in model.choice.fit.size] if model.choice.fit else None,
            "chamfer_mm": _chamfer_mm(_sample(model.surface, seed), truth),
            "mesh_chamfer_mm": _chamfer_mm(_sample(model.mesh, seed), truth),
            "mesh_extent_err_mm": float(1e3 * np.abs(np.ptp(model.mesh.vertices, axis=0) - true_ext).max()),
            "extent_err_mm": float(1e3 * np.abs(model.extents - true_ext).max()),
            "volume_err_pct": float(100 * abs(model.volume - true_vol) / true_vol),
            "parts": len(model.parts), "closed_by": model.mesh.metadata.get("closed_by", ""),
            "seconds": seconds, "stages_s": {k: round(v, 2) for k, v in model.timings.items()}}


def _sample(mesh, seed: int, n: int = 20000) -> np.ndarray:
    import trimesh

    points, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points)


def summarize(records: list[dict]) -> dict:
    prims = [r for r in records if r["true"] != "mesh"]
    return {"chamfer_median_mm": float(np.median([r["chamfer_mm"] for r in records])),
            "extent_err_p90_mm": float(np.percentile([r["extent_err_mm"] for r in records], 90)),
            "volume_err_median_pct": float(np.median([r["volume_err_pct"] for r in records])),
            "primitive_correct_pct": float(100 * np.mean([r["chosen"] == r["true"] for r in prims])),
            "mesh_objects_called_mesh": f"{sum(r['chosen'] == 'mesh' for r in records if r['true'] == 'mesh')}"
                                        f"/{sum(r['true'] == 'mesh' for r in records)}",
            "scan_plus_reconstruct_s": float(np.median([r["seconds"] for r in records])),
            "load_average": list(os.getloadavg()), "objects": records}


def run(args: argparse.Namespace) -> int:
    from drex_ros.core.sim.scan_objects import bench_objects

    rng = np.random.default_rng(args.seed)
    records = []
    for i, obj in enumerate(bench_objects(args.quick)):
        records.append(measure(obj, float(rng.uniform(0, np.pi)), args.seed + i))
        if not args.json:
            r = records[-1]
            print(f"  {r['name']:<20} {r['true']:<8} -> {r['chosen']:<8} size {r['size_mm']}  chamfer "
                  f"{r['chamfer_mm']:.2f} mm  extent {r['extent_err_mm']:.2f} mm  volume {r['volume_err_pct']:.1f} %  "
                  f"parts {r['parts']}  {r['seconds']:.1f} s  (mesh alone: chamfer {r['mesh_chamfer_mm']:.2f} mm, "
                  f"extent {r['mesh_extent_err_mm']:.1f} mm, {r['closed_by']})", flush=True)
    result = summarize(records)
    if args.json:
        print(json.dumps(result))
        return 0
    for key, (op, target) in TARGETS.items():
        value = result[key]
        ok = value <= target if op == "<=" else value >= target
        print(f"  {key:<24} {value:8.2f}   target {op} {target:g}   {'ok' if ok else 'MISSED'}")
    print(f"  mesh objects called mesh: {result['mesh_objects_called_mesh']}; load average "
          f"{', '.join(f'{x:.2f}' for x in result['load_average'])} on {os.cpu_count()} cores (times inflated by it)")
    return 0
