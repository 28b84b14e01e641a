"""The weighing probe: planned, executed in the real MuJoCo scene, weighed; and when it is run.

Recorded in-process like test_massid's pushes: commands at 250 Hz, joint states at 500 Hz,
object poses at 30 Hz with 2 mm / 1 deg noise, 10% dropped frames and 40 ms of clock offset.
"""

import json

import numpy as np
import pytest
from test_massid import lose_joint_states, run_recorded

from drex_ros.cli import main as drex_main
from drex_ros.core.massid.identify import identify
from drex_ros.core.massid.push_probe import ProbePlanError
from drex_ros.core.massid.recording import write_recording
from drex_ros.core.massid.tare import sweep_after, tare_spans, tared_load, tared_sweep_load
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassEstimate, MassIdConfig, PushWindow, RecordingError
from drex_ros.core.massid.weigh import lifted_span, weigh, weighing_reason, with_push_friction
from drex_ros.core.massid.weigh_probe import WeighTiming, plan_weigh_probe
from drex_ros.core.robot.model import GRAVITY
from drex_ros.core.sim.reality import GAZ_COULOMB, Reality, draw
from drex_ros.core.sim.scene import ObjectConfig, Scene, SceneConfig


def record_weigh(mass: float, shape: str = "sphere", size=(0.03,), position=(0.55, 0.0), yaw: float = 0.0,
                 seed: int = 0, reality: Reality | None = None, empty: bool = False):
    rng = np.random.default_rng(seed)
    scene = Scene(SceneConfig(object=ObjectConfig(shape=shape, size=size, mass=mass, friction=0.7,
                                                  position=position, yaw=yaw), reality=reality))
    p0, q0 = scene.object_pose()
    plan = plan_weigh_probe(scene.joint_positions(), p0, yaw, shape, size)
    if empty:  # the object is elsewhere: the hand closes on air
        scene.set_object_pose(np.array([0.2, -0.5, p0[2]]), q0)
    rec = run_recorded(scene, shape, size, plan.times, plan.commands, rng)
    return rec, p0, scene.object_pose()[0]


def _hold(rec: Recording) -> tuple[float, float]:
    """The planned still hold of record_weigh's probe (the default plan from the home pose)."""
    plan = plan_weigh_probe(rec.joint_q[0], np.array([0.55, 0.0, 0.03]), 0.0, "sphere", (0.03,))
    return plan.push_start, plan.push_start + WeighTiming().hold  # still; the sweep follows


@pytest.mark.parametrize(("mass", "shape", "size"), [(0.1, "sphere", (0.03,)), (1.4, "sphere", (0.03,)),
                                                     (0.06, "box", (0.065, 0.05, 0.045))])
def test_an_object_is_weighed_and_put_back(mass, shape, size):
    rec, start, end = record_weigh(mass, shape, size, yaw=0.2 if shape == "box" else 0.0)
    est = identify(rec, MassIdConfig())  # a lift in the recording: identify weighs it
    assert est.method == "weigh" and est.identifiable, est.reason
    assert est.mass == pytest.approx(mass, rel=0.02)
    assert 0 < est.std < 0.03 * mass
    assert est.friction is None  # a held object shows no friction
    if shape != "sphere":  # a sphere rolls on once let go (weigh_probe.py): only weighed on request
        assert np.linalg.norm(end[:2] - start[:2]) < 0.03 and abs(end[2] - start[2]) < 0.005  # back on the table


def _push_estimate(mass, std, identifiable=True, direct=float("nan"), reason="ok") -> MassEstimate:
    return MassEstimate(identifiable, mass if identifiable else None, std if identifiable else None, 0.5, 0.01, 1.0,
                        reason, 0.0, 0.0, PushWindow(0.0, 0.0, 1.0, np.zeros(2), 0.0, np.array([1.0, 0, 0])),
                        np.array([]), np.array([]), np.zeros(2), 10, 1.0, direct_mass=direct)


