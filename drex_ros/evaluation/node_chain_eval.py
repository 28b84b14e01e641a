"""`drex eval --chain N --probe N`: the three conditions through the real nodes, resumable.

Jobs run object-major (object 0 of every bin, then object 1, ...), so a run stopped early,
by Ctrl-C or by `--max-minutes`, still covers every bin evenly. Per object and bin:
(a) true and (c) nominal mass through the node chain (training/chain_eval.py) for the first
`--chain` objects; (b) a mass_id_node probe, identification, then the grasp through the node
chain given that mass (training/probe_eval.py) for the first `--probe` objects. Every
finished episode goes to the journal (training/eval_journal.py) and is not run again; an
episode that never started (the chain did not come up) is reported, not counted, and tried
again next time.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

CHAIN_CONDITIONS = ("true", "nominal")  # (b) comes from the probes
# The code a (b) outcome depends on beyond the model: the probe and the identifier. Their digest is
# in a probe's journal key, so changing them runs the probes again instead of reusing old answers.
_PACKAGE = Path(__file__).resolve().parents[1]
IDENTIFIER_SOURCES = tuple(sorted((_PACKAGE / "core" / "massid").glob("*.py"))) + (
    _PACKAGE / "nodes" / "mass_id_node.py",)
CONDITION_KEYS = {"true": "success_true_mass", "identified": "success_identified_mass",
                  "nominal": "success_nominal_mass"}


def policy_overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    for item in args.chain_policy_param:
        name, sep, value = item.partition(":=")
        if not sep:
            raise ValueError(f"--chain-policy-param {item!r}: expected NAME:=VALUE")
        overrides[name] = value
    return overrides


def chain_grasp(args: argparse.Namespace, log: Path):
    """(object, given mass, friction) -> (success or None if it never started, problem), through the nodes."""
    from drex_ros.evaluation.chain_eval import run_chain_episode

    overrides = policy_overrides(args)

    def grasp(obj, mass: float, _friction: float):
        out = run_chain_episode(obj, mass, str(args.model), real_time_factor=args.chain_rtf, log=log,
                                policy_overrides=overrides)
        return (out.success if out.started else None), out.problem
    return grasp


def episode_jobs(args: argparse.Namespace, bins: list[tuple[float, float]]) -> list[dict]:
    """Object-major list of {path, cond, bin, i, obj, mass, key}."""
    from drex_ros.evaluation.in_process import eval_object, object_seed
    from drex_ros.evaluation.journal import episode_key, file_digest

    common = {"seed": args.seed, "model": file_digest(args.model), "chain_rtf": args.chain_rtf,
              "policy_overrides": policy_overrides(args)}
    identifier = file_digest(*IDENTIFIER_SOURCES)
    jobs = []
    for i in range(max(args.chain, args.probe)):
        for b, rng_bin in enumerate(bins):
            drawn = eval_object(rng_bin, object_seed(args.seed, b, i), args.nominal_mass, args.stand_in_log_sigma)
            if drawn is None:
                continue
            obj, masses = drawn[0].obj, drawn[1]
            if i < args.chain:
                for cond in CHAIN_CONDITIONS:
                    key = episode_key(path="chain", cond=cond, bin=b, i=i, mass_given=masses[cond], **common)
                    jobs.append({"path": "chain", "cond": cond, "bin": b, "i": i, "obj": obj,
                                 "mass": masses[cond], "key": key})
            if i < args.probe:
                key = episode_key(path="probe", bin=b, i=i, probe_rtf=args.probe_rtf,
                                  fallback_mass=args.probe_fallback_mass, identifier=identifier, **common)
                jobs.append({"path": "probe", "cond": "identified", "bin": b, "i": i, "obj": obj, "mass": None,
                             "key": key})
    return jobs


def run_job(job: dict, args: argparse.Namespace, grasp, say) -> dict:
    """One episode's outcome row (success None: it never started)."""
    from drex_ros.evaluation.probe_eval import probe_one

    if job["path"] == "chain":
        success, problem = grasp(job["obj"], job["mass"], job["obj"].friction)
        return {"success": success, "problem": problem, "true_mass": job["obj"].mass, "given_mass": job["mass"]}
    k = job["bin"] * 1000 + job["i"]
    return asdict(probe_one(job["obj"], job["bin"], k, args.probe_out, args.probe_rtf, args.probe_fallback_mass,
                            grasp, say))


