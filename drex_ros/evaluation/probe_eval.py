"""Condition (b) with the real mass identifier, and the grasp through the real node chain.

For the first N evaluation objects of every bin, mass_id_node pushes the object in its own
process, through smoother_node and safety_node to sim_node (the camera pipeline emulated by
the noisy pose relay of `drex bench massid`), and records the probe; the bag is identified
as `drex identify` would identify it. The grasp then runs through the real node chain
(training/chain_eval.py) given that mass. An "unidentifiable" verdict (from the identifier,
or from mass_id_node when no probe can be planned) gives the fallback mass the task node would
grasp with (counted, and reported as such); a probe that could not be recorded, or a grasp
episode that could not start, is reported and not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FALLBACK_FRICTION = 0.5  # the task node's default when friction is not identified


@dataclass
class ProbeOutcome:
    bin_index: int
    true_mass: float
    identified_mass: float | None  # None: unidentifiable (or the probe failed)
    reason: str
    given_mass: float | None  # what the policy was told (identified, or the fallback)
    success: bool | None  # None: no episode (the probe failed or the grasp could not start)


def probe_and_identify(obj, index: int, out_dir: Path, rtf: float, say) -> tuple[float | None, float | None, str]:
    """(mass, friction, verdict) from a probe recorded through the real nodes; mass None = no number."""
    from drex_ros.evaluation.massid_probes import BenchObject, ProbeUnidentifiable, identify_bag, record_probe

    bench_obj = BenchObject(**asdict(obj), index=index)
    try:
        bag = record_probe(bench_obj, out_dir / f"object_{index:03d}", say, rtf)
    except ProbeUnidentifiable as exc:  # as the task does: grasped with the fallback mass
        return None, None, str(exc)
    row = identify_bag(bench_obj, bag)
    return row["mass_est"], row["friction_est"], row["reason"]


# (object, given mass, friction) -> (success, or None when the episode could not start; problem text)
Grasp = Callable[[object, float, float], tuple[bool | None, str]]


def probe_one(obj, bin_index: int, index: int, out_dir: Path, rtf: float, fallback_mass: float, grasp: Grasp,
              say) -> ProbeOutcome:
    try:
        mass, friction, reason = probe_and_identify(obj, index, out_dir, rtf, say)
    except RuntimeError as exc:  # a probe that could not run (its message says so): reported, not counted
        return ProbeOutcome(bin_index, obj.mass, None, str(exc).splitlines()[0], None, None)
    given = mass if mass is not None else fallback_mass
    success, problem = grasp(obj, given, friction if friction else FALLBACK_FRICTION)
    if success is None:
        reason = f"{reason}; grasp episode did not start: {problem}"
    return ProbeOutcome(bin_index, obj.mass, mass, reason, given, success)


def summarize_probe_eval(outcomes: list[ProbeOutcome], bins: list[tuple[float, float]], fallback_mass: float) -> dict:
    ran = [[o for o in outcomes if o.bin_index == b and o.success is not None] for b in range(len(bins))]
    errors = [abs(o.identified_mass / o.true_mass - 1.0) * 100 for o in outcomes if o.identified_mass is not None]
    return {
        "episodes_per_bin": [len(r) for r in ran],
        "success_identified_mass": [float(np.mean([o.success for o in r])) if r else None for r in ran],
        "identified_per_bin": [sum(o.identified_mass is not None for o in r) for r in ran],
        "median_mass_err_pct": float(np.median(errors)) if errors else None,
        "fallback_mass": fallback_mass,
        "rows": [asdict(o) for o in outcomes],
    }