def test_weighing_follows_a_push_that_did_not_pin_a_light_object_down():
    cfg = MassIdConfig(weigh_above_rel_std=0.02, weigh_max_mass=0.75)
    assert weighing_reason(_push_estimate(0.3, 0.003), cfg) == ""  # 1%: the push stands
    assert "+/- 3.3%" in weighing_reason(_push_estimate(0.3, 0.01), cfg)
    assert weighing_reason(_push_estimate(1.0, 0.05), cfg) == ""  # too heavy for the full grip
    assert "no number (flat loss)" in weighing_reason(_push_estimate(0.1, 0, False, 0.12, "flat loss"), cfg)
    assert weighing_reason(_push_estimate(0.1, 0, False, 1.2, "flat loss"), cfg) == ""
    assert weighing_reason(None, cfg) == ""  # no push at all (a sphere): weighed only on request
    assert "refused (joint states were lost)" in weighing_reason(None, cfg, "joint states were lost")
    weighed = _push_estimate(0.3, 0.003)
    assert with_push_friction(weighed, _push_estimate(0.1, 0, False, 0.12, "flat loss"), cfg).friction is None
    assert with_push_friction(weighed, None, cfg).friction is None
    # an identified push's mu * m (best_x = log(m), log(mu m) = 0: 1 kg) over the weighed 0.3 kg, within bounds
    assert with_push_friction(weighed, _push_estimate(0.3, 0.01), cfg).friction == cfg.friction_bounds[1]


def test_a_lift_that_never_holds_still_is_refused_and_a_still_arm_is_not_a_lift():
    rec, _, _ = record_weigh(0.5)
    moving = Recording(rec.shape, rec.size, rec.joint_t, rec.joint_q, rec.joint_v + 0.05, rec.joint_effort, rec.cmd_t,
                       rec.cmd_q, rec.pose_t, rec.pose_p, rec.pose_q)
    with pytest.raises(RecordingError, match="never held the object up and still"):
        weigh(moving)
    still = Recording(rec.shape, rec.size, rec.joint_t, np.tile(rec.joint_q[0], (len(rec.joint_t), 1)), rec.joint_v,
                      rec.joint_effort, rec.cmd_t, rec.cmd_q, rec.pose_t, rec.pose_p, rec.pose_q)
    with pytest.raises(RecordingError, match="never held the object up and still"):
        weigh(still)


def test_a_lift_the_camera_never_saw_is_weighed_from_the_arm_alone():
    """In the demo the hand hid the lifted box from the camera for the whole lift and hold."""
    rec, _, _ = record_weigh(0.35, "box", (0.05, 0.05, 0.05))
    seen = rec.pose_p[:, 2] < 0.035  # only the frames with the box on the table
    hidden = Recording(rec.shape, rec.size, rec.joint_t, rec.joint_q, rec.joint_v, rec.joint_effort, rec.cmd_t,
                       rec.cmd_q, rec.pose_t[seen], rec.pose_p[seen], rec.pose_q[seen])
    est = identify(hidden, MassIdConfig())
    assert est.method == "weigh" and est.mass == pytest.approx(0.35, rel=0.02)


def test_an_object_out_of_reach_cannot_be_weighed():
    scene = Scene(SceneConfig(object=ObjectConfig(shape="sphere", size=(0.03,), mass=0.3, position=(0.55, 0.0))))
    with pytest.raises(ProbePlanError, match="no weighing grasp"):
        plan_weigh_probe(scene.joint_positions(), np.array([1.6, 0.0, 0.03]), 0.0, "sphere", (0.03,))


