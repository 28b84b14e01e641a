"""drex replay: re-simulation of a recorded bag, and its error reporting."""

import json

import numpy as np
import pytest

from drex_ros.cli import main as drex
from drex_ros.core.bag import BagWriter
from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.core.sim.scene import Scene


def _joint_msg(t, q, effort=None):
    sec = int(t)
    msg = {"header": {"stamp": {"sec": sec, "nanosec": int(round((t - sec) * 1e9))}, "frame_id": ""},
           "name": list(JOINT_NAMES), "position": list(map(float, q)), "velocity": [], "effort": []}
    if effort is not None:
        msg["effort"] = list(map(float, effort))
    return msg


def _pose_msg(t, p, q):
    sec = int(t)
    return {"header": {"stamp": {"sec": sec, "nanosec": int(round((t - sec) * 1e9))}, "frame_id": "world"},
            "pose": {"position": dict(zip("xyz", map(float, p), strict=True)),
                     "orientation": dict(zip("wxyz", map(float, q), strict=True))}}


@pytest.fixture(scope="module")
def recorded_bag(tmp_path_factory):
    """A 2 s run recorded from the scene: arm and fingers move, object at rest."""
    path = tmp_path_factory.mktemp("bags") / "run.mcap"
    scene = Scene()
    home = scene.joint_positions()
    effort = robot_model().limits.effort
    with BagWriter(path) as bag:
        for k in range(1000):
            t = scene.time
            if k % 10 == 0:
                target = home.copy()
                target[0] += 0.3 * np.sin(np.pi * t)
                target[8:11] += 0.5 * t
                scene.set_targets(target)
                bag.write("/drex/joint_command", "sensor_msgs/msg/JointState", _joint_msg(t, target, effort), t)
            scene.step()
            if k % 2 == 0:
                bag.write("/joint_states", "sensor_msgs/msg/JointState",
                          _joint_msg(scene.time, scene.joint_positions()), scene.time)
            if k % 33 == 0:
                bag.write("/drex/object_pose", "geometry_msgs/msg/PoseStamped",
                          _pose_msg(scene.time, *scene.object_pose()), scene.time)
    return path


def test_resimulation_reproduces_the_recording(recorded_bag, tmp_path, capsys):
    plot = tmp_path / "replay.png"
    assert drex(["replay", str(recorded_bag), "--json", "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["joint_rms_arm_deg"] < 0.5 and result["joint_rms_hand_deg"] < 0.5
    assert result["object_err_max_mm"] < 1.0
    assert plot.stat().st_size > 10_000


def test_missing_topic_is_named(tmp_path, capsys):
    path = tmp_path / "partial.mcap"
    with BagWriter(path) as bag:
        bag.write("/joint_states", "sensor_msgs/msg/JointState", _joint_msg(0.0, np.zeros(23)), 0.0)
    assert drex(["replay", str(path)]) == 2
    assert "/drex/joint_command" in capsys.readouterr().out


def test_missing_bag_is_a_clear_error(tmp_path, capsys):
    assert drex(["replay", str(tmp_path / "nope.mcap")]) == 2
    assert "no bag" in capsys.readouterr().out
