"""The robot description: one URDF feeds pinocchio and MuJoCo identically."""

import mujoco
import numpy as np
import pinocchio as pin
import pytest

from drex_ros.core.robot.model import FINGERTIP_FRAMES, JOINT_NAMES, PALM_FRAME, robot_model
from drex_ros.core.sim.scene import Scene


@pytest.fixture(scope="module")
def scene():
    return Scene()


def test_mujoco_and_pinocchio_share_joint_names_order_and_limits(scene):
    model = scene.model
    mj_names = [model.joint(i).name for i in range(model.njnt) if model.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE]
    assert tuple(mj_names) == JOINT_NAMES
    limits = robot_model().limits
    mj_range = np.array([model.joint(n).range for n in JOINT_NAMES])
    np.testing.assert_allclose(mj_range[:, 0], limits.lower)
    np.testing.assert_allclose(mj_range[:, 1], limits.upper)
    mj_effort = np.array([model.actuator(n).forcerange[1] for n in JOINT_NAMES])
    np.testing.assert_allclose(mj_effort, limits.effort)
    assert np.all(limits.effort[7:] == pytest.approx(0.7))


def test_palm_and_fingertips_agree_within_1mm_for_100_configurations(scene):
    robot = robot_model()
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(100):
        q = robot.random_configuration(rng)
        scene.reset(q)
        frames = robot.frame_positions(q)
        mj = {"palm": scene.frame_position(PALM_FRAME)}
        mj.update({f: scene.frame_position(body) for f, body in FINGERTIP_FRAMES.items()})
        for key, pos in frames.items():
            worst = max(worst, float(np.linalg.norm(pos - mj[key])))
    assert worst < 1e-3, f"largest palm/fingertip disagreement {worst * 1000:.3f} mm"


def test_palm_ik_reaches_a_reachable_pose_and_reports_an_unreachable_one():
    robot = robot_model()
    q0 = robot.home()
    start = robot.palm_pose(q0)
    target = pin.SE3(start.rotation, start.translation + np.array([0.08, -0.05, -0.12]))
    result = robot.solve_palm_ik(target, q0)
    assert result.success
    reached = robot.palm_pose(result.q)
    assert np.linalg.norm(reached.translation - target.translation) < 1e-3
    assert np.all(result.q >= robot.limits.lower) and np.all(result.q <= robot.limits.upper)
    far = pin.SE3(start.rotation, np.array([3.0, 0.0, 0.5]))
    assert not robot.solve_palm_ik(far, q0).success


def test_fk_rejects_a_wrong_sized_configuration():
    with pytest.raises(ValueError, match="23 joint positions"):
        robot_model().palm_pose(np.zeros(7))