def run_jobs(jobs: list[dict], args: argparse.Namespace, journal, grasp, say) -> tuple[list, bool]:
    """(job, outcome row) for every job run or found in the journal; True if the time budget cut the run."""
    from tqdm import tqdm

    deadline = time.monotonic() + 60 * args.max_minutes if args.max_minutes > 0 else float("inf")
    done, cut = [], False
    for job in tqdm(jobs, desc="node chain episodes (a, c) and probes (b)"):
        row = journal.get(job["key"])
        if row is None:
            if time.monotonic() > deadline:
                cut = True
                continue
            row = run_job(job, args, grasp, say)
            if row["success"] is not None:
                journal.record(job["key"], row)
        done.append((job, row))
    return done, cut


def summarize(done: list, bins: list[tuple[float, float]], args: argparse.Namespace) -> dict:
    from drex_ros.evaluation.probe_eval import ProbeOutcome, summarize_probe_eval

    counted = {c: [[] for _ in bins] for c in CONDITION_KEYS}
    problems = []
    for job, row in done:
        if row["success"] is not None:
            counted[job["cond"]][job["bin"]].append(bool(row["success"]))
        text = row.get("problem") or (row.get("reason") if row["success"] is None else "")
        if text:
            problems.append(f"bin {job['bin']} object {job['i']} {job['cond']}: {text}"
                            + (" (not counted)" if row["success"] is None else ""))
    report = {"path": "real node chain: sim_node, policy_node, smoother_node, safety_node processes over DDS"
                      + ("; (b) mass from mass_id_node probes" if args.probe > 0 else "; (b) not run (--probe)"),
              "episodes_per_bin_by_condition": {c: [len(r) for r in counted[c]] for c in CONDITION_KEYS},
              "problems": problems, "policy_overrides": policy_overrides(args), "real_time_factor": args.chain_rtf}
    for cond, key in CONDITION_KEYS.items():
        report[key] = [float(sum(r) / len(r)) if r else None for r in counted[cond]]
    ran = [c for c in CONDITION_KEYS if any(counted[c])]
    report["episodes_per_bin"] = [min((len(counted[c][b]) for c in ran), default=0) for b in range(len(bins))]
    probes = [ProbeOutcome(**row) for job, row in done if job["path"] == "probe"]
    if probes:
        report["probe"] = summarize_probe_eval(probes, bins, args.probe_fallback_mass)
    return report


def run_node_chain(args: argparse.Namespace, bins: list[tuple[float, float]], log: Path) -> dict:
    """All node-chain episodes in a private ROS domain; returns the node-chain report."""
    import rclpy
    from tqdm import tqdm

    from drex_ros.evaluation.journal import EvalJournal
    from drex_ros.node_process import use_private_domain

    journal = EvalJournal(Path(args.journal) if args.journal else None)
    use_private_domain(args.chain_domain_id)
    # SIGTERM ends the run like Ctrl-C, so the episode's node processes are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    rclpy.init()
    try:
        done, cut = run_jobs(episode_jobs(args, bins), args, journal, chain_grasp(args, log),
                             (lambda _m: None) if args.json else tqdm.write)
    finally:
        rclpy.shutdown()
    report = summarize(done, bins, args)
    report["ros_domain_id"] = int(os.environ["ROS_DOMAIN_ID"])
    report["journal"] = {"path": args.journal, "episodes_reused": journal.reused, "episodes_recorded": len(journal),
                         "stopped_by_time_budget": cut}
    return report
