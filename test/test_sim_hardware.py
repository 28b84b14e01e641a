"""The simulated drivers' schedule and faults, without ROS."""

import numpy as np
import pytest

from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.core.sim.command_intake import check_named_command
from drex_ros.core.sim.hardware import SimulatedHardware
from drex_ros.core.sim.hardware_faults import ActuatorDelay, FaultConfig
from drex_ros.core.sim.scene import SceneConfig


def test_rates_follow_sim_time():
    hw = SimulatedHardware(SceneConfig(), joint_rate=500, camera_rate=0, object_rate=100)
    out = hw.advance(1.0)
    assert len(out.joints) == pytest.approx(500, abs=1)
    assert len(out.object_poses) == pytest.approx(100, abs=1)
    assert not out.frames


def test_actuator_delay_releases_commands_late():
    delay = ActuatorDelay(3, np.zeros(2))
    released = [delay.push(np.full(2, k)) for k in range(1, 7)]
    assert [r[0] for r in released] == [0, 0, 0, 1, 2, 3]


def test_delayed_actuators_start_moving_later():
    def first_motion(delay_steps: int) -> float:
        hw = SimulatedHardware(SceneConfig(), FaultConfig(actuator_delay_steps=delay_steps), camera_rate=0)
        q = hw.scene.joint_positions()
        q[0] += 0.3
        hw.command(check_named_command(JOINT_NAMES, q, [], robot_model().limits))
        for s in hw.advance(0.2).joints:
            if abs(s.velocity[0]) > 1e-3:
                return s.time
        return np.inf

    assert first_motion(25) - first_motion(0) == pytest.approx(0.05, abs=0.005)


def test_camera_drops_latency_and_noise():
    faults = FaultConfig(camera_drop_probability=0.5, camera_latency=0.1, joint_position_noise=0.01, seed=3)
    hw = SimulatedHardware(SceneConfig(), faults, camera_rate=10)
    out = hw.advance(2.0)
    assert 3 <= len(out.frames) <= 17  # ~10 of 20 frames survive a 50 % drop
    assert all(f.publish_time == pytest.approx(f.capture_time + 0.1) for f in out.frames)
    assert max(f.publish_time for f in out.frames) <= hw.time + 1e-9
    spread = np.std([s.position[0] for s in out.joints])
    assert 0.005 < spread < 0.02
    hw.close()


def test_invalid_fault_configuration_is_refused():
    with pytest.raises(ValueError, match="camera_drop_probability"):
        SimulatedHardware(SceneConfig(), FaultConfig(camera_drop_probability=2.0))
