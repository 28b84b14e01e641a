"""Physics and rendering speed of the full robot + object scene (one core, 2 ms step).

The robot sweeps its arm and flexes its fingers while the object rests on the table;
the same motion is timed without rendering, then with 640x480 RGB + depth frames at
15 Hz of sim time. Real-time factor = simulated seconds per wall second.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("LP_NUM_THREADS", "1")  # keep the software rasterizer on one core

from drex_ros.core.sim.scene import Scene  # noqa: E402

CAMERA_HZ = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _motion(scene: Scene, t: float, home: np.ndarray) -> np.ndarray:
    q = home.copy()
    q[0] += 0.3 * np.sin(2 * np.pi * 0.5 * t)
    q[3] += 0.2 * np.sin(2 * np.pi * 0.3 * t)
    q[7:] += 0.4 * (1 - np.cos(2 * np.pi * 0.4 * t))
    return q


def _run(seconds: float, render: bool) -> dict[str, float]:
    scene = Scene()
    home = scene.joint_positions()
    steps = int(round(seconds / scene.timestep))
    frame_every = int(round(1.0 / CAMERA_HZ / scene.timestep))
    frames = 0
    start = time.perf_counter()
    for k in range(steps):
        if k % 10 == 0:
            scene.set_targets(_motion(scene, scene.time, home))
        scene.step()
        if render and k % frame_every == 0:
            scene.render_rgb()
            scene.render_depth()
            frames += 1
    wall = time.perf_counter() - start
    scene.close()
    return {"steps_per_s": steps / wall, "rtf": seconds / wall, "frames": frames, "wall_s": wall}


def run(args: argparse.Namespace) -> int:
    physics = _run(args.seconds, render=False)
    render = _run(args.seconds, render=True)
    result = {
        "rtf_physics": physics["rtf"],
        "steps_per_s_physics": physics["steps_per_s"],
        "rtf_render": render["rtf"],
        "steps_per_s_render": render["steps_per_s"],
        "camera_hz": CAMERA_HZ,
        "frames_rendered": render["frames"],
        "timestep_s": 0.002,
        "sim_seconds": args.seconds,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"scene: Panda + Allegro + box, 2 ms step, {args.seconds:.0f} s simulated per run, one core")
    print(f"{'run':<34}{'steps/s':>12}{'real-time factor':>20}")
    print(f"{'physics only':<34}{physics['steps_per_s']:>12,.0f}{physics['rtf']:>20.1f}")
    label = f"+ RGB-D 640x480 at {CAMERA_HZ:.0f} Hz"
    print(f"{label:<34}{render['steps_per_s']:>12,.0f}{render['rtf']:>20.2f}")
    print(f"target rtf_physics >= 10: {'met' if physics['rtf'] >= 10 else 'NOT met'}")
    return 0
