"""The plausibility check of measured joint samples, without ROS."""

import numpy as np

from drex_ros.core.control.state_check import StateCheck, StateCheckConfig

J = np.array([0])


def _check() -> StateCheck:
    return StateCheck(np.array([-1.0]), np.array([2.0]), np.array([6.0]), StateCheckConfig())


def test_a_finger_that_closed_fast_and_stalled_across_lost_samples_is_plausible_again():
    check = _check()
    t, q = 0.0, 0.0
    for _ in range(20):  # closing at 3 rad/s, samples every 2 ms
        assert check.check(J, np.array([q]), np.array([3.0]), t)[0]
        t, q = t + 0.002, q + 0.006
    # 100 ms of samples lost while it hit the object and stopped 0.1 rad further on
    t += 0.1
    first = check.check(J, np.array([q + 0.1]), np.array([0.0]), t)[0]
    second = check.check(J, np.array([q + 0.1]), np.array([0.0]), t + 0.002)[0]
    assert first and second


def test_a_glitch_is_refused_and_the_next_true_sample_accepted():
    check = _check()
    for k in range(10):
        assert check.check(J, np.array([0.5]), np.array([0.0]), 0.002 * k)[0]
    assert not check.check(J, np.array([1.5]), np.array([0.0]), 0.020)[0]  # +1 rad in 2 ms
    assert check.check(J, np.array([0.5]), np.array([0.0]), 0.022)[0]
    assert not check.check(J, np.array([0.5]), np.array([9.0]), 0.032)[0]  # says 9 rad/s, did not move
