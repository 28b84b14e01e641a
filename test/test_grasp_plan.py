"""The grasp plan: IK keyframes reach the planned palm poses, the reference is continuous, bad input is refused."""

import numpy as np
import pytest

from drex_ros.core.robot.grasp_plan import (
    PHASES,
    GraspGeometry,
    GraspPlanError,
    grasp_heading,
    object_yaw,
    plan_grasp,
)
from drex_ros.core.robot.model import N_ARM, robot_model


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def _full(q_arm: np.ndarray) -> np.ndarray:
    q = robot_model().home()
    q[:N_ARM] = q_arm
    return q


@pytest.mark.parametrize("shape,size,pos,yaw", [
    ("box", (0.06, 0.05, 0.06), (0.55, 0.0, 0.03), 0.3),
    ("cylinder", (0.025, 0.08), (0.48, -0.1, 0.04), 0.0),
    ("sphere", (0.03,), (0.62, 0.1, 0.03), 1.0),
])
def test_keyframes_put_the_palm_where_planned(shape, size, pos, yaw):
    rm = robot_model()
    plan = plan_grasp(np.array(pos), _yaw_quat(yaw), shape, size, rm.home())
    geo = plan.geometry
    palm = rm.palm_pose(_full(plan.q_grasp))
    assert np.allclose(palm.translation, plan.palm_grasp.translation, atol=1e-3)
    # Palm faces down, the fingers lie in the table plane.
    assert palm.rotation[:, 0] @ np.array([0, 0, -1.0]) > 0.999
    assert abs(palm.rotation[2, 2]) < 1e-2
    # The object centre sits at the planned grasp point in the palm frame.
    centre = palm.rotation.T @ (np.array(pos) - palm.translation)
    assert np.allclose(centre, [geo.grasp_depth, geo.lateral_offset, geo.centre_offset], atol=1e-3)
    lift = rm.palm_pose(_full(plan.q_lift)).translation - palm.translation
    assert np.allclose(lift, [0, 0, geo.lift_height], atol=1e-3)
    pre = rm.palm_pose(_full(plan.q_pregrasp)).translation - palm.translation
    assert np.allclose(pre, [0, 0, geo.pregrasp_height], atol=1e-3)
    lim = rm.limits
    for q in (plan.q_pregrasp, plan.q_grasp, plan.q_lift, plan.q_shake):
        assert np.all(q >= lim.lower[:N_ARM]) and np.all(q <= lim.upper[:N_ARM])


def test_reference_is_continuous_and_follows_the_phases():
    rm = robot_model()
    q0 = rm.home()
    plan = plan_grasp(np.array([0.55, 0.0, 0.03]), _yaw_quat(0.0), "box", (0.05, 0.05, 0.06), q0)
    ph = plan.phases()
    assert list(ph) == list(PHASES)
    assert plan.duration == pytest.approx(ph["hold"][1])
    ts = np.arange(0.0, plan.duration + 0.5, 0.002)
    ref = np.array([plan.arm_targets(t) for t in ts])
    assert np.allclose(ref[0], q0[:N_ARM])
    # No jumps anywhere (2 ms apart), in particular not at phase boundaries.
    assert np.max(np.abs(np.diff(ref, axis=0))) < 0.01
    assert np.allclose(plan.arm_targets(ph["descend"][0]), plan.q_pregrasp)
    for t in np.linspace(*ph["close"], 5):
        assert np.allclose(plan.arm_targets(t), plan.q_grasp)
    assert np.allclose(plan.arm_targets(ph["shake"][0]), plan.q_lift)
    assert np.allclose(plan.arm_targets(ph["hold"][0]), plan.q_lift, atol=1e-9)
    mid_shake = ref[(ts > ph["shake"][0]) & (ts < ph["shake"][1])]
    assert np.max(np.abs(mid_shake - plan.q_lift)) > 0.01  # the shake does move the arm
    assert plan.phase_at(ph["close"][0] + 0.1) == "close"
    # Deterministic: a second plan of the same input is identical.
    again = plan_grasp(np.array([0.55, 0.0, 0.03]), _yaw_quat(0.0), "box", (0.05, 0.05, 0.06), q0)
    assert np.array_equal(again.q_lift, plan.q_lift)


def test_box_heading_follows_a_face_and_round_objects_do_not_turn():
    for yaw in np.linspace(-np.pi, np.pi, 25):
        h = grasp_heading("box", yaw)
        assert abs(h - np.pi / 2) <= np.pi / 4 + 1e-9
        k = (h - yaw) / (np.pi / 2)
        assert abs(k - round(k)) < 1e-9  # a face normal of the box
        assert object_yaw(_yaw_quat(yaw)) == pytest.approx(np.arctan2(np.sin(yaw), np.cos(yaw)))
    assert grasp_heading("sphere", 1.0) == grasp_heading("cylinder", -2.0) == pytest.approx(np.pi / 2)


def test_bad_input_is_refused_with_a_reason():
    q0 = robot_model().home()
    with pytest.raises(GraspPlanError, match="unreachable"):
        plan_grasp(np.array([1.6, 0.0, 0.03]), _yaw_quat(0.0), "box", (0.05, 0.05, 0.05), q0)
    with pytest.raises(GraspPlanError, match="shape"):
        plan_grasp(np.array([0.55, 0.0, 0.03]), _yaw_quat(0.0), "cone", (0.05,), q0)
    with pytest.raises(GraspPlanError, match="finite"):
        plan_grasp(np.array([np.nan, 0.0, 0.03]), _yaw_quat(0.0), "box", (0.05, 0.05, 0.05), q0)
    with pytest.raises(GraspPlanError, match="q_start"):
        plan_grasp(np.array([0.55, 0.0, 0.03]), _yaw_quat(0.0), "box", (0.05, 0.05, 0.05), q0[:7])
    with pytest.raises(GraspPlanError):
        plan_grasp(np.array([0.55, 0.0, 0.03]), _yaw_quat(0.0), "box", (0.05, 0.05), q0)


def test_geometry_is_a_parameter():
    q0 = robot_model().home()
    geo = GraspGeometry(lift_height=0.12)
    plan = plan_grasp(np.array([0.55, 0.0, 0.03]), _yaw_quat(0.0), "sphere", (0.03,), q0, geometry=geo)
    rm = robot_model()
    dz = rm.palm_pose(_full(plan.q_lift)).translation[2] - rm.palm_pose(_full(plan.q_grasp)).translation[2]
    assert dz == pytest.approx(0.12, abs=1e-3)


def test_reference_stays_within_what_the_safety_node_passes():
    """safety.yaml lets joints move at 50% of their URDF velocity limit; the plan stays below that."""
    rm = robot_model()
    vmax = rm.limits.velocity[:N_ARM]
    for pos, yaw in (((0.48, -0.1, 0.03), 0.7), ((0.62, 0.1, 0.03), -0.7), ((0.55, 0.0, 0.03), 0.0)):
        plan = plan_grasp(np.array(pos), _yaw_quat(yaw), "box", (0.05, 0.05, 0.06), rm.home())
        ts = np.arange(0.0, plan.duration, 0.01)
        ref = np.array([plan.arm_targets(t) for t in ts])
        speed = np.abs(np.diff(ref, axis=0)) / 0.01
        assert np.all(speed < 0.5 * vmax), np.max(speed / vmax)
