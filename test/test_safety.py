"""Safety gate: property tests (no input gets a limit violation or a non-finite value through)
plus exact checks of the watchdog, the stale-state rule, the e-stop latch and the counters."""

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from drex_ros.core.control.safety import SafetyConfig, SafetyGate
from drex_ros.core.robot.model import ARM_JOINTS, HAND_JOINTS, JOINT_NAMES, robot_model

LIMITS = robot_model().limits
CFG = SafetyConfig()
N = len(JOINT_NAMES)
HOME = np.clip(robot_model().home(), LIMITS.lower + 0.05, LIMITS.upper - 0.05)  # well inside every limit
NAMES = st.sampled_from(list(JOINT_NAMES) + ["bogus", "", "panda_joint8", "joint_16.0"])
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-5.0, 5.0), st.sampled_from([0.0, 1e308, -1e308, np.nan, np.inf, -np.inf]))


def fresh_gate(q=None, t=0.0, config=CFG) -> SafetyGate:
    gate = SafetyGate(LIMITS, config)
    gate.on_state(JOINT_NAMES, HOME if q is None else q, t)
    return gate


def assert_safe(gate: SafetyGate, out, measured, prev=None, dt=None):
    assert out.positions.shape == (N,) and out.efforts.shape == (N,)
    assert np.all(np.isfinite(out.positions)) and np.all(np.isfinite(out.efforts))
    assert np.all(out.positions >= gate.lower) and np.all(out.positions <= gate.upper)
    assert np.all(out.efforts >= 0) and np.all(out.efforts <= gate.max_effort)
    inside = (measured >= gate.lower) & (measured <= gate.upper)
    assert np.all(np.abs(out.positions - measured)[inside] <= gate.max_step[inside] + 1e-12)
    if prev is not None:
        reach = gate.max_velocity * np.clip(dt, CFG.min_dt, CFG.max_dt)
        ok = inside & (np.abs(prev - measured) <= gate.max_step + reach)
        assert np.all(np.abs(out.positions - prev)[ok] <= reach[ok] + 1e-9)


@st.composite
def commands(draw):
    n = draw(st.integers(0, 30))
    names = draw(st.lists(NAMES, min_size=n, max_size=n))
    positions = draw(st.lists(VALUES, min_size=n, max_size=n))
    kind = draw(st.sampled_from(["empty", "same", "wrong"]))
    m = {"empty": 0, "same": n, "wrong": draw(st.integers(0, 30))}[kind]
    efforts = draw(st.lists(VALUES, min_size=m, max_size=m))
    if draw(st.booleans()) and n:  # length mismatch between names and positions
        positions = positions[: draw(st.integers(0, n - 1))]
    return names, positions, efforts


measured_states = st.lists(st.floats(-4.0, 4.0), min_size=N, max_size=N).map(np.array)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(measured_states, st.lists(st.tuples(commands(), st.floats(0.0, 0.04)), min_size=1, max_size=8))
def test_no_command_sequence_violates_a_limit(q, sequence):
    gate = fresh_gate(q)
    t, prev, prev_t = 0.0, None, None
    for (names, positions, efforts), dt in sequence:
        t += dt
        gate.on_state(JOINT_NAMES, q, t)
        out = gate.on_command(names, positions, efforts, t)
        if len(positions) != len(names) or (len(efforts) and len(efforts) != len(names)):
            assert out is None
            continue
        assert out is not None and out.mode == "command"
        assert_safe(gate, out, q, prev, None if prev is None else t - prev_t)
        prev, prev_t = out.positions, t


@settings(max_examples=150, deadline=None)
@given(measured_states, commands(), st.floats(0.0, 1.0))
def test_holds_are_safe_too(q, command, wait):
    gate = fresh_gate(q)
    names, positions, efforts = command
    gate.on_command(names, positions, efforts, 0.0)
    t = CFG.command_timeout + wait + 1e-3
    gate.on_state(JOINT_NAMES, q, t)
    out = gate.on_tick(t)
    assert out is not None and out.mode == "hold"
    assert_safe(gate, out, q)


