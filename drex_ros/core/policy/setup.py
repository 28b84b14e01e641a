"""What policy_node checks and derives at start-up and per joint state, without ROS: where a
named model is, what the robot expects of a model (rate, observation size, gains), the object's
extents for the observation, and the decimation of a driver's joint-state stream to the
policy's rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drex_ros.core.paths import MODELS_DIR
from drex_ros.core.policy.runtime import RuntimeExpectations
from drex_ros.core.robot.objects import half_extents


class PolicyStartupError(RuntimeError):
    """The model cannot be run on this robot with this configuration; the message says why."""


def resolve_model_path(path: str) -> Path:
    """A path as given, or else a bare/relative name inside the package's models/ folder
    (so parameter files can name a shipped model without knowing where drex is installed)."""
    given = Path(path).expanduser()
    if given.is_absolute() or given.exists():
        return given
    shipped = MODELS_DIR / given
    return shipped if shipped.exists() else given


def runtime_expectations(control_rate_hz: float, obs_dim: int, gain_joints: Sequence[str],
                         gain_kp: Sequence[float], gain_kd: Sequence[float],
                         default_gains: dict[str, dict[str, float]]) -> RuntimeExpectations:
    """The configuration a model must fit; `default_gains` where no gains are configured."""
    for label, values in (("gain_kp", gain_kp), ("gain_kd", gain_kd)):
        if values and len(values) != len(gain_joints):
            raise PolicyStartupError(f"{label} has {len(values)} values for {len(gain_joints)} gain_joints")
    gains = {j: {} for j in gain_joints} if gain_joints else default_gains
    for j, value in zip(gain_joints, gain_kp, strict=False):
        gains[j]["kp"] = float(value)
    for j, value in zip(gain_joints, gain_kd, strict=False):
        gains[j]["kd"] = float(value)
    return RuntimeExpectations(control_rate_hz=float(control_rate_hz), obs_dim=int(obs_dim), gains=gains)


def object_extents(shape: str, size: Sequence[float]) -> np.ndarray | None:
    """Full bounding-box extents (the contract's object_size) from shape + size; None without a size."""
    if not size:
        return None
    try:
        extents = 2.0 * half_extents(shape, tuple(float(v) for v in size))
    except (ValueError, TypeError) as exc:
        raise PolicyStartupError(f"object_shape {shape!r} with object_size {list(size)}: {exc}") from exc
    if extents.shape != (3,) or not np.all(extents > 0):
        raise PolicyStartupError(f"object_size {list(size)} does not describe a {shape}")
    return extents


class StateDecimator:
    """Phase-locked decimation on the driver's sample stamps: one step per period, regular even
    when delivery jitters."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.next_due = 0.0

    def reset(self) -> None:
        self.next_due = 0.0

    def due(self, t: float) -> bool:
        p = self.period
        if t < self.next_due - 2 * p or t >= self.next_due + p:  # first sample, clock jump, or a long gap
            self.next_due = t
        if t < self.next_due - 0.25 * p:
            return False
        self.next_due += p
        return True
