"""A whole episode through each hardware profile, the drivers played on the sim (own module: the
episode runs its own rclpy, which a module-scoped test node would already hold)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROBOTS = ["fr3_allegro", "panda_allegro_legacy"]


@pytest.mark.parametrize("robot", ROBOTS)
def test_episode_through_the_profile(robot, tmp_path: Path):
    """Perceive, probe, identify (or fall back) and grasp with the drivers played on the sim: every
    command goes through the profile's routing and the drivers' rules, and none is refused.

    Not yet asserted: `done`. Through both profiles the grasp closes and lifts but the object
    slips out during the hold (the grip reaches the hand as a position offset bounded by the
    drivers' default torque caps, 0.22-0.56 ratio units, with the hands' PD gains unconfirmed);
    the issue stays open on it."""
    from drex_ros.commands.demo import OBJECTS, run_episode
    from drex_ros.core.paths import MODELS_DIR

    result = run_episode(OBJECTS[0], tmp_path, 1, 400.0, str(MODELS_DIR / "grasp_policy.onnx"), robot=robot)
    logs = tmp_path / "1_light_box_logs" / "driver_personality_node.log"
    assert "refused" not in logs.read_text(), logs.read_text()[-2000:]
    # The mass may come from the probe or be the fallback: through the played drivers the probe is
    # not always identifiable yet.
    assert {"perceiving", "probing", "identifying", "grasping"} <= set(result.durations), (result.state, result.reason)
