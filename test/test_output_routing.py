"""Profiles, joint maps, per-group routing, state merging and the driver personalities' rules
(core only, no ROS)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from drex_ros.core.control.grip_servo import GripServo
from drex_ros.core.control.output_routing import OutputRouter
from drex_ros.core.control.state_merge import StateMerger
from drex_ros.core.paths import config_dir
from drex_ros.core.robot.gravity import GravityModel
from drex_ros.core.robot.joint_map import JointMapError, build_joint_map
from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.core.robot.profile import load_profile, profile_folder, tightened_limits
from drex_ros.core.sim import personalities as P

ROBOTS = ("fr3_allegro", "panda_allegro_legacy")


def profile(name: str):
    return load_profile(profile_folder(name), JOINT_NAMES)


def test_sim_profile_has_no_driver_groups():
    assert not profile("sim").uses_drivers


@pytest.mark.parametrize("name", ROBOTS)
def test_profile_agrees_with_its_driver_personality(name):
    """The profile (what the stack believes) and the personality (the driver's facts) agree."""
    prof = profile(name)
    sim = yaml.safe_load((profile_folder(name) / "profile.yaml").read_text())["simulation"]
    for group in ("arm", "hand"):
        g, facts = prof.groups[group], P.DRIVERS[sim[group]]
        assert g.map.driver_names == facts.names and g.map.urdf_names == facts.physical
        assert (g.command_topic, g.command_type, g.state_topic) == (facts.command_topic, facts.command_type,
                                                                     facts.state_topic)
        assert g.effort == facts.effort


def test_wonik_thumb_first_order():
    hand = profile("fr3_allegro").groups["hand"]
    assert hand.map.driver_names[:4] == ("ah_joint00", "ah_joint01", "ah_joint02", "ah_joint03")
    assert hand.map.urdf_names[:4] == ("joint_12.0", "joint_13.0", "joint_14.0", "joint_15.0")


def test_joint_map_refuses_gaps_twice_and_unknown():
    arm = [[f"a{i}", n] for i, n in enumerate(JOINT_NAMES[:7])]
    hand = [[f"h{i}", n] for i, n in enumerate(JOINT_NAMES[7:])]
    assert len(build_joint_map({"arm": arm, "hand": hand}, JOINT_NAMES)["hand"]) == 16
    with pytest.raises(JointMapError, match="does not cover URDF joint.*joint_15.0"):
        build_joint_map({"arm": arm, "hand": hand[:-1]}, JOINT_NAMES)
    with pytest.raises(JointMapError, match="URDF joint 'joint_0.0' more than once"):
        build_joint_map({"arm": arm, "hand": hand[:-1] + [["h15", "joint_0.0"]]}, JOINT_NAMES)
    with pytest.raises(JointMapError, match="driver joint 'h3' more than once"):
        build_joint_map({"arm": arm, "hand": hand[:4] + [["h3", n] for n in JOINT_NAMES[11:12]] + hand[5:]},
                        JOINT_NAMES)
    with pytest.raises(JointMapError, match="'joint_99.0', which the URDF does not have"):
        build_joint_map({"arm": arm, "hand": hand + [["h16", "joint_99.0"]]}, JOINT_NAMES)


def test_fr3_limits_tighten_the_panda_urdf_never_widen():
    urdf = robot_model().limits
    tight = tightened_limits(urdf, profile("fr3_allegro"))
    j6 = JOINT_NAMES.index("panda_joint6")
    assert tight.lower[j6] == pytest.approx(0.5445) and tight.upper[j6] == pytest.approx(urdf.upper[j6])
    assert (tight.lower >= urdf.lower).all() and (tight.upper <= urdf.upper).all()
    assert (tight.velocity <= urdf.velocity).all()


def test_routing_orders_by_name_and_builds_trajectory_velocities():
    router = OutputRouter(profile("fr3_allegro"))
    q = np.arange(23, dtype=float) * 0.01
    e = np.full(23, np.nan)
    v = np.arange(23, dtype=float) * 0.1
    arm, hand = router.route(q, v, e, np.full(23, np.nan))
    assert arm.kind == "joint_trajectory" and arm.names[0] == "fr3_joint1"
    j1 = JOINT_NAMES.index("panda_joint1")
    assert arm.velocities[0] == pytest.approx(v[j1]) and len(arm.velocities) == 7  # the gate's own velocity
    assert arm.time_from_start == pytest.approx(0.1)
    thumb0 = JOINT_NAMES.index("joint_12.0")
    assert hand.kind == "float64_array" and hand.positions[0] == pytest.approx(q[thumb0]) and hand.velocities is None


def test_grip_offset_limits_the_driver_pd_torque_to_the_grip_effort():
    kp, cap = np.array([1.0, 1.0]), np.array([0.3, 0.3])
    q = GripServo(kp, cap).command(np.array([1.0, 0.5]), np.array([0.2, 0.6]), np.array([0.0, 0.45]))
    assert q == pytest.approx([0.2, 0.5])  # 0.2 N*m / 1 N*m/rad; the second is within reach
    assert kp[0] * (q[0] - 0.0) == pytest.approx(0.2)
    assert GripServo(kp[:1], cap[:1]).command(np.array([1.0]), np.array([np.nan]), np.array([0.0])) == \
        pytest.approx([1.0])


def test_grip_servo_widens_the_offset_by_the_torque_the_driver_misses_and_no_further():
    servo = GripServo(np.array([0.5]), np.array([1.0]))
    target, tau, q = np.array([1.0]), np.array([0.2]), np.array([0.0])
    assert servo.command(target, tau, q, np.array([0.2])) == pytest.approx([0.4])  # delivered: open loop
    steps = [servo.command(target, tau, q, np.array([0.05]))[0] for _ in range(20)]  # a finger still moving
    assert steps[0] == pytest.approx(0.4 + 0.5 * 0.15 / 0.5) and steps[-1] == pytest.approx(0.8)  # bound: 2x
    assert servo.command(target, tau, q, np.array([0.5]))[0] < 0.8  # too much torque gives back
    assert servo.command(target, np.array([np.nan]), q, np.array([0.0])) == pytest.approx([1.0])
    assert servo.extra == pytest.approx([0.0])  # no grip effort: the correction starts over


def _merger(name: str) -> StateMerger:
    return StateMerger(profile(name), len(JOINT_NAMES), GravityModel().torques)


def test_merger_converts_tau_j_and_stops_on_a_stale_hand():
    m, prof = _merger("panda_allegro_legacy"), profile("panda_allegro_legacy")
    arm, hand = prof.groups["arm"], prof.groups["hand"]
    q = robot_model().home()
    g = GravityModel().torques(q)
    assert m.merged(0.0) is None and "nothing received on /allegroHand_0/joint_states" in " ".join(m.stale(0.0))
    m.on_message(hand.state_topic, hand.map.driver_names, q[7:], np.zeros(16), np.full(16, 0.1), 0.0, 0.0)
    m.on_message(arm.state_topic, arm.map.driver_names, q[:7], np.zeros(7), g[:7] + 1.0, 0.0, 0.01)
    merged = m.merged(0.02)
    assert np.allclose(merged.effort[:7], 1.0) and np.allclose(merged.effort[7:], 0.1)
    assert np.allclose(merged.position, q)
    m.on_message(arm.state_topic, arm.map.driver_names, q[:7], np.zeros(7), g[:7], 0.0, 0.2)
    assert m.merged(0.2) is None
    assert m.stale(0.2) == ["hand state stale: /allegroHand_0/joint_states silent for 0.200 s (timeout 0.1 s)"]


def test_merger_reads_a_shared_topic_by_name():
    m, prof = _merger("fr3_allegro"), profile("fr3_allegro")
    hand = prof.groups["hand"]
    assert m.on_message("/joint_states", ["fr3_joint1"], [0.0], [], [], 0.0, 0.0) == []
    names = list(reversed(hand.map.driver_names))
    values = np.arange(16.0) * 0.01
    assert m.on_message("/joint_states", names, values, [], [], 0.0, 0.0) == ["hand"]
    assert m._latest["hand"].position[0] == pytest.approx(values[-1])  # ah_joint00 was last


def test_trajectory_controller_rules():
    fr3 = P.DRIVERS["franka_fr3"]
    q = [0.0] * 7
    ok = P.TrajectoryPoint(q, q, [], 0.1)
    assert P.check_trajectory(fr3, fr3.names, [ok], 0.0, 5.0).shape == (2, 7)
    with pytest.raises(P.Rejected, match="effort"):
        P.check_trajectory(fr3, fr3.names, [P.TrajectoryPoint(q, q, q, 0.1)], 0.0, 5.0)
    with pytest.raises(P.Rejected, match="panda_joint1 doesn't match"):
        P.check_trajectory(fr3, ("panda_joint1",) + fr3.names[1:], [ok], 0.0, 5.0)
    with pytest.raises(P.Rejected, match="ends in the past"):
        P.check_trajectory(fr3, fr3.names, [ok], 4.8, 5.0)


def test_franka_reflex_aborts_on_a_step_not_on_smooth_motion():
    reflex = P.FrankaReflex(P.DRIVERS["franka_fr3"])
    t = np.arange(0, 1, 0.02)
    q = 0.3 * (1 - np.cos(np.pi * t))[:, None] * np.ones(7)
    v = 0.3 * np.pi * np.sin(np.pi * t)[:, None] * np.ones(7)
    assert all(reflex.check(q[k], v[k], t[k], 0.1) for k in range(len(t)))
    assert not reflex.check(q[-1] + 0.1, v[-1], 1.0, 0.1) and "discontinuity: fr3_joint1" in reflex.error
    assert not reflex.check(q[-1], v[-1], 1.02)  # latched until recovery
    reflex.recover()
    assert reflex.check(q[-1], v[-1], 1.04)


def test_franka_reflex_plays_the_jtc_a_stream_that_stops_or_comes_late_is_no_step():
    """The JTC reaches each point time_from_start after it came and holds it: a gate that fell
    silent while moving and restarts at rest at its last point asks for no jump; a point 20 ms
    late at 0.6 rad/s is arrival jitter, not a discontinuity."""
    t = np.arange(0, 0.6, 0.02)
    v = np.minimum(3.0 * t, 0.6)  # up to 0.6 rad/s at 3 rad/s^2
    q = np.where(t < 0.2, 1.5 * t**2, 0.06 + 0.6 * (t - 0.2))
    reflex, late = P.FrankaReflex(P.DRIVERS["franka_panda"]), P.FrankaReflex(P.DRIVERS["franka_panda"])
    for k in range(len(t)):
        assert reflex.check(np.full(7, q[k]), np.full(7, v[k]), t[k], 0.1), reflex.error
        assert late.check(np.full(7, q[k]), np.full(7, v[k]), t[k] + (0.02 if k == len(t) - 1 else 0), 0.1)
    assert reflex.check(np.full(7, q[-1]), np.zeros(7), t[-1] + 0.128, 0.1), reflex.error  # silent, then at rest
    assert not reflex.check(np.full(7, q[-1] + 0.1), np.zeros(7), t[-1] + 0.15, 0.1)  # a 0.1 rad step is not


def test_hands_read_by_position_and_size():
    legacy, wonik = P.DRIVERS["legacy_allegro"], P.DRIVERS["wonik_allegro"]
    values = np.arange(16.0)
    assert P.legacy_joint_cmd(legacy, ["whatever"] * 16, values, []) == pytest.approx(values)
    with pytest.raises(P.Rejected, match="torque command"):
        P.legacy_joint_cmd(legacy, [], [], values)
    with pytest.raises(P.Rejected, match="command size \\(15\\)"):
        P.forward_command(wonik, values[:15])


def test_hand_personality_plays_the_driver_pd_on_the_sim_pd():
    wonik = P.DRIVERS["wonik_allegro"]
    q, q_cmd, sim_kp = np.zeros(16), np.full(16, 0.1), np.full(16, 3.0)
    target = P.hand_sim_target(wonik, q_cmd, q, sim_kp)
    assert sim_kp * (target - q) == pytest.approx(np.asarray(wonik.kp) * 0.1)


def test_shipped_profiles_exist_in_config():
    assert {p.name for p in (config_dir() / "robots").iterdir()} >= {"sim", *ROBOTS}