def test_drex_identify_weighs_a_lift_bag_and_plots_it(tmp_path, capsys):
    rec, _, _ = record_weigh(0.3, "box", (0.05, 0.06, 0.05))
    bag = tmp_path / "weigh"
    write_recording(bag, rec)
    png = tmp_path / "weigh.png"
    rc = drex_main(["identify", str(bag), "--shape", "box", "--size", "0.05", "0.06", "0.05", "--plot", str(png),
                    "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["method"] == "weigh" and out["identifiable"]
    assert out["mass"] == pytest.approx(0.3, rel=0.02) and out["friction"] is None
    assert png.stat().st_size > 20_000


OFFSETS = Reality(effort_offset=(0.1, 0.3, -0.2, 0.25, 0.0, -0.1, 0.05))
HAND_AND_OFFSETS = Reality(effort_offset=OFFSETS.effort_offset, hand_mass_scale=1.05,
                           link_mass_scale=(1.0, 0.97, 1.0, 1.04, 1.0, 1.03, 1.0), effort_noise=(0.02,) * 7, seed=4)


def test_the_tare_cancels_constant_effort_offsets():
    """Offsets change only what the drivers report, not the motion: tared, the reading is the same."""
    exact, _, _ = record_weigh(0.3, "box", (0.05, 0.05, 0.05))
    offset, _, _ = record_weigh(0.3, "box", (0.05, 0.05, 0.05), reality=OFFSETS)
    cfg = MassIdConfig()
    a, b = identify(exact, cfg), identify(offset, cfg)
    tares = tare_spans(offset, _hold(offset), cfg)
    assert len(tares) == 2  # before the grasp, after the set-down
    assert all(sweep_after(offset, s, cfg) is not None for s in [*tares, _hold(offset)])  # each stop is swept
    assert b.identifiable and b.mass == pytest.approx(a.mass, abs=1e-4)  # 0.1 g
    untared = tared_load(offset, _hold(offset), MassIdConfig(tare_max_joint_offset=0.0)).load / GRAVITY
    assert abs(untared - a.mass) > 0.03  # what the offsets did without the tare


def test_an_empty_hand_weighs_zero_within_its_std_and_gives_no_number():
    rec, _, _ = record_weigh(0.3, "box", (0.05, 0.05, 0.05), reality=HAND_AND_OFFSETS, empty=True)
    for tared in (tared_sweep_load(rec, _hold(rec), MassIdConfig()), tared_load(rec, _hold(rec), MassIdConfig())):
        assert abs(tared.load) < 2 * tared.std and tared.std < 0.05  # N: 5 g
    with pytest.raises(RecordingError, match="never held the object up"):
        weigh(rec, MassIdConfig())
    with pytest.raises(RecordingError, match="never held the object up"):  # a dropped object reads so too,
        identify(rec, MassIdConfig(), weighing=True)  # not as a push that "shows no push force"
    est = weigh(rec, MassIdConfig(), span=_hold(rec))
    assert not est.identifiable and "did not hold the object" in est.reason


def test_a_light_box_in_a_perturbed_cell_is_weighed_within_its_std():
    """The arm and hand heavier or lighter than modelled, offsets and noise: the tare takes them out."""
    rec, _, _ = record_weigh(0.08, "box", (0.05, 0.05, 0.05), reality=HAND_AND_OFFSETS)
    est = identify(rec, MassIdConfig())
    assert est.identifiable and abs(est.mass - 0.08) < 2 * est.std and est.std < 0.05 * 0.08, est.summary()


def test_a_weighing_whose_recorder_lost_joint_states_in_short_gaps_is_weighed_and_a_long_gap_refused():
    rec, _, _ = record_weigh(0.08, "box", (0.05, 0.05, 0.05), reality=HAND_AND_OFFSETS)
    cfg = MassIdConfig()
    gappy = identify(lose_joint_states(rec, 0.09, 0.4, np.random.default_rng(1)), cfg)
    assert gappy.identifiable and abs(gappy.mass - 0.08) < 2 * gappy.std, gappy.summary()
    weighed_from = lifted_span(rec, cfg)[0] + cfg.settle  # the still hold weigh() reads
    torn = lose_joint_states(rec, 1.5 * cfg.max_joint_gap, 0.0, np.random.default_rng(0), at=weighed_from + 0.2)
    with pytest.raises(RecordingError, match="joint states were lost during the hold"):
        identify(torn, cfg)
    sweep = sweep_after(rec, lifted_span(rec, cfg), cfg)  # the loaded sweep the weight is read in
    torn = lose_joint_states(rec, 1.5 * cfg.max_joint_gap, 0.0, np.random.default_rng(0), at=sweep[0] + 0.5)
    with pytest.raises(RecordingError, match="joint states were lost during a sweep"):
        identify(torn, cfg)


def test_friction_a_link_side_sensor_sees_cancels_in_the_sweeps():
    """Gaz et al.'s Coulomb friction, 15 % of it in the efforts: moving, it is the same in the loaded
    and the empty sweeps; still, it would be stuck wherever each stop came to rest."""
    cell = Reality(friction_side="link_side", link_friction_share=0.15, joint_frictionloss=GAZ_COULOMB,
                   joint_damping=(0.1,) * 7, effort_offset=OFFSETS.effort_offset)
    rec, _, _ = record_weigh(0.08, "box", (0.05, 0.05, 0.05), reality=cell)
    swept = tared_sweep_load(rec, _hold(rec), MassIdConfig())
    assert swept is not None and abs(swept.load / GRAVITY - 0.08) < 0.01 * 0.08 + 2 * swept.std / GRAVITY
    est = identify(rec, MassIdConfig())
    assert est.identifiable and est.mass == pytest.approx(0.08, rel=0.02), est.summary()


@pytest.mark.parametrize("seed", [1, 2])
def test_drawn_realities_weigh_within_two_std_or_give_no_number(seed):
    rec, _, _ = record_weigh(0.2, "cylinder", (0.03, 0.07), reality=draw(np.random.default_rng(seed)))
    est = identify(rec, MassIdConfig())
    if est.identifiable:
        assert abs(est.mass - 0.2) < 2 * est.std, est.summary()
