"""The probe runner without ROS: command streaming across stalls, and which probes run."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from drex_ros.core.massid.probe_runner import (
    SPHERE_NOT_PUSHED,
    CommandStream,
    ProbePolicy,
    StreamSettings,
    probe_and_identify,
)
from drex_ros.core.massid.push_probe import ProbePlan, ProbePlanError
from drex_ros.core.massid.types import MassIdConfig


def test_a_stalled_command_timer_pauses_the_probe_instead_of_jumping_ahead():
    """After a gap in its ticks (a starved timer), the stream resumes the plan where it stopped:
    jumping to the command for the current time would lurch the palm into the object."""
    rate, n = 250.0, 2000
    commands = np.zeros((n, 23))
    commands[:, 0] = np.arange(n)  # the command index, readable from the published target
    sent: list[float] = []
    stream = CommandStream(StreamSettings(rate_hz=rate), time.monotonic, lambda q: sent.append(q[0]))
    stream.start(ProbePlan(np.arange(n) / rate, commands, 0.0, 0.0, n / rate, np.array([1.0, 0.0, 0.0])))
    for _ in range(20):  # regular ticks: the plan follows the clock
        time.sleep(1.0 / rate)
        stream.tick()
    k_before = sent[-1]
    assert k_before >= 19  # at least one command per tick (more when a tick is late)
    time.sleep(0.6)  # a stall of 150 command periods
    stream.tick()
    assert sent[-1] - k_before <= 3, "the plan jumped ahead over the stall"
    assert len(stream.stalls) == 1 and stream.stalls[0] >= 0.6
    for _ in range(20):  # and runs on from there at its rate
        time.sleep(1.0 / rate)
        stream.tick()
    assert sent[-1] - k_before >= 20


def test_an_aborted_stream_fails_its_wait_with_the_reason():
    stream = CommandStream(StreamSettings(timeout_s=5.0), time.monotonic, lambda q: None)
    stream.start(ProbePlan(np.arange(3) / 250, np.zeros((3, 23)), 0.0, 0.0, 0.012, np.array([1.0, 0.0, 0.0])))
    stream.abort("shutting down")
    with pytest.raises(Exception, match="probe aborted: shutting down"):
        stream.wait()


def _never(*_args):
    raise AssertionError("this probe must not run")


def test_a_sphere_is_neither_pushed_nor_weighed_by_default():
    with pytest.raises(ProbePlanError, match="a sphere is not pushed"):
        probe_and_identify(ProbePolicy("sphere"), MassIdConfig(), _never, _never, _never, print, print)
    assert "push_spheres:=true" in SPHERE_NOT_PUSHED


def test_record_only_runs_the_push_then_the_weighing_and_returns_no_estimate():
    ran, saved = [], []

    def probe(kind):
        return lambda: ran.append(kind) or kind

    est = probe_and_identify(ProbePolicy("box", identify=False), MassIdConfig(), probe("push"), probe("weigh"),
                             lambda rec, kind: saved.append((rec, kind)), print, print)
    assert est is None and ran == ["push", "weigh"] and saved == [("push", "massid"), ("weigh", "weigh")]
    ran.clear()
    est = probe_and_identify(ProbePolicy("box", identify=False, weigh_fallback=False), MassIdConfig(),
                             probe("push"), _never, lambda rec, kind: None, print, print)
    assert est is None and ran == ["push"]


def test_a_clock_that_stands_still_fails_the_probe_but_a_slow_one_does_not():
    plan = ProbePlan(np.arange(50) / 250, np.zeros((50, 23)), 0.0, 0.0, 0.2, np.array([1.0, 0.0, 0.0]))
    frozen = CommandStream(StreamSettings(clock_stall_s=0.5), lambda: 7.0, lambda q: None)
    frozen.start(plan)
    with pytest.raises(Exception, match="time is not running"):
        frozen.wait()
    t0 = time.monotonic()
    slow = CommandStream(StreamSettings(clock_stall_s=0.5), lambda: 0.1 * (time.monotonic() - t0), lambda q: None)
    slow.start(plan)
    ticker = threading.Thread(target=lambda: [slow.tick() or time.sleep(0.01) for _ in range(400)], daemon=True)
    ticker.start()
    slow.wait()  # 0.2 s of plan at a tenth of real time: 2 s, no failure
    assert slow.done.is_set()