def test_unknown_duplicate_and_nonfinite_are_refused_and_counted():
    home = HOME.copy()
    gate = fresh_gate(home)
    names = list(JOINT_NAMES) + ["bogus"]
    pos = list(home + 0.01) + [1.0]
    pos[0] = np.nan
    out = gate.on_command(names, pos, [], 0.0)
    assert out.reasons["unknown_joint"] == 1 and out.reasons["nonfinite_position"] == 1
    assert out.positions[0] == home[0]  # the NaN joint holds measured (no previous output yet)
    np.testing.assert_allclose(out.positions[1:], home[1:] + 0.01)
    np.testing.assert_array_equal(out.efforts, LIMITS.effort)  # no efforts given -> full limits
    dup = gate.on_command(["panda_joint2", "panda_joint2"], [0.1, 0.2], [], 0.01)
    assert dup.reasons["duplicate_joint"] == 1  # one joint named twice
    assert dup.positions[1] == out.positions[1]  # held at the previous output
    assert gate.counters["unknown_joint"] == 1 and gate.counters["duplicate_joint"] == 1


def test_position_step_velocity_and_effort_clamps_exact():
    home = HOME.copy()
    gate = fresh_gate(home)
    target = home.copy()
    target[0] = 10.0  # far beyond limit and step
    efforts = LIMITS.effort.copy()
    efforts[7] = 5.0  # above the hand's 0.7 N*m
    efforts[8] = -1.0
    out = gate.on_command(JOINT_NAMES, target, efforts, 0.0)
    assert out.positions[0] == pytest.approx(home[0] + CFG.max_step_arm)
    assert out.reasons["max_step"] == 1 and out.reasons["position_limit"] == 1
    assert out.efforts[7] == pytest.approx(0.7) and out.efforts[8] == 0.0 and out.reasons["max_effort"] == 2
    # Next command 10 ms later: velocity bound around the previous output applies.
    gate.on_state(JOINT_NAMES, home, 0.01)
    target[0] = home[0] - 0.1
    out2 = gate.on_command(JOINT_NAMES, target, [], 0.01)
    v = CFG.velocity_scale * LIMITS.velocity[0]
    assert out2.positions[0] == pytest.approx(out.positions[0] - v * 0.01)
    assert out2.reasons["max_velocity"] == 1


def test_stale_state_publishes_nothing():
    gate = fresh_gate(t=0.0)
    t = CFG.state_timeout + 0.01
    assert gate.on_command(JOINT_NAMES, HOME, [], t) is None
    assert gate.on_tick(t + 1.0) is None
    assert gate.counters["stale_state"] >= 2
    # A state that lacks a joint never becomes fresh.
    partial = SafetyGate(LIMITS, CFG)
    partial.on_state(JOINT_NAMES[:-1], HOME[:-1], 0.0)
    assert partial.on_command(JOINT_NAMES, HOME, [], 0.0) is None


def test_split_arm_and_hand_states_are_merged():
    home = HOME.copy()
    gate = SafetyGate(LIMITS, CFG)
    gate.on_state(ARM_JOINTS, home[:7], 0.0)
    gate.on_state(HAND_JOINTS, home[7:], 0.001)
    assert gate.on_command(JOINT_NAMES, home, [], 0.002) is not None


def test_watchdog_holds_measured_arm_and_keeps_grip():
    home = HOME.copy()
    gate = fresh_gate(home)
    cmd = home.copy()
    cmd[7:] += 0.3  # close the hand a bit
    cmd[0] += 0.001
    first = gate.on_command(JOINT_NAMES, cmd, [], 0.0)
    assert gate.on_tick(0.05) is None  # command still fresh
    drifted = home.copy()
    drifted[0] += 0.0005
    gate.on_state(JOINT_NAMES, drifted, CFG.command_timeout + 0.01)
    hold = gate.on_tick(CFG.command_timeout + 0.01)
    assert hold.mode == "hold" and hold.reasons["watchdog"] == 1
    np.testing.assert_allclose(hold.positions[:7], drifted[:7])
    np.testing.assert_allclose(hold.positions[7:], first.positions[7:])
    # The hold target is latched: later measurements do not move it.
    gate.on_state(JOINT_NAMES, home, CFG.command_timeout + 0.02)
    again = gate.on_tick(CFG.command_timeout + 0.02)
    np.testing.assert_allclose(again.positions, hold.positions)
    assert gate.counters["watchdog_hold"] == 1


