"""drex eval: success of the grasp policy per mass bin, given the true, identified or a nominal mass.

Prints a table (success per bin and condition, peak grip relative to the least grip that
held the object, and how many objects were liftable at all), plots success against mass,
and with --json prints one JSON object instead. --cross adds the band models written by
`drex train` (trained on light or heavy objects only), each tested on every bin.

Two paths, reported separately:
- in-process (all the per-bin figures): MuJoCo episodes with the policy executed by the
  runtime's own ONNX wrapper, observation builder and action decoder (core/policy.py),
  which is what policy_node runs, but without DDS, the EMA smoother or the safety clamps;
- --chain N: the first N objects of every bin again, each condition through the real node
  chain (sim_node, policy_node, smoother_node, safety_node as separate processes over DDS,
  see training/chain_eval.py); real time, so ~15 s per episode.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from drex_ros.node_process import use_private_domain

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
CHAIN_LOG = Path(tempfile.gettempdir()) / "drex_chain_eval_nodes.log"  # the node processes' output
CONDITION_KEYS = {"true": "success_true_mass", "identified": "success_identified_mass",
                  "nominal": "success_nominal_mass"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drex_ros.commands.demo import FALLBACK_MASS
    from drex_ros.training.evaluation import IDENTIFIED_LOG_SIGMA, NOMINAL_MASS

    parser.add_argument("--model", type=Path, default=MODELS_DIR / "grasp_policy.onnx")
    parser.add_argument("--episodes-per-bin", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000, help="evaluation objects (disjoint from training seeds)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nominal-mass", type=float, default=NOMINAL_MASS, help="kg, the baseline's fixed mass")
    parser.add_argument("--identified-log-sigma", type=float, default=IDENTIFIED_LOG_SIGMA,
                        help="stand-in mass-ID error: log-normal sigma of identified/true mass")
    parser.add_argument("--cross", action="store_true", help="also test the light/heavy band models on every bin")
    parser.add_argument("--chain", type=int, default=0, metavar="N",
                        help="also run N objects per bin and condition through the real node chain")
    parser.add_argument("--chain-rtf", type=float, default=1.0, help="sim_node real_time_factor for --chain")
    parser.add_argument("--chain-domain-id", type=int, default=-1,
                        help="ROS_DOMAIN_ID for --chain (default: a private one from the pid; localhost only)")
    parser.add_argument("--chain-policy-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="policy_node parameter override for --chain (repeatable), e.g. max_overruns:=1000")
    parser.add_argument("--probe", type=int, default=0, metavar="N",
                        help="condition (b) from the real mass-ID node: probe, identify and grasp N objects per bin")
    parser.add_argument("--probe-rtf", type=float, default=0.5, help="sim_node real_time_factor while probing")
    parser.add_argument("--probe-fallback-mass", type=float, default=FALLBACK_MASS,
                        help="kg the grasp is given when the probe says unidentifiable (as the demo's task node)")
    parser.add_argument("--probe-out", type=Path, default=Path(tempfile.gettempdir()) / "drex_eval_probes",
                        help="where the probe bags go")
    parser.add_argument("--plot", type=Path, default=Path("grasp_eval.png"), help="success-vs-mass plot file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "   -"
    return f"{100 * v:5.0f}%" if pct else f"{v:5.2f}"


def print_table(report: dict, out=sys.stdout) -> None:
    bins = report["bins"]
    print(f"grasp policy evaluation ({report['path']}), {report['model']}", file=out)
    print(f"identified mass: {report['identified_mass_source']}; nominal mass {report['nominal_mass']} kg", file=out)
    header = f"{'mass bin (kg)':>14} {'n':>3} {'liftable':>8} {'true':>6} {'ident.':>6} {'nominal':>7}" \
             f" | {'grip/least: true':>16} {'ident.':>6} {'nominal':>7}"
    print(header, file=out)
    g = report["grip_over_least"]
    for i, (lo, hi) in enumerate(bins):
        print(f"{lo:6.2f}-{hi:<6.2f} {report['episodes_per_bin'][i]:4d} {_fmt(report['liftable_fraction'][i]):>8}"
              f" {_fmt(report['success_true_mass'][i]):>6} {_fmt(report['success_identified_mass'][i]):>6}"
              f" {_fmt(report['success_nominal_mass'][i]):>7} | {_fmt(g['true'][i], False):>16}"
              f" {_fmt(g['identified'][i], False):>6} {_fmt(g['nominal'][i], False):>7}", file=out)
    chain = report.get("chain")
    if chain:
        print(f"real node chain ({chain['episodes_per_bin']} episodes per bin and condition):", file=out)
        for i, (lo, hi) in enumerate(bins):
            print(f"{lo:6.2f}-{hi:<6.2f}               {_fmt(chain['success_true_mass'][i]):>6}"
                  f" {_fmt(chain['success_identified_mass'][i]):>6} {_fmt(chain['success_nominal_mass'][i]):>7}",
                  file=out)
        for p in chain["problems"]:
            print(f"  chain problem: {p}", file=out)
        print(f"  (node output: {CHAIN_LOG})", file=out)
    probe = report.get("probe")
    if probe:
        print(f"(b) from the mass-ID node: identified {sum(probe['identified_per_bin'])} of "
              f"{sum(probe['episodes_per_bin'])} probes (median mass error {probe['median_mass_err_pct']}%), "
              f"unidentifiable grasped as {probe['fallback_mass']} kg; stand-in (b) was "
              + " ".join(_fmt(v) for v in report["success_identified_mass_standin"]), file=out)
        for row in probe["rows"]:
            if row["success"] is None:
                print(f"  probe problem: {row['reason']}", file=out)
    for name, rates in report.get("cross_eval", {}).items():
        cells = " ".join(_fmt(r) for r in rates["success"])
        grip = " ".join(_fmt(r, False) for r in rates["grip_over_least"])
        print(f"cross: policy trained on {name} ({rates['trained_on_kg']} kg), true mass: success {cells};"
              f" grip/least {grip}", file=out)


def plot_report(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = [(lo + hi) / 2 for lo, hi in report["bins"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for cond, key in CONDITION_KEYS.items():
        ax1.plot(centres, [100 * (v or 0) for v in report[key]], "o-", label=f"{cond} mass")
        ax2.plot(centres, report["grip_over_least"][cond], "o-", label=f"{cond} mass")
    ax1.plot(centres, [100 * v for v in report["liftable_fraction"]], "k:", label="liftable at full effort")
    for name, rates in report.get("cross_eval", {}).items():
        ax1.plot(centres, [100 * (v or 0) for v in rates["success"]], "s--", label=f"trained on {name} only")
        ax2.plot(centres, rates["grip_over_least"], "s--", label=f"trained on {name} only")
    ax1.set_xlabel("object mass (kg, bin centre)")
    ax1.set_ylabel("lift 10 cm + hold 3 s success (%)")
    ax1.set_ylim(-5, 105)
    ax1.legend(fontsize=7)
    ax2.axhline(1.0, color="grey", lw=0.8)
    ax2.set_xlabel("object mass (kg, bin centre)")
    ax2.set_ylabel("peak grip / least grip that held")
    ax2.legend(fontsize=7)
    fig.suptitle("mass-conditioned grasp policy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_chain(args: argparse.Namespace, bins: list[tuple[float, float]]) -> dict:
    """Success per bin and condition through the real node chain (first `args.chain` objects per bin)."""
    import rclpy
    from tqdm import tqdm

    from drex_ros.training.chain_eval import run_chain_episode
    from drex_ros.training.evaluation import eval_object, object_seed

    jobs = []
    for b, rng_bin in enumerate(bins):
        for i in range(args.chain):
            drawn = eval_object(rng_bin, object_seed(args.seed, b, i), args.nominal_mass, args.identified_log_sigma)
            if drawn is not None:
                jobs += [(b, drawn[0].obj, cond, drawn[1][cond]) for cond in CONDITION_KEYS]
    overrides = {}
    for item in args.chain_policy_param:
        name, sep, value = item.partition(":=")
        if not sep:
            raise ValueError(f"--chain-policy-param {item!r}: expected NAME:=VALUE")
        overrides[name] = value
    use_private_domain(args.chain_domain_id)
    # SIGTERM ends the run like Ctrl-C, so the episode's node processes are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rclpy.init()
    results: dict = {cond: [[] for _ in bins] for cond in CONDITION_KEYS}
    problems = []
    try:
        for b, obj, cond, mass in tqdm(jobs, desc="node chain episodes"):
            out = run_chain_episode(obj, mass, str(args.model), real_time_factor=args.chain_rtf,
                                    log=CHAIN_LOG, policy_overrides=overrides)
            results[cond][b].append(out.success)
            if out.problem:
                problems.append(f"bin {b} {cond}: {out.problem}")
    finally:
        rclpy.shutdown()
    report = {"path": "real node chain: sim_node, policy_node, smoother_node, safety_node processes over DDS",
              "episodes_per_bin": [len(r) for r in results["true"]], "problems": problems,
              "policy_overrides": overrides, "real_time_factor": args.chain_rtf,
              "ros_domain_id": int(os.environ["ROS_DOMAIN_ID"])}
    for cond, key in CONDITION_KEYS.items():
        report[key] = [float(sum(r) / len(r)) if r else None for r in results[cond]]
    return report


def run_probe(args: argparse.Namespace, bins: list[tuple[float, float]]) -> dict:
    """Condition (b) with the mass-ID node (training/probe_eval.py)."""
    import rclpy
    from tqdm import tqdm

    from drex_ros.training.probe_eval import run_probe_eval

    use_private_domain(args.chain_domain_id)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rclpy.init()
    try:
        return run_probe_eval(str(args.model), bins, args.probe, args.seed, args.probe_fallback_mass, args.probe_out,
                              args.probe_rtf, say=(lambda _m: None) if args.json else tqdm.write)
    finally:
        rclpy.shutdown()


def run(args: argparse.Namespace) -> int:
    from drex_ros.training.evaluation import evaluate, mass_bins, summarize
    from drex_ros.training.train_command import BANDS

    if args.episodes_per_bin < 1:
        print("drex eval: --episodes-per-bin must be >= 1", file=sys.stderr)
        return 2
    if not args.model.is_file():
        print(f"drex eval: no model at {args.model} (run `drex train`)", file=sys.stderr)
        return 2
    models = {"main": str(args.model)}
    if args.cross:
        for name in BANDS:
            path = args.model.parent / f"grasp_policy_band_{name}.onnx"
            if not path.is_file():
                print(f"drex eval: --cross needs {path} (written by `drex train`)", file=sys.stderr)
                return 2
            models[name] = str(path)
    bins = mass_bins()
    t0 = time.monotonic()
    outcomes = evaluate(models, args.episodes_per_bin, args.seed, args.workers, args.nominal_mass,
                        args.identified_log_sigma, bins)
    summary = summarize(outcomes, bins, ["true", "identified", "nominal"] + [f"{n}:true" for n in models
                                                                            if n != "main"])
    report = {
        "path": "in-process MuJoCo, policy via core.policy (ONNX Runtime + ObservationBuilder + decode_action)",
        "model": str(args.model),
        "bins": summary["bins"],
        "episodes_per_bin": summary["episodes_per_bin"],
        "success_true_mass": summary["success"]["true"],
        "success_identified_mass": summary["success"]["identified"],
        "success_nominal_mass": summary["success"]["nominal"],
        "liftable_fraction": summary["liftable_fraction"],
        "least_grip_mean": summary["least_effort_mean"],
        "grip_over_least": {k: summary["grip_over_least"][k] for k in CONDITION_KEYS},
        "nominal_mass": args.nominal_mass,
        "identified_mass_source": f"stand-in: true mass x lognormal(0, {args.identified_log_sigma})",
        "seconds": round(time.monotonic() - t0, 1),
    }
    if args.cross:
        report["cross_eval"] = {n: {"trained_on_kg": list(BANDS[n]), "success": summary["success"][f"{n}:true"],
                                    "grip_over_least": summary["grip_over_least"][f"{n}:true"]}
                                for n in models if n != "main"}
    if args.chain > 0:
        report["chain"] = run_chain(args, bins)
    if args.probe > 0:
        report["probe"] = run_probe(args, bins)
        # (b) is the real identifier's; the stand-in stays for comparison.
        report["success_identified_mass_standin"] = report["success_identified_mass"]
        report["success_identified_mass"] = report["probe"]["success_identified_mass"]
        report["identified_mass_source"] = (f"mass_id_node probes through the node chain ({args.probe} objects per "
                                            f"bin; unidentifiable -> {args.probe_fallback_mass} kg)")
    if args.plot:
        plot_report(report, args.plot)
        report["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
        print(f"plot: {args.plot}  ({report['seconds']} s)")
    return 0
