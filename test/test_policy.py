"""Policy runtime on ONNX models built here with known weights: exact outputs, contract checks,
observation layout, merge with the arm reference, blend-in and the deadline monitor."""

import numpy as np
import pinocchio as pin
import pytest

from drex_ros.core.policy.build import build_mlp_policy
from drex_ros.core.policy.contract import ContractError, ObsField, PolicyContract
from drex_ros.core.policy.loop import BlendIn, DeadlineMonitor, LoopConfig, PolicyLoop
from drex_ros.core.policy.runtime import (
    MissingInput,
    ObservationBuilder,
    PolicyInputs,
    PolicyModel,
    RuntimeExpectations,
    check_contract,
    quat_wxyz,
)
from drex_ros.core.robot.model import JOINT_NAMES, robot_model

ROBOT = robot_model()
GRIP = ["joint_0.0", "joint_1.0", "joint_2.0", "joint_3.0"]


def small_contract(**overrides) -> PolicyContract:
    obs = [ObsField("joint_position", 2, ["joint_0.0", "panda_joint1"]), ObsField("object_mass", 1),
           ObsField("object_position_palm", 3)]
    fields = dict(observation=obs, position_targets=["joint_0.0", "joint_1.0"], grip_effort=GRIP,
                  obs_mean=np.array([0.1, 0.0, 0.5, 0.0, 0.0, 0.1]), obs_std=np.array([2.0, 1.0, 0.5, 1.0, 1.0, 4.0]),
                  action_mean=np.array([0.2, 0.3, 0.0]), action_std=np.array([0.5, 2.0, 1.0]),
                  control_rate_hz=100.0, gains={"joint_0.0": {"kp": 3.0, "kd": 0.1}})
    fields.update(overrides)
    return PolicyContract(**fields)


W = np.array([[1.0, -2.0, 0.5, 0.0, 0.25, 1.0],
              [0.0, 1.0, 0.0, 3.0, 0.0, -1.0],
              [0.0, 0.0, 0.5, 0.0, 0.0, 0.0]], dtype=np.float32)
B = np.array([0.1, -0.2, 0.25], dtype=np.float32)


def inputs_at(q, now=0.0, mass=0.4, obj=(0.55, 0.0, 0.03)) -> PolicyInputs:
    inp = PolicyInputs(len(JOINT_NAMES))
    inp.position[:] = q
    inp.velocity[:] = 0.0
    inp.effort[:] = 0.0
    inp.joint_state_time = now
    inp.object_position, inp.object_quat, inp.object_pose_time = np.array(obj), np.array([1.0, 0, 0, 0]), now
    inp.object_mass = mass
    return inp


def test_linear_model_output_is_exact():
    contract = small_contract()
    model = PolicyModel(build_mlp_policy(contract, [(W, B)]))
    obs = np.array([0.3, -0.4, 0.7, 0.05, -0.02, 0.2])
    expected_raw = W.astype(float) @ ((obs - contract.obs_mean) / contract.obs_std) + B
    expected = expected_raw * contract.action_std + contract.action_mean
    np.testing.assert_allclose(model.act(obs), expected, rtol=1e-6, atol=1e-6)
    assert model.contract.position_targets == contract.position_targets


def test_two_layer_relu_model_exact():
    contract = small_contract()
    w1 = np.arange(24, dtype=np.float32).reshape(4, 6) / 10 - 1.0
    b1 = np.array([0.5, -0.5, 0.0, 1.0], dtype=np.float32)
    w2 = np.arange(12, dtype=np.float32).reshape(3, 4) / 7 - 0.5
    b2 = np.zeros(3, dtype=np.float32)
    model = PolicyModel(build_mlp_policy(contract, [(w1, b1), (w2, b2)]))
    obs = np.linspace(-1, 1, 6)
    x = (obs - contract.obs_mean) / contract.obs_std
    expected = (w2 @ np.maximum(w1 @ x + b1, 0) + b2) * contract.action_std + contract.action_mean
    np.testing.assert_allclose(model.act(obs), expected, rtol=1e-5, atol=1e-6)


