"""Re-simulate a recorded bag in MuJoCo, or replay its observations through a policy.

`drex replay BAG.mcap [--mass KG]`: the recorded /drex/joint_command stream drives the
MuJoCo scene from the recorded start; prints the sim-vs-recorded divergence of joints and
object and writes a plot. `drex replay --policy BAG.mcap [--model M.onnx]`: the recorded
observations go through the policy in lockstep; prints how its actions differ from the
recorded ones (exit code 1 beyond --tolerance) and writes a plot. Only topics a real
robot records are used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from drex_ros.core.robot.model import JOINT_NAMES

RESIM_TOPICS = ["/joint_states", "/drex/joint_command", "/drex/object_pose"]
POLICY_TOPICS = ["/joint_states", "/drex/object_pose", "/drex/policy/joint_command"]
POLICY_OPTIONAL = ["/drex/object_mass", "/drex/policy/arm_reference", "/drex/policy/plan_time", "/drex/task_state"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, help="rosbag2 MCAP bag (folder or .mcap file's folder)")
    parser.add_argument("--policy", action="store_true", help="replay observations through the policy instead")
    parser.add_argument("--model", type=Path, default=None, help="ONNX policy (default: the shipped model)")
    parser.add_argument("--mass", type=float, default=None, help="object mass for the re-simulation (kg); "
                        "default: the last /drex/object_mass in the bag, else 0.3")
    parser.add_argument("--friction", type=float, default=None, help="object friction (default: bag's, else 0.6)")
    parser.add_argument("--shape", default="box", choices=["box", "cylinder", "sphere"])
    parser.add_argument("--size", type=float, nargs="+", default=[0.06, 0.06, 0.06], help="object size (m)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="policy mode: max hand target difference (rad)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG to write (default: next to the bag)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _mass_from_bag(series: dict, args: argparse.Namespace) -> tuple[float, float]:
    mass, friction = 0.3, 0.6
    recorded = series.get("/drex/object_mass")
    if recorded is not None and len(recorded):
        last = np.asarray(recorded.fields["data"][-1], dtype=float)
        mass = float(last[0])
        friction = float(last[2]) if last.size > 2 and np.isfinite(last[2]) else friction
    return (args.mass if args.mass is not None else mass), (args.friction if args.friction is not None else friction)


def run(args: argparse.Namespace) -> int:
    from drex_ros.core.bag import BagError, read_topics
    from drex_ros.core.sim.resimulate import ReplayError

    plot = args.plot or args.bag.with_name(args.bag.name.replace(".mcap", "") + ("_policy" if args.policy else
                                                                                  "_replay") + ".png")
    try:
        if args.policy:
            series = read_topics(args.bag, POLICY_TOPICS + POLICY_OPTIONAL, optional=POLICY_OPTIONAL)
            return _run_policy(series, args, plot)
        series = read_topics(args.bag, RESIM_TOPICS + ["/drex/object_mass"], optional=["/drex/object_mass"])
        return _run_resim(series, args, plot)
    except (BagError, ReplayError, ValueError) as exc:
        print(f"drex replay: {exc}")
        return 2


def _run_resim(series: dict, args: argparse.Namespace, plot: Path) -> int:
    from drex_ros.core.sim.resimulate import resimulate
    from drex_ros.core.sim.scene import ObjectConfig

    mass, friction = _mass_from_bag(series, args)
    obj = ObjectConfig(shape=args.shape, size=tuple(args.size), mass=mass, friction=friction)
    obj.validate()
    div = resimulate(series["/joint_states"], series["/drex/joint_command"], series["/drex/object_pose"], obj)
    summary = div.summary()
    _plot_resim(div, plot)
    if args.json:
        print(json.dumps({**summary, "plot": str(plot)}))
        return 0
    print(f"re-simulated {div.joint_t[-1] - div.joint_t[0]:.1f} s with a {mass:.3f} kg {args.shape} "
          f"(friction {friction:.2f})")
    print(f"  joints  RMS sim-recorded: arm {summary['joint_rms_arm_deg']:.2f} deg, "
          f"hand {summary['joint_rms_hand_deg']:.2f} deg")
    print(f"  object  position error: median {summary['object_err_median_mm']:.1f} mm, "
          f"max {summary['object_err_max_mm']:.1f} mm, final {summary['object_err_final_mm']:.1f} mm")
    print(f"  plot: {plot}")
    return 0


def _run_policy(series: dict, args: argparse.Namespace, plot: Path) -> int:
    from drex_ros.core.policy.replay import replay_policy
    from drex_ros.core.policy.runtime import PolicyModel

    model_path = args.model or Path(__file__).resolve().parents[1] / "models" / "grasp_policy.onnx"
    comparison = replay_policy(PolicyModel(model_path), series, tuple(args.size))
    summary = comparison.summary()
    _plot_policy(comparison, plot)
    passed = summary["hand_target_max_rad"] <= args.tolerance and summary["refused"] == 0
    if args.json:
        print(json.dumps({**summary, "passed": passed, "plot": str(plot)}))
    else:
        print(f"replayed {summary['steps']} policy steps through {model_path.name}")
        print(f"  hand targets vs recorded: RMS {summary['hand_target_rms_rad']:.4f} rad, "
              f"max {summary['hand_target_max_rad']:.4f} rad (tolerance {args.tolerance})")
        print(f"  grip effort max difference: {summary['grip_effort_max_diff_nm']:.3f} N*m; "
              f"steps refused: {summary['refused']}")
        print(f"  {'PASS' if passed else 'FAIL'}; plot: {plot}")
    return 0 if passed else 1


def _overlay_joints(ax, t, recorded, other, joints: tuple[int, ...], other_name: str) -> None:
    """A few joints, recorded (solid) against re-simulated or replayed (dashed)."""
    for k, j in enumerate(joints):
        ax.plot(t, recorded[:, j], color=f"C{k}", label=f"{JOINT_NAMES[j]} recorded")
        ax.plot(t, other[:, j], "--", color=f"C{k}", label=other_name)
    ax.legend(fontsize=7, ncol=4)


def _plot_resim(div, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    _overlay_joints(axes[0], div.joint_t, div.joint_recorded, div.joint_simulated, (0, 3, 8, 20), "simulated")
    axes[0].set_ylabel("joint position (rad)")
    for k, axis in enumerate("xyz"):
        axes[1].plot(div.object_t, div.object_recorded[:, k], color=f"C{k}", label=f"{axis} recorded")
        axes[1].plot(div.object_t, div.object_simulated[:, k], "--", color=f"C{k}", label=f"{axis} simulated")
    axes[1].set_ylabel("object position (m)")
    axes[1].legend(fontsize=7, ncol=3)
    axes[2].plot(div.object_t, div.object_error_mm)
    axes[2].set_ylabel("object error (mm)")
    axes[2].set_xlabel("time (s)")
    fig.suptitle(f"re-simulation vs recording (mass {div.mass:.3f} kg)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_policy(cmp, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    _overlay_joints(axes[0], cmp.t, cmp.recorded, cmp.replayed, (8, 12, 16, 20), "replayed")
    axes[0].set_ylabel("hand target (rad)")
    axes[1].plot(cmp.t, cmp.recorded_effort[:, 8], label="recorded")
    axes[1].plot(cmp.t, cmp.replayed_effort[:, 8], "--", label="replayed")
    axes[1].set_ylabel("grip effort limit (N*m)")
    axes[1].set_xlabel("time (s)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
