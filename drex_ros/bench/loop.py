"""Whole episodes under load: how often the loop reaches `done`, idle and with a CPU hog.

Each episode runs the whole stack on one object (perceive, probe, identify, grasp, lift, hold),
as `drex demo` does: every node its own process (as `ros2 launch` runs them), or all in one
`drex bringup` process. The hog is two busy worker processes the bench starts itself, as a
robot computer's logging, browser and second camera would load it. A lost episode names its
cause (the task's failure reason, or the state it was stuck in).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

from drex_ros.commands.demo import OBJECTS, DemoObject, run_episode

# The demo's three objects and two spheres (a sphere is not pushed: it is grasped with the
# fallback mass or weighed, where weigh_spheres is set).
SPHERES = [DemoObject("light sphere", "sphere", [0.03], 0.2, 0.8),
           DemoObject("heavy sphere", "sphere", [0.03], 0.9, 0.9)]
MODES = {"one_process": True, "per_node": False}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=5, help="episodes per condition (cycling over the objects)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--loads", nargs="+", default=["idle", "loaded"], choices=["idle", "loaded"])
    parser.add_argument("--hog-workers", type=int, default=2, help="busy processes in the loaded condition")
    parser.add_argument("--timeout", type=float, default=480.0, help="wall seconds allowed per episode")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "drex_bench_loop")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _busy() -> None:
    while True:
        pass


class CpuHog:
    """`workers` processes spinning at 100 % of a core each, for the duration of a `with`."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._procs: list[multiprocessing.Process] = []

    def __enter__(self) -> CpuHog:
        self._procs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(self.workers)]
        for p in self._procs:
            p.start()
        return self

    def __exit__(self, *exc) -> None:
        for p in self._procs:
            p.terminate()
            p.join(5)


def _episode(obj: DemoObject, out: Path, index: int, one_process: bool, timeout: float) -> dict:
    with contextlib.redirect_stdout(sys.stderr):  # the episode's state lines: stdout is the table or the JSON
        result = run_episode(obj, out, index, timeout=timeout, policy_model="", one_process=one_process)
    done = result.state == "done"
    cause = "" if done else (result.reason or f"stuck in {result.state}")
    return {"object": obj.name, "state": result.state, "done": done, "cause": cause,
            "mass": result.mass, "wall_s": round(result.wall_s, 1),
            "durations": {k: round(v, 2) for k, v in result.durations.items()}}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    objects = OBJECTS + SPHERES
    conditions = [(mode, load) for load in args.loads for mode in args.modes]
    bar = tqdm(total=len(conditions) * args.episodes, desc="episodes", disable=args.json, file=sys.stderr)
    summary: dict[str, object] = {}
    episodes: dict[str, list[dict]] = {}
    for mode, load in conditions:
        key = f"{load}_{mode}"
        rows = []
        with CpuHog(args.hog_workers if load == "loaded" else 0):
            for k in range(args.episodes):
                obj = replace(objects[k % len(objects)])
                rows.append(_episode(obj, args.out / key, k + 1, MODES[mode], args.timeout))
                bar.update(1)
                bar.set_postfix_str(f"{key}: {rows[-1]['object']} -> {rows[-1]['state']}")
        episodes[key] = rows
        summary[f"done_{key}"] = sum(r["done"] for r in rows) / len(rows)
        summary[f"causes_{key}"] = dict(Counter(r["cause"] for r in rows if not r["done"]))
    bar.close()
    summary["cpu_count"] = multiprocessing.cpu_count()
    summary["targets"] = {"done_idle": 0.9, "done_loaded": 0.8}
    if args.json:
        print(json.dumps({**summary, "episodes": episodes}))
        return 0
    print(f"{'condition':<24} {'done':>6}  lost episodes (cause)")
    for mode, load in conditions:
        key = f"{load}_{mode}"
        causes = "; ".join(f"{n}x {c}" for c, n in summary[f"causes_{key}"].items()) or "-"
        print(f"{key:<24} {summary[f'done_{key}']:>6.2f}  {causes}")
    return 0