def test_model_whose_graph_disagrees_with_its_metadata_is_refused():
    contract = small_contract()
    data = build_mlp_policy(contract, [(W, B)])
    import onnx

    model = onnx.load_from_string(data)
    for prop in model.metadata_props:
        if prop.key == "drex.observation":  # declare one field fewer than the graph takes
            prop.value = '[{"name": "joint_position", "size": 2, "joints": ["joint_0.0", "panda_joint1"]}, ' \
                         '{"name": "object_position_palm", "size": 3}]'
        if prop.key in ("drex.obs_mean", "drex.obs_std"):
            prop.value = "[1, 1, 1, 1, 1]"
    with pytest.raises(ContractError, match="input 'obs' has 6 values, the declared observation has 5"):
        PolicyModel(model.SerializeToString())
    with pytest.raises(ContractError, match="cannot load"):
        PolicyModel(b"not an onnx model")


def test_contract_check_names_every_difference():
    contract = small_contract(position_targets=["joint_0.0", "finger_x"], action_mean=np.zeros(3),
                              action_std=np.ones(3))
    problems = check_contract(contract, JOINT_NAMES, RuntimeExpectations(
        control_rate_hz=50.0, obs_dim=7, gains={"joint_0.0": {"kp": 6.0}}))
    text = "\n".join(problems)
    assert "position_targets names joints the robot does not have: ['finger_x']" in text
    assert "configured 50 Hz" in text and "trained at 100 Hz" in text
    assert "observation size: configured 7, model declares 6" in text
    assert "gain kp of joint_0.0: configured 6, model trained with 3" in text
    assert len(problems) == 4
    ok = check_contract(small_contract(), JOINT_NAMES, RuntimeExpectations(
        control_rate_hz=100.0, obs_dim=6, gains={"joint_0.0": {"kp": 3.0, "kd": 0.1}}))
    assert ok == []


def test_observation_layout_and_palm_frame():
    contract = PolicyContract(
        observation=[ObsField("joint_position", 2, ["panda_joint2", "joint_5.0"]),
                     ObsField("joint_velocity", 1, ["panda_joint1"]), ObsField("object_position_palm", 3),
                     ObsField("object_quat_palm", 4), ObsField("object_position_world", 3),
                     ObsField("object_quat_world", 4), ObsField("object_mass", 1), ObsField("object_friction", 1),
                     ObsField("object_size", 3), ObsField("palm_position_world", 3), ObsField("phase_time", 1)],
        position_targets=["joint_0.0"], grip_effort=[], obs_mean=np.zeros(26), obs_std=np.ones(26),
        action_mean=np.zeros(1), action_std=np.ones(1), control_rate_hz=50.0)
    q = ROBOT.home()
    q[JOINT_NAMES.index("joint_5.0")] = 0.7
    inp = inputs_at(q, obj=(0.5, 0.1, 0.04))
    inp.velocity[0] = -0.25
    yaw = 0.3
    inp.object_quat = np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    inp.object_friction, inp.object_size, inp.phase_time = 0.8, np.array([0.05, 0.06, 0.07]), 1.5
    obs = ObservationBuilder(contract, ROBOT).build(inp, now=0.01)
    palm = ROBOT.palm_pose(q)
    obj = pin.SE3(pin.utils.rpyToMatrix(0, 0, yaw), np.array([0.5, 0.1, 0.04]))
    rel = palm.actInv(obj)
    expected = np.concatenate([[q[1], 0.7], [-0.25], rel.translation, quat_wxyz(rel.rotation),
                               [0.5, 0.1, 0.04], inp.object_quat, [0.4], [0.8], [0.05, 0.06, 0.07],
                               palm.translation, [1.5]])
    np.testing.assert_allclose(obs, expected, atol=1e-12)
    assert quat_wxyz(rel.rotation)[0] >= 0


