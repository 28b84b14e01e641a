"""The simulated robot as its drivers would expose it: a clocked source of samples.

`SimulatedHardware` steps the MuJoCo scene and says what a set of hardware drivers would
emit over that time: joint-state samples at their rate, RGB-D frames at the camera's
rate (with capture and publication times, so latency and drops are explicit), and the
object's true pose for evaluation. Commands go through `command_intake` first. The ROS
node only turns these samples into messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from drex_ros.core.robot.model import robot_model
from drex_ros.core.sim.command_intake import CommandIntake
from drex_ros.core.sim.hardware_faults import ActuatorDelay, FaultConfig, FaultInjector
from drex_ros.core.sim.reality import Reality
from drex_ros.core.sim.scene import Scene, SceneConfig


@dataclass
class JointSample:
    time: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass
class CameraFrame:
    capture_time: float
    publish_time: float
    rgb: np.ndarray
    depth: np.ndarray


@dataclass
class ObjectSample:
    time: float
    position: np.ndarray
    quat_wxyz: np.ndarray


@dataclass
class Emitted:
    joints: list[JointSample] = field(default_factory=list)
    frames: list[CameraFrame] = field(default_factory=list)
    object_poses: list[ObjectSample] = field(default_factory=list)


def with_reality_camera(faults: FaultConfig, reality: Reality | None) -> FaultConfig:
    """The driver faults with the real cell's camera on top: the larger of each (the command delay
    and the efforts are the scene's, see reality.py)."""
    if reality is None:
        return faults
    return replace(faults, camera_position_noise=max(faults.camera_position_noise, reality.camera_position_noise),
                   camera_rotation_noise_deg=max(faults.camera_rotation_noise_deg, reality.camera_rotation_noise_deg),
                   camera_latency=max(faults.camera_latency, reality.camera_latency),
                   camera_drop_probability=max(faults.camera_drop_probability, reality.camera_drop_probability))


class SimulatedHardware:
    """Scene + faults + publishing schedule. Rates in Hz; camera_rate 0 disables rendering."""

    def __init__(self, scene_config: SceneConfig, faults: FaultConfig | None = None, joint_rate: float = 500.0,
                 camera_rate: float = 15.0, object_rate: float = 100.0) -> None:
        if joint_rate <= 0 or object_rate <= 0 or camera_rate < 0:
            raise ValueError("rates must be positive (camera_rate may be 0 to disable the camera)")
        self.faults = FaultInjector(with_reality_camera(faults or FaultConfig(), scene_config.reality))
        self.joint_period = 1.0 / joint_rate
        self.camera_period = 1.0 / camera_rate if camera_rate else 0.0
        self.object_period = 1.0 / object_rate
        self.scene: Scene | None = None
        self.reset(scene_config)

    def reset(self, scene_config: SceneConfig | None = None) -> None:
        """Rebuild the world (object parameters may have changed) and restart the clock at 0."""
        if self.scene is not None:
            self.scene.close()
        self.scene = Scene(scene_config or self.scene.config)
        self.scene.offset_camera(*self.faults.camera_pose_error())
        self._command = self.scene.targets()
        self._efforts = robot_model().limits.effort.copy()
        self._delay = ActuatorDelay(self.faults.config.actuator_delay_steps, self._command)
        self._next_joint = 0.0
        self._next_frame = 0.0
        self._next_object = 0.0
        self._pending: list[CameraFrame] = []

    @property
    def time(self) -> float:
        return self.scene.time

    def command(self, intake: CommandIntake) -> None:
        """Apply the accepted joints of a checked command; the others keep their targets."""
        self._command = np.where(intake.accepted, intake.targets, self._command)
        self._efforts = np.where(intake.accepted, intake.efforts, self._efforts)
        self.scene.set_effort_limits(self._efforts)

    def advance(self, until: float, max_steps: int | None = None) -> Emitted:
        """Step physics up to sim time `until` and collect what the drivers emit meanwhile."""
        out = Emitted()
        scene, dt = self.scene, self.scene.timestep
        steps = 0
        while scene.time + dt / 2 < until and (max_steps is None or steps < max_steps):
            scene.set_targets(self._delay.push(self._command))
            scene.step()
            steps += 1
            t = scene.time
            if t + 1e-9 >= self._next_joint:
                pos, vel, eff = self.faults.joint_state(scene.joint_positions(), scene.joint_velocities(),
                                                        scene.joint_efforts())
                out.joints.append(JointSample(t, pos, vel, eff))
                self._next_joint += self.faults.next_joint_state_period(self.joint_period)
            if t + 1e-9 >= self._next_object:
                out.object_poses.append(ObjectSample(t, *scene.object_pose()))
                self._next_object += self.object_period
            if self.camera_period and t + 1e-9 >= self._next_frame:
                self._capture(t)
                self._next_frame += self.camera_period
        ready = [f for f in self._pending if f.publish_time <= scene.time + 1e-9]
        self._pending = [f for f in self._pending if f.publish_time > scene.time + 1e-9]
        out.frames.extend(ready)
        return out

    def _capture(self, t: float) -> None:
        if self.faults.drop_frame():
            return
        rgb = self.faults.noisy_rgb(self.scene.render_rgb())
        depth = self.faults.noisy_depth(self.scene.render_depth())
        self._pending.append(CameraFrame(t, t + self.faults.config.camera_latency, rgb, depth))

    def close(self) -> None:
        if self.scene is not None:
            self.scene.close()
