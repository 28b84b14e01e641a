"""Checks applied to a command before it reaches the simulated motors."""

import numpy as np

from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.core.sim.command_intake import check_array_command, check_named_command

LIMITS = robot_model().limits


def test_valid_subset_command_is_accepted_in_canonical_order():
    out = check_named_command(["joint_2.0", "panda_joint1"], [0.3, 0.1], [0.5, 50.0], LIMITS)
    assert out.accepted.sum() == 2 and not out.problems
    assert out.targets[0] == 0.1 and out.targets[JOINT_NAMES.index("joint_2.0")] == 0.3
    assert out.efforts[JOINT_NAMES.index("joint_2.0")] == 0.5
    assert out.efforts[0] == 50.0


def test_offending_joints_are_dropped_with_reasons():
    names = ["panda_joint1", "bogus", "panda_joint2", "panda_joint3", "joint_0.0"]
    out = check_named_command(names, [0.0, 0.0, float("nan"), 99.0, float("inf")], [], LIMITS)
    assert out.accepted.sum() == 1 and out.accepted[0]
    assert out.problems == {"unknown joint": 1, "non-finite position": 2, "position outside joint limits": 1}


def test_length_mismatch_rejects_the_whole_command():
    out = check_named_command(["panda_joint1", "panda_joint2"], [0.0], [], LIMITS)
    assert not out.any_accepted
    assert "position length differs from name length" in out.problems


def test_effort_is_clipped_to_hardware_and_invalid_effort_falls_back():
    out = check_named_command(["joint_1.0", "joint_2.0"], [0.1, 0.1], [5.0, -1.0], LIMITS)
    assert out.efforts[JOINT_NAMES.index("joint_1.0")] == 0.7
    assert out.efforts[JOINT_NAMES.index("joint_2.0")] == 0.7
    assert out.problems["invalid effort (hardware limit used)"] == 1


def test_array_command_needs_every_joint():
    assert not check_array_command([0.0] * 7, LIMITS).any_accepted
    home = robot_model().home()
    out = check_array_command(home.tolist(), LIMITS)
    assert out.accepted.all()
    np.testing.assert_allclose(out.targets, home)