def test_missing_and_stale_inputs_are_named():
    contract = small_contract()
    builder = ObservationBuilder(contract, ROBOT, joint_state_timeout=0.1, object_pose_timeout=0.5)
    inp = PolicyInputs(len(JOINT_NAMES))
    with pytest.raises(MissingInput, match="no /joint_states received"):
        builder.build(inp, 0.0)
    inp = inputs_at(ROBOT.home(), now=0.0, mass=None)
    with pytest.raises(MissingInput, match="no object mass identified"):
        builder.build(inp, 0.05)
    inp = inputs_at(ROBOT.home(), now=0.0)
    msg = "; ".join(builder.problems(inp, 0.3))
    assert "/joint_states is stale" in msg and "object pose" not in msg
    assert "object pose is stale" in "; ".join(builder.problems(inp, 0.6))
    inp.position[JOINT_NAMES.index("panda_joint1")] = np.nan
    with pytest.raises(MissingInput, match=r"lacks joint_position of \['panda_joint1'\]"):
        builder.build(inp, 0.01)


def make_loop(config=None, weights=(W, B)) -> PolicyLoop:
    return PolicyLoop(PolicyModel(build_mlp_policy(small_contract(), [weights])), ROBOT, config)


def feed(loop: PolicyLoop, q, now):
    loop.update_joint_state(JOINT_NAMES, q, np.zeros(len(q)), np.zeros(len(q)), now)
    loop.update_object_pose((0.55, 0.0, 0.03), (1.0, 0.0, 0.0, 0.0), now)
    loop.update_object_mass(0.4, 0.6)


def test_loop_merges_model_reference_and_hold_and_blends_in():
    loop = make_loop(LoopConfig(blend_steps=4, deadline_fraction=100.0))
    q = ROBOT.home()
    assert loop.step(0.0).positions is None  # not enabled
    feed(loop, q, 0.0)
    ok, _ = loop.enable(0.0)
    assert ok
    ref_names, ref = ["panda_joint1", "panda_joint2"], [0.4, -0.1]
    assert loop.set_arm_reference(ref_names + ["nope"], ref + [1.0]) == ["nope"]
    target = q.copy()
    target[0], target[1] = 0.4, -0.1
    obs = ObservationBuilder(loop.model.contract, ROBOT).build(loop.inputs, 0.0)
    action = loop.model.act(obs)
    target[JOINT_NAMES.index("joint_0.0")], target[JOINT_NAMES.index("joint_1.0")] = action[0], action[1]
    grip = float(np.clip(action[2], 0, 1))
    for k in range(1, 6):
        res = loop.step(0.01 * k)
        feed(loop, q, 0.01 * k)
        w = min(k / 4, 1.0)
        np.testing.assert_allclose(res.positions, q + w * (target - q), atol=1e-6)
    effort = ROBOT.limits.effort.copy()
    for j in GRIP:
        effort[JOINT_NAMES.index(j)] *= grip
    np.testing.assert_allclose(res.efforts, effort, atol=1e-6)


def test_loop_refuses_on_stale_input_then_blends_in_again_from_its_last_command():
    loop = make_loop(LoopConfig(blend_steps=2, deadline_fraction=100.0))
    q = ROBOT.home()
    feed(loop, q, 0.0)
    loop.enable(0.0)
    loop.step(0.0)
    last = loop.step(0.01).positions  # blend done
    res = loop.step(0.5)  # joint state 0.5 s old
    assert res.positions is None and "stale" in res.problem
    # Meanwhile the fingers stalled on an object short of the command: the measured posture differs.
    q2 = q + 0.05
    feed(loop, q2, 0.6)
    first = loop.step(0.6)
    full = loop.step(0.61).positions
    np.testing.assert_allclose(first.positions, last + 0.5 * (full - last), atol=1e-6)
    assert not np.allclose(first.positions, q2 + 0.5 * (full - q2), atol=1e-3), "not from the measured posture"
    loop.enable(0.7)  # an explicit (re-)enable starts from the measured posture again
    first = loop.step(0.7).positions
    feed(loop, q2, 0.71)
    full = loop.step(0.71).positions
    np.testing.assert_allclose(first, q2 + 0.5 * (full - q2), atol=1e-6)


