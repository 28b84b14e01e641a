"""The probe-identified condition's bookkeeping: fallbacks counted as grasps, failed probes not counted."""

from drex_ros.evaluation.probe_eval import ProbeOutcome, summarize_probe_eval

BINS = [(0.05, 0.5), (0.5, 1.5)]


def test_summary_counts_fallback_grasps_but_not_failed_probes():
    outcomes = [
        ProbeOutcome(0, 0.2, 0.21, "ok", 0.21, True),
        ProbeOutcome(0, 0.3, None, "flat loss", 1.2, False),  # unidentifiable: grasped with the fallback
        ProbeOutcome(1, 1.0, 0.9, "ok", 0.9, True),
        ProbeOutcome(1, 1.2, None, "probe failed: timeout", None, None),  # no episode
    ]
    s = summarize_probe_eval(outcomes, BINS, 1.2)
    assert s["episodes_per_bin"] == [2, 1]
    assert s["success_identified_mass"] == [0.5, 1.0]
    assert s["identified_per_bin"] == [1, 1]
    assert abs(s["median_mass_err_pct"] - 7.5) < 1e-9  # 5% and 10%
    assert len(s["rows"]) == 4


def test_summary_of_a_bin_without_episodes_is_none():
    s = summarize_probe_eval([ProbeOutcome(0, 0.2, None, "probe failed: x", None, None)], BINS, 1.2)
    assert s["success_identified_mass"] == [None, None] and s["median_mass_err_pct"] is None
