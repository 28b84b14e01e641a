"""drex eval: success of the grasp policy per mass bin, given the true, identified, a nominal or the fallback mass.

Prints a table (per bin and condition: held, dropped and crushed, peak grip relative to the
least grip that held the object, the squeeze on the object, and how many objects could be
lifted whole at all), plots them against mass, and with --json prints one JSON object instead.
--cross adds the band models written by `drex train` (trained on light or heavy objects only),
each tested on every bin.

Two paths, reported separately:
- in-process: MuJoCo episodes with the policy executed by the runtime's own ONNX wrapper,
  observation builder and action decoder (core/policy.py), which is what policy_node runs,
  but without DDS, the EMA smoother or the safety clamps; no identifier runs here, so (b) is
  replaced by a stand-in (true mass x log-normal error), reported as such;
- --chain N / --probe N: the first N objects of every bin again through the real nodes
  (training/node_chain_eval.py): (a) and (c) through the node chain, (b) from mass_id_node
  probes and then the node chain. Crushing is judged in-process only. 30-80 s per episode,
  kept in a journal so a run resumes.
  With both, the top-level figures are the node chain's (the in-process ones: "in_process").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from drex_ros.evaluation.node_chain_eval import CONDITION_KEYS

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
JOURNAL = Path(__file__).resolve().parents[2] / "build" / "eval" / "node_chain_journal.jsonl"
CHAIN_LOG = Path(tempfile.gettempdir()) / "drex_chain_eval_nodes.log"  # the node processes' output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from drex_ros.core.control.task_sequence import CONSERVATIVE_FALLBACK_MASS
    from drex_ros.evaluation.in_process import NOMINAL_MASS, STAND_IN_LOG_SIGMA

    parser.add_argument("--model", type=Path, default=MODELS_DIR / "grasp_policy.onnx")
    parser.add_argument("--episodes-per-bin", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000, help="evaluation objects (disjoint from training seeds)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--nominal-mass", type=float, default=NOMINAL_MASS, help="kg, the baseline's fixed mass")
    parser.add_argument("--stand-in-log-sigma", type=float, default=STAND_IN_LOG_SIGMA,
                        help="in-process stand-in for an identified mass: log-normal sigma of given/true mass")
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
    parser.add_argument("--probe-fallback-mass", type=float, default=CONSERVATIVE_FALLBACK_MASS,
                        help="kg the grasp is given when the probe says unidentifiable (as the demo's task node)")
    parser.add_argument("--probe-out", type=Path, default=Path(tempfile.gettempdir()) / "drex_eval_probes",
                        help="where the probe bags go")
    parser.add_argument("--max-minutes", type=float, default=0.0,
                        help="start no node-chain episode after this many minutes (0 = no limit); rerun to go on")
    parser.add_argument("--journal", default=str(JOURNAL), metavar="FILE",
                        help="--chain/--probe episodes done are kept here and not run again ('' = keep none)")
    parser.add_argument("--plot", type=Path, default=Path("grasp_eval.png"), help="success-vs-mass plot file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "   -"
    return f"{100 * v:5.0f}%" if pct else f"{v:5.2f}"


IN_PROCESS_LABELS = {"true": "true", "stand_in": "stand-in", "nominal": "nominal", "fallback": "fallback"}


def print_table(report: dict, out=sys.stdout) -> None:
    ip = report.get("in_process", report)
    bins = report["bins"]
    print(f"grasp policy evaluation ({ip['path']}), {report['model']}", file=out)
    print(f"stand-in mass: {ip['stand_in_mass_source']}; nominal {report['nominal_mass']} kg;"
          f" fallback {report['fallback_mass']} kg; crush limits: {ip['crush_limits']}", file=out)
    print(f"{'':>13} {'':>4} {'lift-':>6} {'whole':>6} | % held/dropped/crushed, mean peak squeeze N", file=out)
    print(f"{'mass bin (kg)':>13} {'n':>4} {'able':>6} {'able':>6} |"
          + "".join(f" {label:>20}" for label in IN_PROCESS_LABELS.values()), file=out)
    for i, (lo, hi) in enumerate(bins):
        cells = "".join(f" {_outcome_cell(ip, cond, i):>20}" for cond in IN_PROCESS_LABELS)
        print(f"{lo:6.2f}-{hi:<6.2f} {ip['episodes_per_bin'][i]:4d} {_fmt(ip['liftable_fraction'][i]):>6}"
              f" {_fmt(ip['feasible_fraction'][i]):>6} |{cells}", file=out)
    g = ip["grip_over_least"]
    print("peak grip / least grip that held: " + "; ".join(
        f"{label} {' '.join(_fmt(v, False) for v in g[cond])}" for cond, label in IN_PROCESS_LABELS.items()), file=out)
    for name, rates in report.get("cross_eval", {}).items():
        cells = " ".join(_fmt(r) for r in rates["success"])
        grip = " ".join(_fmt(r, False) for r in rates["grip_over_least"])
        print(f"cross: policy trained on {name} ({rates['trained_on_kg']} kg), true mass: success {cells};"
              f" grip/least {grip}", file=out)
    if report.get("chain"):
        _print_node_chain(report["chain"], bins, out)


def _outcome_cell(ip: dict, cond: str, i: int) -> str:
    held = ip[f"success_{cond}_mass"][i]
    if held is None:
        return "-"
    dropped, crushed, squeeze = (ip[key][cond][i] for key in ("dropped", "crushed", "peak_squeeze_n"))
    return f"{100 * held:.0f}/{100 * dropped:.0f}/{100 * crushed:.0f} {squeeze:4.1f}"


def _print_node_chain(chain: dict, bins: list, out) -> None:
    n = chain["episodes_per_bin_by_condition"]
    probe = chain.get("probe")
    print(f"real node chain ({'(b) from mass_id_node probes' if probe else '(b) stand-in mass'}):", file=out)
    print(f"{'mass bin (kg)':>14} {'n a/b/c':>9} {'true':>6} {'ident.':>6} {'nominal':>7}", file=out)
    for i, (lo, hi) in enumerate(bins):
        counts = f"{n['true'][i]}/{n['identified'][i]}/{n['nominal'][i]}"
        print(f"{lo:6.2f}-{hi:<6.2f} {counts:>10} {_fmt(chain['success_true_mass'][i]):>6}"
              f" {_fmt(chain['success_identified_mass'][i]):>6} {_fmt(chain['success_nominal_mass'][i]):>7}", file=out)
    for p in chain["problems"]:
        print(f"  problem: {p}", file=out)
    if probe:
        print(f"(b): identified {sum(probe['identified_per_bin'])} of {sum(probe['episodes_per_bin'])} probed objects"
              f" (median mass error {probe['median_mass_err_pct']}%), unidentifiable grasped as "
              f"{probe['fallback_mass']} kg", file=out)
    j = chain["journal"]
    print(f"  journal {j['path']}: {j['episodes_reused']} episodes reused, {j['episodes_recorded']} recorded"
          + ("; stopped by --max-minutes, run again to go on" if j["stopped_by_time_budget"] else ""), file=out)
    print(f"  (node output: {CHAIN_LOG})", file=out)


def plot_report(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ip = report.get("in_process", report)
    centres = [(lo + hi) / 2 for lo, hi in report["bins"]]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    for cond, label in IN_PROCESS_LABELS.items():
        line, = ax1.plot(centres, [100 * (v or 0) for v in ip[f"success_{cond}_mass"]], "o-", label=f"{label} mass")
        ax2.plot(centres, [100 * (v or 0) for v in ip["dropped"][cond]], "v--", color=line.get_color(),
                 label=f"{label}: dropped")
        ax2.plot(centres, [100 * (v or 0) for v in ip["crushed"][cond]], "x:", color=line.get_color(),
                 label=f"{label}: crushed")
        ax3.plot(centres, ip["grip_over_least"][cond], "o-", label=f"{label} mass")
    chain = report.get("chain") or {}
    for cond, key in CONDITION_KEYS.items():
        if any(v is not None for v in chain.get(key, [])):
            ax1.plot(centres, [100 * (v if v is not None else np.nan) for v in chain[key]], "D--",
                     label=f"{cond} mass (node chain)")
    ax1.plot(centres, [100 * v for v in ip["feasible_fraction"]], "k:", label="liftable whole by some grip")
    for name, rates in report.get("cross_eval", {}).items():
        ax1.plot(centres, [100 * (v or 0) for v in rates["success"]], "s--", label=f"trained on {name} only")
        ax3.plot(centres, rates["grip_over_least"], "s--", label=f"trained on {name} only")
    for ax, ylabel in ((ax1, "lift 10 cm + hold 3 s, uncrushed (%)"), (ax2, "episodes (%)"),
                       (ax3, "peak grip / least grip that held")):
        ax.set_xlabel("object mass (kg, bin centre)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    ax1.set_ylim(-5, 105)
    ax2.set_ylim(-5, 105)
    ax3.axhline(1.0, color="grey", lw=0.8)
    fig.suptitle("mass-conditioned grasp policy (in-process unless marked)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


IN_PROCESS_KEYS = ("path", "episodes_per_bin", "success_true_mass", "success_stand_in_mass", "success_nominal_mass",
                   "success_fallback_mass", "stand_in_mass_source", "crush_limits", "liftable_fraction",
                   "feasible_fraction", "least_grip_mean", "grip_over_least", "dropped", "crushed", "peak_squeeze_n")


def promote_node_chain(report: dict) -> None:
    """With all three conditions through the real nodes (--chain and --probe), the top-level
    figures are theirs; the in-process ones move under "in_process"."""
    chain = report["chain"]
    report["in_process"] = {k: report.pop(k) for k in IN_PROCESS_KEYS}
    report.update({k: chain[k] for k in ("path", "episodes_per_bin", "episodes_per_bin_by_condition",
                                         "success_true_mass", "success_identified_mass", "success_nominal_mass")})
    report["identified_mass_source"] = f"mass_id_node probes (unidentifiable -> {chain['probe']['fallback_mass']} kg)"


def run(args: argparse.Namespace) -> int:
    from drex_ros.core.control.task_sequence import CONSERVATIVE_FALLBACK_MASS
    from drex_ros.evaluation.in_process import CONDITIONS, evaluate, mass_bins, summarize
    from drex_ros.training.fragility import crush_classes_text
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
                        args.stand_in_log_sigma, bins)
    summary = summarize(outcomes, bins, list(CONDITIONS) + [f"{n}:true" for n in models if n != "main"])
    report = {
        "path": "in-process MuJoCo, policy via core.policy (ONNX Runtime + ObservationBuilder + decode_action)",
        "model": str(args.model),
        "bins": summary["bins"],
        "episodes_per_bin": summary["episodes_per_bin"],
        **{f"success_{c}_mass": summary["success"][c] for c in CONDITIONS},
        **{key: {c: summary[key][c] for c in CONDITIONS} for key in ("dropped", "crushed", "peak_squeeze_n",
                                                                     "grip_over_least")},
        "liftable_fraction": summary["liftable_fraction"],
        "feasible_fraction": summary["feasible_fraction"],
        "least_grip_mean": summary["least_effort_mean"],
        "nominal_mass": args.nominal_mass,
        "fallback_mass": CONSERVATIVE_FALLBACK_MASS,
        "stand_in_mass_source": f"true mass x lognormal(0, {args.stand_in_log_sigma}), not an identification",
        "crush_limits": crush_classes_text(),
        "seconds": round(time.monotonic() - t0, 1),
    }
    if args.cross:
        report["cross_eval"] = {n: {"trained_on_kg": list(BANDS[n]), "success": summary["success"][f"{n}:true"],
                                    "grip_over_least": summary["grip_over_least"][f"{n}:true"]}
                                for n in models if n != "main"}
    if args.chain > 0 or args.probe > 0:
        from drex_ros.evaluation.node_chain_eval import run_node_chain

        report["chain"] = run_node_chain(args, bins, CHAIN_LOG)
        if args.chain > 0 and args.probe > 0:
            promote_node_chain(report)
    if args.plot:
        plot_report(report, args.plot)
        report["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
        print(f"plot: {args.plot}  ({report['seconds']} s)")
    return 0
