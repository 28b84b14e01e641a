"""The grip through a position-only hand driver, in MuJoCo: the shipped policy's grip, routed as
safety_node routes it for the legacy Allegro profile and played as the driver's PD (gain and
torque clamp), holds a box the open-loop offset lets slip."""

from pathlib import Path

import numpy as np
import pytest

from drex_ros.core.control.output_routing import OutputRouter
from drex_ros.core.policy.runtime import PolicyModel
from drex_ros.core.robot.model import JOINT_NAMES, N_ARM, robot_model
from drex_ros.core.robot.profile import load_profile, profile_folder
from drex_ros.core.sim import personalities as P
from drex_ros.core.sim.scene_build import HAND_KP
from drex_ros.evaluation.in_process import PolicyController
from drex_ros.training.episode import GraspEpisode, ObjectSample

MODEL = Path(__file__).resolve().parents[1] / "drex_ros" / "models" / "grasp_policy.onnx"
BOX = ObjectSample("box", (0.05, 0.05, 0.05), 0.35, 0.8, (0.55, 0.0), 0.0)  # the demo's light box


def play_legacy_hand(episode: GraspEpisode, feedback: bool) -> None:
    """Route the episode's hand commands through the profile's router and the legacy node's PD."""
    scene, router = episode.scene, OutputRouter(load_profile(profile_folder("panda_allegro_legacy"), JOINT_NAMES))
    facts = P.DRIVERS["legacy_allegro"]
    hand = np.array([JOINT_NAMES.index(n) for n in facts.physical])
    set_targets, set_limits = scene.set_targets, scene.set_effort_limits
    grip = {"effort": np.full(len(JOINT_NAMES), np.nan)}

    def targets(q_target: np.ndarray) -> None:
        q = scene.joint_positions()
        reported = scene.data.actuator_force[scene._act] if feedback else None  # the node's commanded torque
        cmd = router.route(q_target, np.zeros(len(q)), grip["effort"], q, reported)[1]
        q_cmd = P.legacy_joint_cmd(facts, cmd.names, cmd.positions, [])
        full = np.array(q_target, float)
        full[hand] = P.hand_sim_target(facts, q_cmd, q[hand], np.full(len(hand), HAND_KP))
        set_targets(full)
        limits = robot_model().limits.effort.copy()
        limits[hand] = facts.torque_cap
        set_limits(limits)

    def limits(efforts: np.ndarray) -> None:  # the episode's grip effort goes to the router instead
        grip["effort"] = np.where(np.arange(len(efforts)) >= N_ARM, efforts, np.nan)

    scene.set_targets, scene.set_effort_limits = targets, limits


@pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model yet")
def test_the_servoed_grip_holds_the_light_box_and_squeezes_as_the_policy_meant():
    model = PolicyModel(MODEL)
    meant = GraspEpisode(BOX).run(PolicyController(model, BOX, BOX.mass, BOX.friction))
    results = {}
    for feedback in (False, True):
        episode = GraspEpisode(BOX)
        play_legacy_hand(episode, feedback)
        results[feedback] = episode.run(PolicyController(model, BOX, BOX.mass, BOX.friction))
    servoed, open_loop = results[True], results[False]
    assert meant.success and servoed.success, servoed
    assert abs(servoed.peak_squeeze - meant.peak_squeeze) < 0.25 * meant.peak_squeeze
    assert open_loop.peak_squeeze < 0.75 * servoed.peak_squeeze  # why the loop is there
