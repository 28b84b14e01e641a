"""The force-aware expert: per object, the least grip effort that lifts it and holds it through the shake.

Holding is monotone in grip effort to good approximation (more squeeze, more friction), so a
bisection over the effort fraction finds the least effort that passes the lift-and-shake
test. Every trial restarts from the state saved at the start of the close phase, since the
approach does not depend on the grip. The label adds a margin on top of that least effort,
because a policy that imitates the bare minimum would drop half of what it grasps.

Squeeze grows with effort too, so the least effort that holds is also the gentlest: if it
crushes a fragile object (`training.fragility`), no grip lifts that object whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from drex_ros.training.episode import EpisodeResult, GraspEpisode, expert_controller

EFFORT_LOW = 0.05
EFFORT_HIGH = 1.0
SEARCH_STEPS = 5  # resolution (1 - 0.05) / 2**5 ~ 0.03 of the 0.7 N*m limit
TRIAL_HOLD_S = 0.5  # search trials stop this long after the shake: a grip that survives the shake holds
MARGIN_FACTOR = 1.25
MARGIN_OFFSET = 0.05


@dataclass
class ExpertLabel:
    least_effort: float | None  # None: not even full effort lifts and holds it
    label_effort: float  # what the expert commands (least effort with margin, capped at 1)
    trials: int
    least_squeeze: float | None = None  # N on the object at the least effort (None with no least effort)
    crushes: bool = False  # even the least effort that holds squeezes harder than the object survives

    @property
    def feasible(self) -> bool:
        """Some grip lifts and holds the object without crushing it."""
        return self.least_effort is not None and not self.crushes


def label_from_least(least: float | None) -> float:
    if least is None:
        return EFFORT_HIGH
    return min(EFFORT_HIGH, MARGIN_FACTOR * least + MARGIN_OFFSET)


def _trial(episode: GraspEpisode, effort: float, from_close: bool = True) -> EpisodeResult:
    until = episode.plan.phases()["shake"][1] + TRIAL_HOLD_S
    return episode.run(expert_controller(episode.plan, effort), from_close=from_close, until=until,
                       stop_on_drop=True, check_from=strict_check_start(episode))


def strict_check_start(episode: GraspEpisode) -> float:
    """The expert's test checks the 10 cm from the moment the lift reference ends, before the
    success window's settling time, so its least effort errs on the strong side."""
    return episode.plan.phases()["lift"][1]


def least_grip_effort(episode: GraspEpisode, steps: int = SEARCH_STEPS) -> ExpertLabel:
    """Bisection over the grip fraction; the episode is run once at full effort to save the close-phase state."""
    trials = 1
    passed = _trial(episode, EFFORT_HIGH, from_close=False)
    if not passed.held_through_run:
        return ExpertLabel(None, EFFORT_HIGH, trials)
    lo, hi = EFFORT_LOW, EFFORT_HIGH
    trials += 1
    low = _trial(episode, lo)
    if low.held_through_run:
        return _label(lo, low, trials)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        trials += 1
        result = _trial(episode, mid)
        if result.held_through_run:
            hi, passed = mid, result
        else:
            lo = mid
    return _label(hi, passed, trials)


def _label(least: float, result: EpisodeResult, trials: int) -> ExpertLabel:
    return ExpertLabel(least, label_from_least(least), trials, result.peak_squeeze, result.crushed_at is not None)
