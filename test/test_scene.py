"""The MuJoCo world: objects, physical parameters, compliant actuators, the RGB-D camera."""

import numpy as np
import pytest

from drex_ros.core.robot.model import HAND_JOINTS, JOINT_NAMES, robot_model
from drex_ros.core.sim.scene import ObjectConfig, Scene, SceneConfig


@pytest.mark.parametrize("shape,size", [("box", (0.05, 0.07, 0.06)), ("cylinder", (0.03, 0.08)), ("sphere", (0.035,))])
def test_each_shape_rests_on_the_table(shape, size):
    scene = Scene(SceneConfig(object=ObjectConfig(shape=shape, size=size, mass=0.4)))
    start, _ = scene.object_pose()
    scene.step(500)
    pos, _ = scene.object_pose()
    assert np.linalg.norm(pos[:2] - start[:2]) < 1e-3
    assert pos[2] == pytest.approx(start[2], abs=2e-3)
    body = scene.model.body("object").id
    assert scene.model.body_mass[body] == pytest.approx(0.4)


def test_mass_change_scales_inertia():
    scene = Scene()
    body = scene.model.body("object").id
    inertia = scene.model.body_inertia[body].copy()
    scene.set_object_mass(0.9)
    assert scene.model.body_mass[body] == pytest.approx(0.9)
    np.testing.assert_allclose(scene.model.body_inertia[body], inertia * 3)


@pytest.mark.parametrize("bad", [dict(shape="cone"), dict(size=(0.05,)), dict(mass=-1.0), dict(friction=float("nan"))])
def test_bad_object_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        Scene(SceneConfig(object=ObjectConfig(**bad)))


def test_position_targets_are_tracked():
    scene = Scene()
    q = scene.joint_positions()
    target = q.copy()
    target[0] += 0.2
    target[JOINT_NAMES.index("joint_1.0")] += 0.5
    scene.set_targets(target)
    scene.step(1500)
    np.testing.assert_allclose(scene.joint_positions(), target, atol=0.02)


def test_hand_effort_is_limited_so_fingers_comply():
    scene = Scene()
    limits = robot_model().limits
    target = scene.joint_positions()
    target[JOINT_NAMES.index(HAND_JOINTS[1])] = limits.upper[JOINT_NAMES.index(HAND_JOINTS[1])]
    scene.set_targets(target)
    efforts = []
    for _ in range(200):
        scene.step(2)
        efforts.append(np.abs(scene.joint_efforts()[7:]).max())
    assert max(efforts) <= 0.7 + 1e-9
    scene.set_effort_limits(np.full(len(JOINT_NAMES), 0.2))
    scene.set_targets(scene.joint_positions() + 0.3)
    scene.step(5)
    assert np.abs(scene.joint_efforts()).max() <= 0.2 + 1e-9


def test_camera_sees_the_object_where_the_intrinsics_say():
    scene = Scene()
    rgb, depth = scene.render_rgb(), scene.render_depth()
    cam = scene.camera_model()
    assert rgb.shape == (cam.height, cam.width, 3) and rgb.dtype == np.uint8
    assert depth.shape == (cam.height, cam.width) and depth.dtype == np.float32
    pos, _ = scene.object_pose()
    top = pos + np.array([0, 0, 0.03])  # centre of the top face
    p_cam = cam.rotation.T @ (top - cam.position)
    u, v, _ = cam.K @ (p_cam / p_cam[2])
    assert 0 <= u < cam.width and 0 <= v < cam.height
    assert depth[int(round(v)), int(round(u))] == pytest.approx(p_cam[2], abs=5e-3)
    scene.close()
