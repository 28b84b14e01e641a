"""Objects that break: the squeeze on the object is measured, a grip beyond its crush limit
crushes it, and the expert's least grip says when no grip lifts it whole."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drex_ros.core.policy.runtime import PolicyModel
from drex_ros.evaluation.in_process import PolicyController
from drex_ros.training.episode import GraspEpisode, ObjectSample, expert_controller
from drex_ros.training.expert import least_grip_effort
from drex_ros.training.fragility import FRAGILE_MAX_KG, draw_crush_limit

MODEL = Path(__file__).resolve().parents[1] / "drex_ros" / "models" / "grasp_policy.onnx"
CUP = ObjectSample("cylinder", (0.028, 0.08), 0.15, 0.8, (0.55, 0.0), 0.0, crush_limit=22.0)


def test_squeeze_is_zero_on_the_table_and_grows_with_the_grip():
    episode = GraspEpisode(replace(CUP, crush_limit=math.inf))
    assert episode.scene.object_squeeze() == 0.0  # resting on the table only: the table is not the hand
    gentle = episode.run(expert_controller(episode.plan, 0.2))
    firm = episode.run(expert_controller(episode.plan, 1.0))
    assert gentle.success and firm.success and gentle.crushed_at is None
    assert 2.0 < gentle.peak_squeeze < firm.peak_squeeze - 10.0


def test_a_full_grip_crushes_a_fragile_cup_that_its_least_grip_lifts_whole():
    episode = GraspEpisode(CUP)
    label = least_grip_effort(episode)
    assert label.feasible and label.least_squeeze < CUP.crush_limit
    crushed = episode.run(expert_controller(episode.plan, 1.0))
    assert crushed.outcome == "crushed" and not crushed.success and crushed.peak_squeeze > CUP.crush_limit
    whole = episode.run(expert_controller(episode.plan, label.least_effort))
    assert whole.outcome == "held"


def test_a_cup_too_fragile_for_its_least_grip_is_reported_as_not_liftable_whole():
    label = least_grip_effort(GraspEpisode(replace(CUP, crush_limit=1.0)))
    assert label.least_effort is not None and label.crushes and not label.feasible


@pytest.mark.skipif(not MODEL.is_file(), reason="no shipped model yet")
def test_the_policy_crushes_the_cup_when_told_the_fallback_mass_and_not_when_told_its_own():
    episode, model = GraspEpisode(CUP), PolicyModel(MODEL)
    assert episode.run(PolicyController(model, CUP, CUP.mass, CUP.friction)).outcome == "held"
    assert episode.run(PolicyController(model, CUP, 1.2, CUP.friction)).outcome == "crushed"


def test_fragility_is_drawn_for_light_objects_only_and_is_not_a_proxy_for_mass():
    light = [draw_crush_limit(np.random.default_rng(s), 0.2) for s in range(200)]
    heavy = [draw_crush_limit(np.random.default_rng(s), FRAGILE_MAX_KG + 0.1) for s in range(200)]
    fragile = [v for v in light if math.isfinite(v)]
    assert 60 < len(fragile) < 140 and all(20.0 <= v <= 35.0 for v in fragile)
    assert all(math.isinf(v) for v in heavy)
