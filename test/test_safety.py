"""Safety gate: property tests over event sequences (core/control/safety_audit.py states the
promises, over real time) plus exact checks of the clamps, motion bounds, watchdog, stale and
implausible state, stamps, owner, e-stop latch and the counters.

The event-sequence property runs `SEQUENCE_EXAMPLES` examples in the default run and
`SLOW_SEQUENCE_EXAMPLES` in the `slow`-marked one (pytest -m slow); together >= 20,000."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drex_ros.core.control.safety import SafetyConfig, SafetyConfigError, SafetyGate
from drex_ros.core.control.safety_audit import COMMAND_KINDS, STATE_KINDS, Event, GateAudit
from drex_ros.core.robot.model import ARM_JOINTS, HAND_JOINTS, JOINT_NAMES, robot_model

LIMITS = robot_model().limits
CFG = SafetyConfig()
N = len(JOINT_NAMES)
HOME = np.clip(robot_model().home(), LIMITS.lower + 0.05, LIMITS.upper - 0.05)  # well inside every limit
NAMES = st.sampled_from(list(JOINT_NAMES) + ["bogus", "", "panda_joint8", "joint_16.0"])
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-5.0, 5.0), st.sampled_from([0.0, 1e308, -1e308, np.nan, np.inf, -np.inf]))
SEQUENCE_EXAMPLES = 400
SLOW_SEQUENCE_EXAMPLES = 20_000


def fresh_gate(q=None, t=0.0, config=CFG) -> SafetyGate:
    gate = SafetyGate(LIMITS, config)
    gate.on_state(JOINT_NAMES, HOME if q is None else q, t)
    return gate


def run(gate, q, t0, t1, step, target, efforts=()):
    """Commands towards `target` every `step` s from t0 to t1, the state held at q; the outputs."""
    outs = []
    for t in np.arange(t0, t1, step):
        gate.on_state(JOINT_NAMES, q, t)
        outs.append((t, gate.on_command(JOINT_NAMES, target, list(efforts), t)))
    return outs


# ---- event-sequence properties ------------------------------------------------------------
DTS = st.one_of(st.sampled_from([0.0, 2e-4, 1e-3, 5e-3, 1e-2, 0.03, 0.12, 0.3]), st.floats(0.0, 0.2))
UNIT = st.lists(st.floats(-1.0, 1.0), min_size=N, max_size=N).map(tuple)
EVENTS = st.one_of(
    st.builds(Event, st.just("state"), DTS, st.sampled_from(("clean",) * 4 + STATE_KINDS[1:]),
              st.tuples(st.floats(-1, 1), st.floats(-1, 1)), st.integers(0, N - 1)),
    st.builds(Event, st.sampled_from(["command", "command", "burst"]), DTS,
              st.sampled_from(("full",) * 4 + COMMAND_KINDS), UNIT, count=st.integers(2, 60)),
    st.builds(Event, st.just("tick"), DTS),
    st.builds(Event, st.just("estop"), DTS, flag=st.booleans()),
    st.builds(Event, st.just("reset"), DTS),
    st.builds(Event, st.just("clock_back"), st.floats(1e-6, 10.0)),
)
SEQUENCES = st.tuples(st.booleans(), st.lists(EVENTS, min_size=1, max_size=40))


def check_sequence(case) -> None:
    start_latched, events = case
    audit = GateAudit(SafetyGate(LIMITS, SafetyConfig(start_latched=start_latched)), HOME)
    for e in events:
        audit.apply(e)
    assert not audit.result.violations, audit.result.violations[:5]


@settings(max_examples=SEQUENCE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SEQUENCES)
def test_event_sequences_keep_every_promise(case):
    check_sequence(case)


@pytest.mark.slow
@settings(max_examples=SLOW_SEQUENCE_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SEQUENCES)
def test_event_sequences_keep_every_promise_full_count(case):
    check_sequence(case)


@st.composite
def commands(draw):
    n = draw(st.integers(0, 30))
    names = draw(st.lists(NAMES, min_size=n, max_size=n))
    positions = draw(st.lists(VALUES, min_size=n, max_size=n))
    m = draw(st.sampled_from([0, n, draw(st.integers(0, 30))]))
    efforts = draw(st.lists(VALUES, min_size=m, max_size=m))
    if draw(st.booleans()) and n:  # length mismatch between names and positions
        positions = positions[: draw(st.integers(0, n - 1))]
    return names, positions, efforts


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.just(list(HOME)), st.lists(VALUES, min_size=N, max_size=N)),
                          st.one_of(st.just(list(JOINT_NAMES)), st.lists(NAMES, min_size=N, max_size=N)),
                          commands(), st.floats(0.0, 0.08), st.booleans()), min_size=1, max_size=10))
def test_arbitrary_messages_never_let_an_unsafe_output_through(steps):
    """Garbage names and values in states and commands: every output finite, inside the limits, with
    efforts in [0, limit], and only on fresh state."""
    gate = SafetyGate(LIMITS, CFG)
    t = 0.0
    for state, state_names, (names, positions, efforts), dt, tick in steps:
        t += dt
        gate.on_state(state_names, state, t)
        out = gate.on_tick(t) if tick else gate.on_command(names, positions, efforts, t)
        if out is None:
            continue
        assert gate.state_fresh(t)
        assert np.all(np.isfinite(out.positions)) and np.all(np.isfinite(out.efforts))
        assert np.all(out.positions >= gate.lower) and np.all(out.positions <= gate.upper)
        assert np.all(out.efforts >= 0) and np.all(out.efforts <= gate.max_effort)


# ---- motion bounds over real time ---------------------------------------------------------
def test_a_burst_moves_no_farther_than_the_velocity_bound_allows():
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME, [], 0.0)
    target = HOME.copy()
    target[0] += 1.0
    outs = run(gate, HOME, 1e-4, 0.0100001, 1e-4, target)  # 100 commands in 10 ms
    moved = outs[-1][1].positions[0] - HOME[0]
    assert 0 < moved <= gate.max_velocity[0] * 0.01 + 1e-12


def test_a_step_target_is_approached_within_acceleration_and_stops_there():
    gate = fresh_gate(HOME)
    target = HOME.copy()
    target[1] += 0.1  # panda_joint2: within max_step
    outs = [o for _, o in run(gate, HOME, 0.0, 2.0, 0.001, target)]
    q = np.array([o.positions[1] for o in outs])
    u = np.diff(q) / 0.001
    assert np.max(np.abs(u)) <= gate.max_velocity[1] * (1 + 1e-9)
    assert np.max(np.abs(np.diff(u)) / 0.001) <= gate.max_acceleration[1] * (1 + 1e-6)
    assert q[-1] == pytest.approx(target[1], abs=1e-9)
    assert np.max(q) <= target[1] + 1e-3  # brakes instead of overshooting
    # each output reports its own rate of change (what a trajectory driver is sent as velocity)
    np.testing.assert_allclose([o.velocities[1] for o in outs[1:]], u, atol=1e-9)


def test_hand_has_velocity_but_no_acceleration_bound():
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME, [], 0.0)
    target = HOME.copy()
    target[7] += 0.2
    out = gate.on_command(JOINT_NAMES, target, [], 0.01)
    assert out.positions[7] - HOME[7] == pytest.approx(gate.max_velocity[7] * 0.01)
    assert out.positions[0] == HOME[0]


def test_first_output_is_the_measured_position_and_a_gap_restarts_at_rest():
    gate = fresh_gate(HOME)
    target = HOME + 0.1
    first = gate.on_command(JOINT_NAMES, target, [], 0.0)
    np.testing.assert_allclose(first.positions, HOME)
    second = gate.on_command(JOINT_NAMES, target, [], 0.01)
    assert np.all(second.positions != HOME)
    gate.on_state(JOINT_NAMES, HOME, 0.5)
    after_gap = gate.on_command(JOINT_NAMES, target, [], 0.5)
    np.testing.assert_array_equal(after_gap.positions, second.positions)
    assert np.any(second.velocities != 0) and np.all(after_gap.velocities == 0)  # at rest after the gap


def test_hold_decelerates_within_the_bounds_then_stays():
    gate = fresh_gate(HOME)
    target = HOME.copy()
    target[0] += 0.15
    outs = [o for _, o in run(gate, HOME, 0.0, 0.2, 0.001, target)]
    gate.set_estop(True, 0.2)
    q = [o.positions[0] for o in outs]
    for k in range(700):
        t = 0.2 + 0.001 * k
        gate.on_state(JOINT_NAMES, HOME, t)
        hold = gate.on_tick(t)
        assert hold.mode == "hold"
        q.append(hold.positions[0])
    u = np.diff(q) / 0.001
    assert np.max(np.abs(u)) <= gate.max_velocity[0] * (1 + 1e-9)
    assert np.max(np.abs(np.diff(u)) / 0.001) <= gate.max_acceleration[0] * (1 + 1e-6)
    assert q[-1] == pytest.approx(HOME[0], abs=1e-6)  # settles at the measured position of the hold's start


# ---- clamps and refusals ------------------------------------------------------------------
def test_step_bound_and_position_limits_clip_the_target():
    gate = fresh_gate(HOME)
    target = HOME.copy()
    target[0] = 10.0
    outs = [o for _, o in run(gate, HOME, 0.0, 1.0, 0.005, target)]
    assert outs[0].reasons["max_step"] == 1 and outs[0].reasons["position_limit"] == 1
    assert outs[-1].positions[0] == pytest.approx(HOME[0] + CFG.max_step_arm)


def test_measured_outside_limits_output_is_nearest_safe_point():
    q = HOME.copy()
    q[19] = LIMITS.lower[19]  # joint_12.0 at its URDF limit, i.e. inside the margin
    gate = fresh_gate(q)
    cmd = q.copy()
    cmd[19] = -1.0
    out = gate.on_command(JOINT_NAMES, cmd, [], 0.0)
    assert out.positions[19] == pytest.approx(gate.lower[19])
    assert out.reasons["position_limit"] == 1


def test_efforts_bad_values_become_the_minimum_and_high_ones_the_limit():
    gate = fresh_gate(HOME)
    efforts = LIMITS.effort.copy()
    efforts[7], efforts[8], efforts[9], efforts[10], efforts[11] = 5.0, -1.0, np.nan, np.inf, -np.inf
    out = gate.on_command(JOINT_NAMES, HOME, efforts, 0.0)
    assert out.efforts[7] == pytest.approx(0.7) and out.reasons["max_effort"] == 1
    assert list(out.efforts[8:12]) == [0.0] * 4 and out.reasons["bad_effort"] == 4
    full = gate.on_command(JOINT_NAMES, HOME, [], 0.01)
    np.testing.assert_array_equal(full.efforts, LIMITS.effort)  # no efforts given -> full limits


def test_unknown_duplicate_and_nonfinite_are_refused_and_counted():
    gate = fresh_gate(HOME)
    pos = list(HOME) + [1.0]
    pos[0] = np.nan
    out = gate.on_command(list(JOINT_NAMES) + ["bogus"], pos, [], 0.0)
    assert out.reasons["unknown_joint"] == 1 and out.reasons["nonfinite_position"] == 1
    assert out.positions[0] == HOME[0]
    dup = gate.on_command(["panda_joint2", "panda_joint2", "panda_joint3"], [0.1, 0.2, HOME[2]], [], 0.01)
    assert dup.reasons["duplicate_joint"] == 1 and dup.positions[1] == out.positions[1]


@pytest.mark.parametrize("names,positions", [([], []), (["bogus"], [0.3]), (list(JOINT_NAMES), [np.nan] * N),
                                             (["panda_joint1", "panda_joint1"], [0.1, 0.2])])
def test_noop_commands_do_not_feed_the_watchdog(names, positions):
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME, [], 0.0)
    t = 0.0
    while t < CFG.command_timeout + 0.02:
        t += 0.01
        gate.on_state(JOINT_NAMES, HOME, t)
        assert gate.on_command(names, positions, [], t) is None
    hold = gate.on_tick(t)
    assert hold is not None and hold.mode == "hold" and gate.hold_reason == "watchdog"
    assert gate.counters["noop_command"] >= 10


def test_command_stamps_must_not_go_back_zero_exempt_order_restarts_with_a_hold():
    gate = fresh_gate(HOME)
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.0, stamp=50.0) is not None
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.01, stamp=49.0) is None
    assert gate.counters["old_command_stamp"] == 1
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.02, stamp=0.0) is not None
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.03, stamp=50.0) is not None
    gate.on_state(JOINT_NAMES, HOME, 0.2)
    assert gate.on_tick(0.2).mode == "hold"
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.21, stamp=3.0) is not None  # an upstream that restarted


def test_only_the_owner_commands_and_others_do_not_feed_the_watchdog():
    gate = fresh_gate(HOME)
    gate.set_owner("policy")
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.0, source="policy") is not None
    t = 0.0
    while t < CFG.command_timeout + 0.02:
        t += 0.01
        gate.on_state(JOINT_NAMES, HOME, t)
        assert gate.on_command(JOINT_NAMES, HOME + 0.05, [], t, source="mass_id") is None
    assert gate.on_tick(t).mode == "hold" and gate.counters["not_owner"] >= 10
    gate.set_owner("")
    assert gate.on_command(JOINT_NAMES, HOME, [], t, source="policy") is None
    gate.set_owner("any")
    assert gate.on_command(JOINT_NAMES, HOME, [], t, source="mass_id") is not None


# ---- measured state -----------------------------------------------------------------------
def test_a_glitch_sample_makes_the_joint_stale_not_a_jump():
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME, [], 0.0)
    glitch = HOME.copy()
    glitch[0] = 1e308
    gate.on_state(JOINT_NAMES, glitch, 0.005)
    target = HOME.copy()
    target[0] += 0.15
    assert gate.on_command(JOINT_NAMES, target, [], 0.005) is None
    assert gate.counters["state_implausible"] == 1 and not gate.state_fresh(0.005)
    gate.on_state(JOINT_NAMES, HOME, 0.01)
    out = gate.on_command(JOINT_NAMES, target, [], 0.01)
    assert abs(out.positions[0] - HOME[0]) <= gate.max_acceleration[0] * 0.01 ** 2 + 1e-12


@pytest.mark.parametrize("change", ["jump", "beyond_limit", "fast_velocity", "velocity_vs_position", "nan"])
def test_implausible_samples_are_stale(change):
    gate = fresh_gate(HOME)
    gate.on_state(JOINT_NAMES, HOME, 0.001, velocities=[0.0] * N)
    q, v, t = HOME.copy(), np.zeros(N), 0.002
    if change == "jump":
        q[3] += 0.2  # in 1 ms
    elif change == "beyond_limit":
        q[3] = LIMITS.upper[3] + 0.2
    elif change == "fast_velocity":
        v[3] = 10.0
    elif change == "velocity_vs_position":
        v[3], t = 3.5, 0.020  # the next sample, 19 ms on, says 3.5 rad/s but the position stood still
    else:
        q[3] = np.nan
    gate.on_state(JOINT_NAMES, q, t, velocities=v)
    assert not gate.state_fresh(t) and gate.counters["state_implausible"] == 1
    gate.on_state(JOINT_NAMES, HOME, t + 0.001, velocities=[0.0] * N)
    assert gate.state_fresh(t + 0.001)


def test_duplicate_names_refuse_the_whole_state():
    gate = fresh_gate(HOME, t=0.0)
    gate.on_state(list(JOINT_NAMES) + ["panda_joint1"], list(HOME) + [0.0], 0.05)
    assert gate.counters["state_duplicate"] == 1
    assert gate.state_age(0.05) == pytest.approx(0.05)  # nothing merged


def test_stamps_judge_freshness_old_and_future_ones_are_stale():
    gate = fresh_gate(HOME)
    gate.on_state(JOINT_NAMES, HOME, 1.0, stamp_age=10.0)  # stamped 10 s ago, arriving now
    assert not gate.state_fresh(1.0) and gate.counters["state_old_stamp"] == 1
    gate.on_state(JOINT_NAMES, HOME, 1.01, stamp_age=CFG.stamp_tolerance)  # within the clock offset
    assert gate.state_fresh(1.01)
    gate.on_state(JOINT_NAMES, HOME, 1.02, stamp_age=-1.0)
    assert not gate.state_fresh(1.02) and gate.counters["state_future_stamp"] == 1
    late = fresh_gate(HOME)
    late.on_state(JOINT_NAMES, HOME, 1.0, stamp_age=CFG.stamp_tolerance + 0.06)  # 60 ms late
    assert late.state_age(1.0) == pytest.approx(0.06)
    gate.on_state(JOINT_NAMES, HOME, 1.03, stamp_age=0.08)  # older than the last sample taken: ignored
    assert gate.counters["state_out_of_order"] == N


def test_stale_state_publishes_nothing():
    gate = fresh_gate(t=0.0)
    t = CFG.state_timeout + 0.01
    assert gate.on_command(JOINT_NAMES, HOME, [], t) is None
    assert gate.on_tick(t + 1.0) is None
    assert gate.counters["stale_state"] >= 2
    partial = SafetyGate(LIMITS, CFG)  # a state that lacks a joint never becomes fresh
    partial.on_state(JOINT_NAMES[:-1], HOME[:-1], 0.0)
    assert partial.on_command(JOINT_NAMES, HOME, [], 0.0) is None


def test_split_arm_and_hand_states_are_merged():
    gate = SafetyGate(LIMITS, CFG)
    gate.on_state(ARM_JOINTS, HOME[:7], 0.0)
    gate.on_state(HAND_JOINTS, HOME[7:], 0.001)
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.002) is not None


def test_a_clock_jumping_back_gives_stale_then_a_hold_never_silence():
    gate = fresh_gate(HOME, t=100.0)
    gate.on_command(JOINT_NAMES, HOME, [], 100.0)
    assert gate.on_tick(5.0) is None and gate.counters["clock_backwards"] == 1
    gate.on_state(JOINT_NAMES, HOME, 5.01)
    hold = gate.on_tick(5.01)
    assert hold is not None and hold.mode == "hold" and gate.hold_reason == "watchdog"


# ---- watchdog and e-stop ------------------------------------------------------------------
def test_watchdog_holds_measured_arm_and_keeps_grip():
    gate = fresh_gate(HOME)
    cmd = HOME.copy()
    cmd[7:] += 0.3
    outs = [o for _, o in run(gate, HOME, 0.0, 0.1, 0.01, cmd)]
    assert gate.on_tick(0.095) is None  # command still fresh
    drifted = HOME.copy()
    drifted[0] += 0.0005
    t = 0.09 + CFG.command_timeout + 0.01
    gate.on_state(JOINT_NAMES, drifted, t)
    assert gate.on_tick(t).reasons["watchdog"] == 1
    for k in range(1, 200):
        gate.on_state(JOINT_NAMES, HOME, t + 0.005 * k)
        hold = gate.on_tick(t + 0.005 * k)
    np.testing.assert_allclose(hold.positions[:7], drifted[:7], atol=1e-9)  # latched at the hold's start
    np.testing.assert_allclose(hold.positions[7:], outs[-1].positions[7:])
    assert gate.counters["watchdog_hold"] == 1


def test_estop_latches_until_reset_and_reset_refuses_while_pressed():
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME, [], 0.0)
    gate.set_estop(True, 0.001)
    assert gate.on_tick(0.001).mode == "hold" and gate.hold_reason == "estop"
    assert gate.on_command(JOINT_NAMES, HOME + 0.05, [], 0.002) is None
    gate.set_estop(False, 0.003)  # releasing the button does not clear the latch
    assert gate.estop_latched and gate.on_tick(0.003).mode == "hold"
    gate.set_estop(True, 0.004)
    ok, msg = gate.reset_estop()
    assert not ok and "still" in msg
    gate.set_estop(False, 0.005)
    ok, _ = gate.reset_estop()
    assert ok and not gate.estop_latched
    assert gate.on_command(JOINT_NAMES, HOME + 0.05, [], 0.006).mode == "command"
    assert gate.counters["estop_latched"] == 1 and gate.counters["estop_dropped_command"] == 1


def test_a_reset_moves_nothing_the_hold_goes_on_with_its_target():
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME, [], 0.0)
    gate.set_estop(True, 0.001)
    held = gate.on_tick(0.001).positions.copy()
    drifted = HOME.copy()
    drifted[:7] += 0.02  # the arm settles a little under the hold
    t = 0.001
    for k in range(1, 100):
        t = 0.001 + 0.005 * k
        gate.on_state(JOINT_NAMES, drifted, t)
        gate.on_tick(t)
    gate.set_estop(False, t)
    assert gate.reset_estop()[0]
    for k in range(1, 100):
        gate.on_state(JOINT_NAMES, drifted, t + 0.005 * k)
        out = gate.on_tick(t + 0.005 * k)
        assert out.mode == "hold"
        np.testing.assert_allclose(out.positions[:7], held[:7], atol=1e-9)  # not a new hold where it drifted


@pytest.mark.parametrize("start_latched", [True, False])
def test_start_latched(start_latched):
    gate = fresh_gate(HOME, config=SafetyConfig(start_latched=start_latched))
    out = gate.on_command(JOINT_NAMES, HOME, [], 0.0)
    assert (out is None) == start_latched
    if start_latched:
        assert gate.on_tick(0.0).mode == "hold"
        assert gate.reset_estop()[0] and gate.on_command(JOINT_NAMES, HOME, [], 0.01).mode == "command"


def test_forced_hold_until_next_command():
    gate = fresh_gate(HOME)
    gate.on_command(JOINT_NAMES, HOME + 0.01, [], 0.0)
    gate.force_hold("shutdown")
    assert gate.on_tick(0.001).mode == "hold" and gate.hold_reason == "shutdown"
    assert gate.on_command(JOINT_NAMES, HOME, [], 0.002).mode == "command"
    assert gate.on_tick(0.003) is None


@pytest.mark.parametrize("field,value", [("command_timeout", 0.0), ("velocity_scale", float("nan")),
                                         ("effort_scale", 3.0), ("velocity_scale", 1.5), ("dynamics_scale", 2.0),
                                         ("max_step_arm", 10.0), ("max_step_hand", 3.0),
                                         ("arm_max_acceleration", (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 21.0)),
                                         ("arm_max_jerk", (1.0,) * 6)])
def test_bad_config_is_a_clear_error_naming_the_parameter(field, value):
    with pytest.raises(SafetyConfigError, match=field):
        SafetyGate(LIMITS, SafetyConfig(**{field: value}))
