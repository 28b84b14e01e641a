"""While the hand hides the grasped object, the policy carries its last pose with the palm."""

import numpy as np

from drex_ros.core.policy.build import build_mlp_policy
from drex_ros.core.policy.contract import ObsField, PolicyContract
from drex_ros.core.policy.loop import LoopConfig, PolicyLoop
from drex_ros.core.policy.runtime import MissingInput, PolicyModel
from drex_ros.core.robot.model import HAND_JOINTS, JOINT_NAMES, robot_model


def _identity_model() -> PolicyModel:
    """A model that outputs the object's palm-frame position on the first three hand joints."""
    contract = PolicyContract(
        observation=[ObsField("object_position_palm", 3)], position_targets=list(HAND_JOINTS[:3]), grip_effort=[],
        obs_mean=np.zeros(3), obs_std=np.ones(3), action_mean=np.zeros(3), action_std=np.ones(3),
        control_rate_hz=50.0)
    return PolicyModel(build_mlp_policy(contract, [(np.eye(3), np.zeros(3))]))


def _loop(hold: float) -> PolicyLoop:
    loop = PolicyLoop(_identity_model(), robot_model(), LoopConfig(blend_steps=0, object_pose_timeout=0.5,
                                                                   occluded_object_hold=hold))
    return loop


def _feed_joints(loop: PolicyLoop, q: np.ndarray, now: float) -> None:
    loop.update_joint_state(JOINT_NAMES, q, np.zeros(23), np.zeros(23), now)


def test_hidden_object_moves_with_the_palm_for_the_hold_time():
    robot = robot_model()
    loop = _loop(hold=2.0)
    q = robot.home()
    _feed_joints(loop, q, 0.0)
    palm = robot.palm_pose(q)
    obj = palm.translation + palm.rotation @ np.array([0.02, 0.01, 0.05])
    loop.update_object_pose(obj, [1, 0, 0, 0], 0.0)
    assert loop.enable(0.0)[0]
    seen = loop.step(0.0).positions[7:10].copy()
    np.testing.assert_allclose(seen, [0.02, 0.01, 0.05], atol=1e-6)
    q_lifted = q.copy()
    q_lifted[1] -= 0.2  # the arm moves; the object pose is no longer updated
    _feed_joints(loop, q_lifted, 1.0)
    carried = loop.step(1.0)
    np.testing.assert_allclose(carried.positions[7:10], seen, atol=1e-6)  # same place in the palm
    assert loop.occluded_steps == 1
    _feed_joints(loop, q_lifted, 2.5)
    assert loop.step(2.5).positions is None  # beyond the hold time: refuse as before


def test_without_hold_a_stale_pose_refuses():
    robot = robot_model()
    loop = _loop(hold=0.0)
    q = robot.home()
    _feed_joints(loop, q, 0.0)
    loop.update_object_pose(robot.palm_pose(q).translation, [1, 0, 0, 0], 0.0)
    loop.enable(0.0)
    assert loop.step(0.0).positions is not None
    _feed_joints(loop, q, 1.0)
    result = loop.step(1.0)
    assert result.positions is None and "stale" in result.problem
    assert issubclass(MissingInput, RuntimeError)
