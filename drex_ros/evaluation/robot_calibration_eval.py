"""Robot calibration against planted realities: an excitation recorded in-process in a simulated
cell (core/sim/reality.py) that differs from drex's model, calibrated, and compared with what the
cell put into the efforts. Used by `drex bench calibration` and by `drex bench massid --reality
perturbed`, which calibrates each cell before identifying in it.

In-process, not through the node chain: the commands go straight to the simulated drivers at
250 Hz, joint states are recorded at 500 Hz, as test_massid records its probes. The calibration
reads the arm's states and efforts only, which the chain does not change.
"""

from __future__ import annotations

import numpy as np

from drex_ros.core.massid.excitation import ExcitationConfig, plan_excitation
from drex_ros.core.massid.robot_calibration import RobotCalibration, calibrate
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.sim.reality import Reality
from drex_ros.core.sim.scene import ObjectConfig, Scene, SceneConfig

STATE_PERIOD = 0.002  # s: joint states at 500 Hz, as the stack's drivers publish them


def record_excitation(reality: Reality | None, cfg: ExcitationConfig | None = None) -> tuple[Recording, tuple]:
    """The excitation streamed into a scene in `reality` (None: the exact model); the recording and
    the excitation's span (s)."""
    scene = Scene(SceneConfig(object=ObjectConfig(position=(0.55, 0.0)), reality=reality))
    plan = plan_excitation(scene.joint_positions(), 250.0, cfg)
    per_sample = max(1, round(STATE_PERIOD / scene.timestep))
    jt, jq, jv, je = [], [], [], []
    for q in plan.commands:
        scene.set_targets(q)
        for _ in range(2):
            scene.step(per_sample)
            jt.append(scene.time)
            jq.append(scene.joint_positions())
            jv.append(scene.joint_velocities())
            je.append(scene.joint_efforts())
    empty = np.zeros((0, 3))
    rec = Recording("box", (0.06, 0.06, 0.06), np.array(jt), np.array(jq), np.array(jv), np.array(je),
                    plan.times.copy(), plan.commands.copy(), np.zeros(0), empty, np.zeros((0, 4)))
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
