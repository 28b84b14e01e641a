"""Robot calibration: the excitation is safe, and the fit recovers what a planted cell puts into
the arm's efforts (offsets, joint friction) within its reported std, reads an exact arm as exact,
and says "unidentifiable" for a joint the motion does not move. Recorded in-process in the real
MuJoCo scene (evaluation/robot_calibration_eval.py)."""

import dataclasses

import numpy as np
import pytest

from drex_ros.cli import main as drex_main
from drex_ros.core.massid.excitation import ExcitationConfig, plan_excitation
from drex_ros.core.massid.push_probe import ProbePlanError
from drex_ros.core.massid.recording import write_recording
from drex_ros.core.massid.robot_calibration import RobotCalibration, calibrate
from drex_ros.core.robot.model import N_ARM, robot_model
from drex_ros.core.sim.reality import GAZ_COULOMB, Reality
from drex_ros.evaluation.robot_calibration_eval import compare, planted, record_excitation

PLANTED = Reality(effort_offset=(0.1, 0.3, -0.2, 0.25, -0.1, -0.1, 0.05), effort_noise=(0.02,) * 7,
                  friction_side="link_side", link_friction_share=0.12, joint_frictionloss=GAZ_COULOMB,
                  joint_damping=(0.1,) * 7, link_mass_scale=(1.0, 1.03, 0.98, 1.04, 1.0, 0.97, 1.0),
                  hand_mass_scale=1.04, seed=3)


def test_the_excitation_stays_inside_limits_speeds_and_above_the_table():
    rm = robot_model()
    cfg = ExcitationConfig()
    plan = plan_excitation(rm.home(), 250.0, cfg)
    arm = plan.commands[:, :N_ARM]
    assert np.all(arm >= rm.limits.lower[:N_ARM] + cfg.limit_margin - 1e-9)
    assert np.all(arm <= rm.limits.upper[:N_ARM] - cfg.limit_margin + 1e-9)
    assert np.all(np.abs(np.diff(arm, axis=0)).max(axis=0) * 250 <= cfg.speed_share * rm.limits.velocity[:N_ARM])
    lowest = min(min(p[2] for p in rm.frame_positions(q).values()) for q in plan.commands[::25])
    assert lowest >= cfg.min_height
    assert np.ptp(arm, axis=0).min() > 0.15  # every joint swings (rad)
    assert np.allclose(plan.commands[:, N_ARM:], rm.home()[N_ARM:])  # the hand stays as it was
    with pytest.raises(ProbePlanError, match="no safe excitation"):
        plan_excitation(rm.home(), 250.0, dataclasses.replace(cfg, min_height=0.6))


@pytest.fixture(scope="module")
def planted_fit():
    rec, span = record_excitation(PLANTED)
    return rec, calibrate(rec, span)


def test_planted_offsets_and_friction_are_recovered_within_two_std(planted_fit):
    _, cal = planted_fit
    result = compare(cal, PLANTED)
    for name, truth in planted(PLANTED).items():
        assert sum(result[name]["covered"]) >= 6, (name, truth, result[name])  # of 7 joints
    # Friction separates cleanly; an offset less so where the link inertials' gravity error looks
    # alike over the swing (the shoulder): there its std says so.
    for name in ("coulomb", "viscous"):
        assert np.max(np.abs(getattr(cal, name) - planted(PLANTED)[name])) < 0.02  # N*m, N*m*s/rad
    assert all(cal.excited) and not cal.notes


def test_an_exact_arm_calibrates_to_nothing():
    rec, span = record_excitation(None)
    cal = calibrate(rec, span)
    for name in ("offset", "coulomb", "viscous"):
        assert np.max(np.abs(getattr(cal, name))) < 0.005, (name, getattr(cal, name))


def test_a_joint_the_motion_does_not_move_is_unidentifiable():
    cfg = ExcitationConfig(amplitude=(0.35, 0.25, 0.35, 0.30, 0.45, 0.35, 0.0), duration=20.0)
    rec, span = record_excitation(PLANTED, cfg)
    cal = calibrate(rec, span)
    assert not cal.excited[6] and np.isnan(cal.offset[6]) and np.isnan(cal.std["coulomb"][6])
    assert any("joint 7" in n and "unidentifiable" in n for n in cal.notes)
    assert cal.to_dict()["per_joint"]["offset"][6] is None


def test_drex_calibrate_robot_writes_a_calibration_that_loads(planted_fit, tmp_path, capsys):
    rec, _ = planted_fit
    bag = tmp_path / "excite"
    write_recording(bag, rec)
    out = tmp_path / "robot_calibration.yaml"
    assert drex_main(["calibrate-robot", str(bag), "--out", str(out)]) == 0
    assert "written to" in capsys.readouterr().out
    loaded = RobotCalibration.load(out)
    np.testing.assert_allclose(loaded.coulomb, planted_fit[1].coulomb, atol=1e-3)  # same fit, the whole bag
    (tmp_path / "bad.yaml").write_text("per_joint: 3\n")
    with pytest.raises(ValueError, match="not a robot calibration"):
        RobotCalibration.load(tmp_path / "bad.yaml")
    assert drex_main(["calibrate-robot", str(tmp_path / "nothing")]) == 2