def test_phase_time_follows_the_plan_clock_published_after_the_enable():
    loop = make_loop(LoopConfig(deadline_fraction=100.0))
    q = ROBOT.home()
    feed(loop, q, 1.0)
    loop.set_plan_time(7.0, 0.9)  # an old plan's clock, before this enable: ignored
    loop.enable(1.0)
    loop.step(1.5)
    assert loop.inputs.phase_time == pytest.approx(0.5)  # no plan clock yet: own clock
    for now in (1.52, 1.8, 2.4):  # the task holds its plan at 0.6 s (waiting for the grip)
        feed(loop, q, now)
        loop.set_plan_time(0.6, now)
        loop.step(now)
        assert loop.inputs.phase_time == pytest.approx(0.6)
    loop.set_plan_time(float("nan"), 2.5)  # ignored
    loop.step(2.5)
    assert loop.inputs.phase_time == pytest.approx(0.6)
    feed(loop, q, 3.0)
    assert loop.enable(3.0)[0]  # a new enable: own clock again until the plan clock arrives
    feed(loop, q, 3.1)
    loop.step(3.1)
    assert loop.inputs.phase_time == pytest.approx(0.1)


def test_enable_needs_fresh_state_and_deadline_monitor_stops_policy():
    loop = make_loop(LoopConfig(deadline_fraction=1e-9, max_overruns=3, overrun_window=10))
    ok, msg = loop.enable(0.0)
    assert not ok and "no fresh /joint_states" in msg
    feed(loop, ROBOT.home(), 0.0)
    assert loop.enable(0.0)[0]
    results = [loop.step(0.0) for _ in range(4)]
    assert [r.positions is not None for r in results] == [True, True, False, False]
    assert results[2].problem.startswith("deadline: 3 overruns") and not loop.enabled
    assert loop.monitor.overruns == 3
    assert loop.enable(0.0)[0]  # re-enabling starts a fresh window: the same pattern again
    assert [loop.step(0.0).positions is not None for _ in range(3)] == [True, True, False]
    assert loop.monitor.overruns == 6


def test_blend_and_monitor_units():
    blend = BlendIn(0)
    blend.start(np.zeros(2))
    np.testing.assert_array_equal(blend.apply(np.ones(2)), np.ones(2))
    mon = DeadlineMonitor(budget=1.0, max_overruns=2, window=3)
    assert [mon.record(d) for d in (2.0, 0.1, 0.1, 0.1, 2.0)] == [True, False, False, False, True]
    assert not mon.tripped  # the first overrun left the window before the second
    mon.record(2.0)
    assert mon.tripped


def test_decode_action_targets_and_grip_effort():
    from drex_ros.core.policy.runtime import decode_action

    c = small_contract()
    targets, efforts = decode_action(c, np.array([0.1, -0.2, 1.7]), JOINT_NAMES, ROBOT.limits)
    assert targets == {"joint_0.0": 0.1, "joint_1.0": -0.2}
    assert efforts == {j: pytest.approx(0.7) for j in GRIP}  # fraction clipped to 1 x 0.7 N*m
    _, efforts = decode_action(c, np.array([0.0, 0.0, 0.25]), JOINT_NAMES, ROBOT.limits)
    assert efforts["joint_2.0"] == pytest.approx(0.25 * 0.7)
    with pytest.raises(ValueError, match="non-finite"):
        decode_action(c, np.array([np.nan, 0.0, 0.0]), JOINT_NAMES, ROBOT.limits)


def test_clock_rate_measures_steps_in_the_robot_clock():
    from drex_ros.core.policy.loop import ClockRate

    rate = ClockRate(smoothing=1.0)
    rate.update(10.0, 100.0)
    rate.update(10.2, 101.0)  # a sim at 0.2x real time
    assert abs(rate.rate - 0.2) < 1e-9
    t0 = rate.seconds()
    t1 = rate.seconds()
    assert 0 <= t1 - t0 < 1e-3
    rate.update(10.2, 102.0)  # a paused sim: its clock did not move
    assert rate.rate == 0.0
    rate.update(9.0, 103.0)  # time went backwards (reset): ignored
    assert rate.rate == 0.0