def test_estop_latches_until_reset_and_reset_refuses_while_pressed():
    home = HOME.copy()
    gate = fresh_gate(home)
    gate.on_command(JOINT_NAMES, home, [], 0.0)
    gate.set_estop(True, 0.001)
    hold = gate.on_tick(0.001)
    assert hold.mode == "hold" and gate.hold_reason == "estop"
    moved = home + 0.05
    assert gate.on_command(JOINT_NAMES, moved, [], 0.002) is None
    gate.set_estop(False, 0.003)  # releasing the button does not clear the latch
    assert gate.estop_latched and gate.on_tick(0.003).mode == "hold"
    gate.set_estop(True, 0.004)
    ok, msg = gate.reset_estop()
    assert not ok and "still" in msg
    gate.set_estop(False, 0.005)
    ok, _ = gate.reset_estop()
    assert ok and not gate.estop_latched
    out = gate.on_command(JOINT_NAMES, moved, [], 0.006)
    assert out is not None and out.mode == "command"
    assert gate.counters["estop_latched"] == 2 - 1 and gate.counters["estop_dropped_command"] == 1


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="command_timeout"):
        SafetyGate(LIMITS, SafetyConfig(command_timeout=0.0))
    with pytest.raises(ValueError, match="velocity_scale"):
        SafetyGate(LIMITS, SafetyConfig(velocity_scale=float("nan")))


def test_measured_outside_limits_output_is_nearest_safe_point():
    """A joint measured beyond its limit is commanded to the nearest point inside, not to its command."""
    q = HOME.copy()
    q[19] = LIMITS.lower[19]  # joint_12.0 exactly at its URDF limit, i.e. inside the margin
    gate = fresh_gate(q)
    cmd = q.copy()
    cmd[19] = -1.0
    out = gate.on_command(JOINT_NAMES, cmd, [], 0.0)
    assert out.positions[19] == pytest.approx(gate.lower[19])
    assert out.reasons["position_limit"] == 1


def test_forced_hold_until_next_command():
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME + 0.01, [], 0.0)
    gate.force_hold("shutdown")
    out = gate.on_tick(0.001)
    assert out.mode == "hold" and gate.hold_reason == "shutdown"
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.002).mode == "command"
    assert gate.on_tick(0.003) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(measured_states.map(list), st.lists(VALUES, min_size=N, max_size=N)),
                          st.one_of(st.just(list(JOINT_NAMES)), st.lists(NAMES, min_size=N, max_size=N)),
                          commands(), st.floats(0.0, 0.08), st.booleans()), min_size=1, max_size=10))
def test_arbitrary_states_never_let_an_unsafe_command_through(steps):
    """States with NaN/inf/huge values and wrong or duplicated names, interleaved with any commands
    and watchdog ticks: every output is finite and inside the limits; with no usable state, none."""
    gate = SafetyGate(LIMITS, CFG)
    t = 0.0
    for state, state_names, (names, positions, efforts), dt, tick in steps:
        t += dt
        gate.on_state(state_names, state, t)
        out = gate.on_tick(t) if tick else gate.on_command(names, positions, efforts, t)
        if out is None:
            continue
        event("output")  # hypothesis statistics: how often the gate did publish
        assert gate.state_fresh(t)
        assert np.all(np.isfinite(out.positions)) and np.all(np.isfinite(out.efforts))
        assert np.all(out.positions >= gate.lower) and np.all(out.positions <= gate.upper)
        assert np.all(out.efforts >= 0) and np.all(out.efforts <= gate.max_effort)
