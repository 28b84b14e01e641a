"""The node-chain evaluation's journal (resume without re-running) and its report promotion."""

import argparse
import json

from drex_ros.evaluation import eval_command
from drex_ros.evaluation.eval_command import IN_PROCESS_KEYS, promote_node_chain
from drex_ros.evaluation.in_process import mass_bins
from drex_ros.evaluation.journal import EvalJournal, episode_key
from drex_ros.evaluation.node_chain_eval import episode_jobs, run_jobs, summarize


def test_journal_keeps_outcomes_across_runs_and_skips_a_cut_line(tmp_path):
    path = tmp_path / "j.jsonl"
    key = episode_key(path="chain", bin=1, i=3, cond="true", mass_given=0.123456789012, model="abc")
    assert key == episode_key(model="abc", mass_given=0.123456789012, cond="true", i=3, bin=1, path="chain")
    first = EvalJournal(path)
    assert first.get(key) is None
    first.record(key, {"success": True, "problem": ""})
    with path.open("a") as f:
        f.write('{"key": "cut sho')  # a run killed mid-write
    again = EvalJournal(path)
    assert again.get(key) == {"success": True, "problem": ""} and again.reused == 1
    assert again.skipped_lines == 1 and len(again) == 1
    other = episode_key(path="chain", bin=1, i=3, cond="true", mass_given=0.123456789012, model="retrained")
    assert again.get(other) is None  # another model: not reused
    row = json.loads(path.read_text().splitlines()[0])
    assert row["commit"] != "" and row["key"] == key


def test_in_memory_journal_writes_nothing(tmp_path):
    journal = EvalJournal(None)
    journal.record("k", {"success": False})
    assert journal.get("k") == {"success": False} and list(tmp_path.iterdir()) == []


def eval_args(tmp_path, **over) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    args = parser.parse_args(["--chain", "2", "--probe", "1", "--journal", str(tmp_path / "j.jsonl")])
    for k, v in over.items():
        setattr(args, k, v)
    return args


def test_jobs_are_object_major_with_distinct_keys(tmp_path):
    args = eval_args(tmp_path)
    jobs = episode_jobs(args, mass_bins())
    assert [(j["i"], j["bin"], j["cond"]) for j in jobs[:3]] == [(0, 0, "true"), (0, 0, "nominal"),
                                                                  (0, 0, "identified")]
    assert [j["i"] for j in jobs] == sorted(j["i"] for j in jobs)  # every bin's object 0 before any object 1
    assert len({j["key"] for j in jobs}) == len(jobs) == 5 * (2 * 2 + 1)
    assert not any(j["path"] == "probe" and j["i"] == 1 for j in jobs)


def test_a_probe_is_keyed_by_the_identifier_code_and_a_chain_episode_is_not(tmp_path, monkeypatch):
    from drex_ros.evaluation import node_chain_eval

    args = eval_args(tmp_path)
    before = {j["cond"]: j["key"] for j in episode_jobs(args, mass_bins()) if j["bin"] == 0 and j["i"] == 0}
    edited = tmp_path / "massid.py"
    edited.write_text("# an identifier that changed\n")
    monkeypatch.setattr(node_chain_eval, "IDENTIFIER_SOURCES", node_chain_eval.IDENTIFIER_SOURCES[:-1] + (edited,))
    after = {j["cond"]: j["key"] for j in episode_jobs(args, mass_bins()) if j["bin"] == 0 and j["i"] == 0}
    assert after["identified"] != before["identified"]  # the probe runs again
    assert after["true"] == before["true"] and after["nominal"] == before["nominal"]  # reused


def test_a_resumed_run_skips_what_the_journal_has_and_retries_what_never_started(tmp_path):
    args = eval_args(tmp_path, probe=0)
    jobs = [j for j in episode_jobs(args, mass_bins()) if j["bin"] == 0]
    calls = []

    def grasp(obj, mass, friction):  # stands in for run_chain_episode: only the bookkeeping is under test
        calls.append(mass)
        return (None, "chain did not come up") if len(calls) == 2 else (True, "")

    done, cut = run_jobs(jobs, args, EvalJournal(tmp_path / "j.jsonl"), grasp, print)
    # without --probe the chain runs (a) and (c) only: (b) comes from probes, never from a stand-in
    assert {j["cond"] for j in jobs} == {"true", "nominal"}
    assert not cut and len(calls) == 4 and sum(r["success"] is None for _, r in done) == 1
    calls.clear()
    again = EvalJournal(tmp_path / "j.jsonl")
    done, _ = run_jobs(jobs, args, again, grasp, print)
    assert len(calls) == 1 and again.reused == 3  # only the episode that never started ran again
    report = summarize(done, mass_bins(), args)
    assert report["episodes_per_bin_by_condition"]["true"][0] == 2
    assert report["success_true_mass"][0] == 1.0 and report["success_true_mass"][1] is None


def test_node_chain_figures_replace_the_in_process_ones_when_all_three_ran():
    report = {k: f"in-process {k}" for k in IN_PROCESS_KEYS}
    report["bins"] = [[0.05, 0.5], [0.5, 1.5]]
    report["chain"] = {"path": "chain", "episodes_per_bin": [18, 19],
                       "episodes_per_bin_by_condition": {"true": [20, 19], "identified": [18, 20], "nominal": [20, 19]},
                       "success_true_mass": [1.0, 0.95], "success_nominal_mass": [1.0, 0.4],
                       "success_identified_mass": [1.0, 0.9], "probe": {"fallback_mass": 1.2}}
    promote_node_chain(report)
    assert report["in_process"]["success_true_mass"] == "in-process success_true_mass"
    assert report["success_true_mass"] == [1.0, 0.95] and report["success_nominal_mass"] == [1.0, 0.4]
    assert report["success_identified_mass"] == [1.0, 0.9] and report["episodes_per_bin"] == [18, 19]
    assert report["path"] == "chain" and "1.2 kg" in report["identified_mass_source"]
