"""EMA smoother: exact filter values, rate independence, and every reset condition."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drex_ros.core.control.smoothing import EmaSmoother, SmootherConfig

NAMES = ("a", "b")


def test_first_input_passes_then_ema_exact():
    s = EmaSmoother(SmootherConfig(alpha=0.3))
    y, reason = s.update(NAMES, np.array([1.0, -2.0]), 0.0)
    assert reason is None
    np.testing.assert_array_equal(y, [1.0, -2.0])
    y, _ = s.update(NAMES, np.array([2.0, 0.0]), 0.01)
    np.testing.assert_allclose(y, [0.3 * 2 + 0.7 * 1, 0.3 * 0 + 0.7 * -2], rtol=0, atol=1e-15)
    y, _ = s.update(NAMES, np.array([2.0, 0.0]), 0.02)
    np.testing.assert_allclose(y, [0.3 * 2 + 0.7 * 1.3, 0.7 * -1.4], atol=1e-15)


def test_time_constant_is_rate_independent():
    """A step input filtered at 100 Hz and at 500 Hz reaches the same value at the same time."""
    tau = 0.05
    outs = []
    for rate in (100.0, 500.0):
        s = EmaSmoother(SmootherConfig(time_constant=tau, max_gap=1.0))
        s.update(("a",), np.array([0.0]), 0.0)
        n = int(rate * 0.1)
        for k in range(1, n + 1):
            y, _ = s.update(("a",), np.array([1.0]), k / rate)
        outs.append(y[0])
    expected = 1.0 - math.exp(-0.1 / tau)
    np.testing.assert_allclose(outs, [expected, expected], atol=1e-12)


def test_reset_on_gap_joint_set_clock_and_estop():
    s = EmaSmoother(SmootherConfig(alpha=0.5, max_gap=0.1))
    s.update(NAMES, np.zeros(2), 0.0)
    y, reason = s.update(NAMES, np.ones(2), 0.5)  # gap of 0.5 s > 0.1 s
    assert reason == "gap"
    np.testing.assert_array_equal(y, [1.0, 1.0])
    y, reason = s.update(("b", "a"), np.array([3.0, 4.0]), 0.51)  # order changed
    assert reason == "joint_set"
    np.testing.assert_array_equal(y, [3.0, 4.0])
    y, reason = s.update(("b", "a"), np.array([5.0, 6.0]), 0.2)  # time went backwards
    assert reason == "clock"
    np.testing.assert_array_equal(y, [5.0, 6.0])
    s.reset("estop")
    y, reason = s.update(("b", "a"), np.array([9.0, 9.0]), 0.21)
    assert reason is None
    np.testing.assert_array_equal(y, [9.0, 9.0])
    assert s.resets == {"estop": 1, "gap": 1, "joint_set": 1, "clock": 1, "manual": 0}


def test_nonfinite_input_passes_through_without_poisoning_history():
    s = EmaSmoother(SmootherConfig(alpha=0.5))
    s.update(NAMES, np.array([1.0, 1.0]), 0.0)
    y, _ = s.update(NAMES, np.array([np.nan, 3.0]), 0.01)
    assert math.isnan(y[0]) and y[1] == 2.0
    y, _ = s.update(NAMES, np.array([3.0, 3.0]), 0.02)
    np.testing.assert_array_equal(y, [2.0, 2.5])  # joint a resumes from its last good state (1.0)


def test_bad_config_and_shape_are_clear_errors():
    with pytest.raises(ValueError, match="alpha"):
        EmaSmoother(SmootherConfig(alpha=0.0))
    with pytest.raises(ValueError, match="time_constant"):
        EmaSmoother(SmootherConfig(time_constant=-1.0))
    with pytest.raises(ValueError, match="positions of shape"):
        EmaSmoother().update(NAMES, np.zeros(3), 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=40), st.floats(0.01, 1.0))
def test_output_stays_within_input_range(xs, alpha):
    """An EMA is a convex combination: it never overshoots the inputs seen since a reset."""
    s = EmaSmoother(SmootherConfig(alpha=alpha, max_gap=1.0))
    for k, x in enumerate(xs):
        y, _ = s.update(("a",), np.array([x]), k * 0.01)
        assert min(xs[: k + 1]) - 1e-9 <= y[0] <= max(xs[: k + 1]) + 1e-9
