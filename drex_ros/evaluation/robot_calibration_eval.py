"""Robot calibration against planted realities: an excitation recorded in-process in a simulated
cell (core/sim/reality.py) that differs from drex's model, calibrated, and compared with what the
cell put into the efforts. Used by `drex bench calibration` and by `drex bench massid --reality
perturbed`, which calibrates each cell before identifying in it.

In-process, not through the node chain (scene_recording.py): the commands go straight to the
simulated drivers at 250 Hz, joint states are recorded at 500 Hz. The calibration reads the arm's
states and efforts only, which the chain does not change; `drex excite` runs it through the chain.
"""

from __future__ import annotations

import numpy as np

from drex_ros.core.massid.excitation import ExcitationConfig, plan_excitation
from drex_ros.core.massid.robot_calibration import RobotCalibration, calibrate
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.sim.reality import Reality
from drex_ros.core.sim.scene import ObjectConfig, Scene, SceneConfig
from drex_ros.evaluation.scene_recording import record_in_scene


def record_excitation(reality: Reality | None, cfg: ExcitationConfig | None = None) -> tuple[Recording, tuple]:
    """The excitation streamed into a scene in `reality` (None: the exact model); the recording and
    the excitation's span (s)."""
    scene = Scene(SceneConfig(object=ObjectConfig(position=(0.55, 0.0)), reality=reality))
    plan = plan_excitation(scene.joint_positions(), 250.0, cfg)
    rec = record_in_scene(scene, "box", (0.06, 0.06, 0.06), plan.times, plan.commands)
    return rec, (plan.push_start, plan.push_end)


def planted(reality: Reality) -> dict[str, np.ndarray]:
    """What the cell puts into the reported arm efforts beyond the model, per joint: the sensor
    offsets, and the joint friction the sensor sees (all of it motor-side, the cell's share
    link-side)."""
    share = reality.link_friction_share if reality.friction_side == "link_side" else 1.0
    return {"offset": np.asarray(reality.effort_offset), "coulomb": share * np.asarray(reality.joint_frictionloss),
            "viscous": share * np.asarray(reality.joint_damping)}


def compare(cal: RobotCalibration, reality: Reality) -> dict[str, dict[str, list]]:
    """Per parameter and joint: planted, estimated, std, and whether 2 std cover the planted value."""
    out = {}
    for name, truth in planted(reality).items():
        est, sd = getattr(cal, name), cal.std[name]
        covered = np.isfinite(est) & (np.abs(est - truth) <= 2 * sd)
        out[name] = {"planted": truth.tolist(), "estimated": est.tolist(), "std": sd.tolist(),
                     "covered": covered.tolist()}
    return out


def calibrate_in(reality: Reality | None) -> RobotCalibration:
    rec, span = record_excitation(reality)
    return calibrate(rec, span)
