"""drex train: generate expert grasp data in MuJoCo, train the policy by behaviour cloning, export ONNX.

Reproduces the shipped model: `drex train` with the defaults regenerates the same seeded
data set, trains with the same seed and writes drex_ros/models/grasp_policy.onnx, the two
mass-band models used by `drex eval --cross` (light: trained on objects <= 0.6 kg only,
heavy: >= 0.95 kg only), the training curve and a JSON summary for the model card.
Run it under `nice`; it uses at most 2 worker processes.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
# The data set cache, in the checkout's build/ whatever --out-dir says (it was out-dir/../../build:
# `--out-dir /tmp/x` put the cache at /build).
DATA_CACHE_DIR = Path(__file__).resolve().parents[2] / "build" / "training"
BANDS = {"light": (0.0, 0.6), "heavy": (0.95, 10.0)}
# Part of the cached data set's file name: bump it whenever the grasp plan or the expert changes,
# so a data set cached for an older grasp is not silently reused (v2: object centred on the finger axis).
DATA_VERSION = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, default=400, help="randomized objects to label (default 400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="data generation processes (1 or 2)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--frame-stride", type=int, default=2, help="keep every n-th 50 Hz frame for training")
    parser.add_argument("--out-dir", type=Path, default=MODELS_DIR, help="where models and plots go")
    parser.add_argument("--data", type=Path, default=None,
                        help="data set file (.npz): reused if it exists, else generated and saved there")
    parser.add_argument("--no-bands", action="store_true", help="skip the light/heavy band models")


def _load_or_generate(args: argparse.Namespace) -> tuple[dict, float]:
    from drex_ros.training.dataset import generate_dataset, save_dataset

    name = f"grasp_data_v{DATA_VERSION}_seed{args.seed}_n{args.episodes}.npz"
    path = args.data or DATA_CACHE_DIR / name
    path = Path(path).resolve()
    if path.exists():
        print(f"reusing data set {path}")
        return dict(np.load(path)), 0.0
    t0 = time.monotonic()
    episodes = generate_dataset(args.episodes, args.seed, args.workers)
    seconds = time.monotonic() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(episodes, str(path))
    print(f"data set: {len(episodes)} episodes in {seconds:.0f} s -> {path}")
    return dict(np.load(path)), seconds


def _episode_subset(data: dict, keep: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """obs, act, lengths of the kept episodes, every `stride`-th frame."""
    starts = np.concatenate([[0], np.cumsum(data["lengths"])[:-1]])
    obs, act, lengths = [], [], []
    for e in np.flatnonzero(keep):
        rows = np.arange(starts[e], starts[e] + data["lengths"][e])[::stride]
        obs.append(data["obs"][rows])
        act.append(data["act"][rows])
        lengths.append(len(rows))
    return np.concatenate(obs), np.concatenate(act), np.array(lengths)


def _plot_curves(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for k, (name, r) in enumerate(results.items()):
        colour = f"C{k}"
        ax1.semilogy(r.train_loss, color=colour, label=f"{name} train")
        if r.val_loss:
            ax1.semilogy(r.val_loss, "--", color=colour, label=f"{name} validation")
            ax2.plot(r.val_effort_mae, color=colour, label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("weighted MSE (normalized)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation |grip error| (fraction of 0.7 N*m)")
    ax2.legend(fontsize=7)
    fig.suptitle("grasp policy behaviour cloning")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(args: argparse.Namespace) -> int:
    if args.episodes < 10 or args.epochs < 1 or args.frame_stride < 1:
        print("drex train: need --episodes >= 10, --epochs >= 1, --frame-stride >= 1")
        return 2
    from drex_ros.training.behaviour_cloning import TrainConfig, train_policy
    from drex_ros.training.export import check_roundtrip, export_onnx

    t_start = time.monotonic()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    data, gen_seconds = _load_or_generate(args)
    mass = data["mass"]
    bands = {"main": np.ones(len(mass), dtype=bool)}
    if not args.no_bands:
        bands.update({k: (mass >= lo) & (mass <= hi) for k, (lo, hi) in BANDS.items()})
    results, files = {}, {}
    for name, keep in bands.items():
        obs, act, lengths = _episode_subset(data, keep, args.frame_stride)
        print(f"training '{name}' on {int(keep.sum())} episodes, {len(obs)} frames")
        result = train_policy(obs, act, lengths, TrainConfig(epochs=args.epochs, seed=args.seed))
        target = args.out_dir / ("grasp_policy.onnx" if name == "main" else f"grasp_policy_band_{name}.onnx")
        onnx_bytes = export_onnx(result, target)
        diff = check_roundtrip(result, onnx_bytes, obs[:: max(1, len(obs) // 200)])
        print(f"  exported {target} ({len(onnx_bytes) / 1e6:.2f} MB), ONNX Runtime vs torch max |diff| {diff:.2e}")
        if diff > 1e-3:
            print("drex train: ONNX export does not reproduce torch")
            return 1
        results[name], files[name] = result, str(target)
    _plot_curves(results, args.out_dir / "training_curve.png")
    lifted = np.isfinite(data["least_effort"])
    summary = {
        "episodes": int(len(mass)), "frames": int(data["lengths"].sum()), "frame_stride": args.frame_stride,
        "seed": args.seed, "epochs": args.epochs,
        "liftable_episodes": int(lifted.sum()), "expert_success": float(np.mean(data["expert_success"])),
        "data_seconds": round(gen_seconds, 1), "total_seconds": round(time.monotonic() - t_start, 1),
        # CPU actually used (this process + data workers): on 2 idle cores the wall time is about half.
        "cpu_seconds": round(_cpu_seconds(), 1),
        "train_seconds": {k: round(r.seconds, 1) for k, r in results.items()},
        "final_val_grip_mae": {k: (r.val_effort_mae[-1] if r.val_effort_mae else None) for k, r in results.items()},
        "band_episodes": {k: int(v.sum()) for k, v in bands.items()}, "models": files,
    }
    (args.out_dir / "training_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0
