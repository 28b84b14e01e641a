"""The simulator's pace (core/sim/pace.py): a fixed real-time factor, falling behind, and auto."""

import pytest

from drex_ros.core.sim.pace import MAX_LAG, SimPace, parse_factor


def _run(pace: SimPace, seconds: float, capacity: float, tick: float = 0.002, start=(0.0, 0.0)):
    """Tick for `seconds` of wall time on a host that can simulate `capacity` sim s per wall s.
    Returns the end (wall, sim) and the windows reported."""
    wall, sim = start
    windows = []
    while wall < start[0] + seconds:
        wall += tick
        sim = min(pace.target(wall, sim), sim + capacity * tick)
        if (w := pace.report(wall, sim)) is not None:
            windows.append(w)
    return (wall, sim), windows


def test_the_factor_parameter_is_a_number_or_auto_and_nothing_else():
    assert parse_factor(0.5) == 0.5 and parse_factor(1) == 1.0 and parse_factor(" Auto ") is None
    for bad in ("fast", True, [0.5]):
        with pytest.raises(ValueError, match="real_time_factor must be a number or 'auto'"):
            parse_factor(bad)


def test_a_fixed_factor_is_kept_and_a_host_too_slow_for_it_is_reported_without_a_catch_up_burst():
    pace = SimPace(0.5, 0.0, 0.0)
    (_, sim), windows = _run(pace, 4.0, capacity=10.0)
    assert sim == pytest.approx(2.0, abs=0.01) and not any(w.behind for w in windows)
    slow = SimPace(0.5, 0.0, 0.0)
    wall, sim = 0.0, 0.0
    advances = []
    for _ in range(2000):  # a host that simulates 0.2 s per wall second
        wall += 0.002
        new = min(slow.target(wall, sim), sim + 0.2 * 0.002)
        advances.append(new - sim)
        sim = new
    assert max(advances) <= MAX_LAG  # never a burst beyond the lag bound
    report = slow.report(wall + 1e-9, sim)
    assert report.behind and report.achieved == pytest.approx(0.2, rel=0.05) and report.new_factor == 0.5


def test_auto_slows_to_what_the_host_sustains_and_creeps_back_when_it_is_free_again():
    pace = SimPace(None, 0.0, 0.0, auto_max=1.0)
    end, windows = _run(pace, 20.0, capacity=0.3)
    assert windows[0].behind and windows[0].new_factor < 0.3
    assert not windows[-1].behind and pace.factor < 0.3  # on schedule at a factor the host sustains
    _, windows = _run(pace, 60.0, capacity=10.0, start=end)
    assert pace.factor == 1.0 and not any(w.behind for w in windows)


def test_as_fast_as_possible_advances_one_tick_step_at_a_time():
    pace = SimPace(0.0, 0.0, 0.0)
    assert pace.target(5.0, 1.0) == pytest.approx(1.01)
