"""Faults that real drivers show, injected into the simulated hardware (all off by default).

Actuator delay (commands reach the motors N physics steps late), joint-state noise,
camera pose error (a fixed miscalibration drawn at reset) and pixel noise, dropped and
late camera frames, and jitter on the joint-state publishing period. The stack is
tested against these so it does not rely on a perfect simulator.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class FaultConfig:
    actuator_delay_steps: int = 0
    joint_position_noise: float = 0.0  # rad (std)
    joint_velocity_noise: float = 0.0  # rad/s (std)
    joint_effort_noise: float = 0.0  # N*m (std)
    joint_state_jitter: float = 0.0  # s, publishing period varies uniformly by +-this
    camera_position_noise: float = 0.0  # m (std), drawn once per reset
    camera_rotation_noise_deg: float = 0.0  # deg (std), drawn once per reset
    camera_pixel_noise: float = 0.0  # colour std in 0-255 units; depth gets 1 mm per unit
    camera_drop_probability: float = 0.0
    camera_latency: float = 0.0  # s between capture and publication
    seed: int = 0

    def validate(self) -> None:
        if self.actuator_delay_steps < 0:
            raise ValueError("actuator_delay_steps must be >= 0")
        if not 0.0 <= self.camera_drop_probability <= 1.0:
            raise ValueError("camera_drop_probability must be in [0, 1]")
        for name in ("joint_position_noise", "joint_velocity_noise", "joint_effort_noise", "joint_state_jitter",
                     "camera_position_noise", "camera_rotation_noise_deg", "camera_pixel_noise", "camera_latency"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


class ActuatorDelay:
    """A FIFO that releases each command `steps` physics steps after it was given."""

    def __init__(self, steps: int, initial: np.ndarray) -> None:
        self._queue: deque[np.ndarray] = deque([initial.copy()] * (steps + 1), maxlen=steps + 1)

    def push(self, command: np.ndarray) -> np.ndarray:
        """Add this step's command; returns the one that reaches the motors now."""
        self._queue.append(command.copy())
        return self._queue[0]


class FaultInjector:
    """Random faults from one seeded generator, so a faulty run is reproducible."""

    def __init__(self, config: FaultConfig) -> None:
        config.validate()
        self.config = config
        self.rng = np.random.default_rng(config.seed)

    def joint_state(self, pos: np.ndarray, vel: np.ndarray, eff: np.ndarray) -> tuple[np.ndarray, ...]:
        c = self.config
        return (pos + self.rng.normal(0, c.joint_position_noise, pos.shape) if c.joint_position_noise else pos,
                vel + self.rng.normal(0, c.joint_velocity_noise, vel.shape) if c.joint_velocity_noise else vel,
                eff + self.rng.normal(0, c.joint_effort_noise, eff.shape) if c.joint_effort_noise else eff)

    def next_joint_state_period(self, period: float) -> float:
        jitter = self.config.joint_state_jitter
        return period + self.rng.uniform(-jitter, jitter) if jitter else period

    def camera_pose_error(self) -> tuple[np.ndarray, np.ndarray]:
        """Position offset (m) and small rotation vector (rad) of the real camera vs its calibration."""
        c = self.config
        return (self.rng.normal(0, c.camera_position_noise, 3),
                self.rng.normal(0, np.deg2rad(c.camera_rotation_noise_deg), 3))

    def drop_frame(self) -> bool:
        p = self.config.camera_drop_probability
        return bool(p and self.rng.random() < p)

    def noisy_rgb(self, rgb: np.ndarray) -> np.ndarray:
        sigma = self.config.camera_pixel_noise
        if not sigma:
            return rgb
        return np.clip(rgb + self.rng.normal(0, sigma, rgb.shape), 0, 255).astype(np.uint8)

    def noisy_depth(self, depth: np.ndarray) -> np.ndarray:
        sigma = self.config.camera_pixel_noise
        if not sigma:
            return depth
        return (depth + self.rng.normal(0, sigma * 1e-3, depth.shape)).astype(np.float32)
