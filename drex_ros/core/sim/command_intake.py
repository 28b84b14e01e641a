"""Check a named joint command against the robot before it reaches the (simulated) motors.

Both a JointState-style command (names + positions [+ efforts]) and a ros2_control-style
array in canonical order end up here. Offending joints are dropped, never applied, and
every reason is returned so the caller can warn and report it; a joint left out of a
command keeps its previous target, as a real position controller does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from drex_ros.core.robot.joints import JointIndex
from drex_ros.core.robot.model import JointLimits


@dataclass
class CommandIntake:
    """What survives of a command: per-joint mask, targets and effort limits (canonical order)."""

    accepted: np.ndarray  # bool, one per robot joint
    targets: np.ndarray  # rad, valid where accepted
    efforts: np.ndarray  # N*m effort limit to apply, valid where accepted
    problems: Counter = field(default_factory=Counter)  # reason -> count

    @property
    def any_accepted(self) -> bool:
        return bool(self.accepted.any())


def _empty(n: int) -> CommandIntake:
    return CommandIntake(np.zeros(n, bool), np.full(n, np.nan), np.full(n, np.nan))


def check_named_command(
    names: Sequence[str],
    positions: Sequence[float],
    efforts: Sequence[float],
    limits: JointLimits,
    tolerance: float = 1e-6,
) -> CommandIntake:
    """Map a named command onto the robot's joints and drop what is unsafe or malformed."""
    n = len(limits.names)
    out = _empty(n)
    if len(positions) != len(names):
        out.problems["position length differs from name length"] += 1
        return out
    use_effort = len(efforts) == len(names)
    if len(efforts) not in (0, len(names)):
        out.problems["effort length differs from name length (efforts ignored)"] += 1
    m = JointIndex(limits.names).map(names)
    if m.unknown:
        out.problems["unknown joint"] += m.unknown
    if m.duplicated.any():
        out.problems["duplicated joint"] += int(m.duplicated.sum())
    for k, i in zip(m.src, m.dst, strict=True):
        q = float(positions[k])
        if not np.isfinite(q):
            out.problems["non-finite position"] += 1
            continue
        if q < limits.lower[i] - tolerance or q > limits.upper[i] + tolerance:
            out.problems["position outside joint limits"] += 1
            continue
        out.accepted[i] = True
        out.targets[i] = q
        out.efforts[i] = _effort(float(efforts[k]) if use_effort else np.nan, limits.effort[i], out.problems)
    return out


def check_array_command(values: Sequence[float], limits: JointLimits, tolerance: float = 1e-6) -> CommandIntake:
    """A ros2_control forward_position_controller command: positions in canonical order."""
    if len(values) != len(limits.names):
        out = _empty(len(limits.names))
        out.problems[f"expected {len(limits.names)} values, got {len(values)}"] += 1
        return out
    return check_named_command(limits.names, values, [], limits, tolerance)


def _effort(requested: float, hardware_max: float, problems: Counter) -> float:
    """Effort limit to apply: the request clipped to the hardware's; absent or invalid -> the hardware's."""
    if np.isnan(requested):
        return hardware_max
    if not np.isfinite(requested) or requested <= 0:
        problems["invalid effort (hardware limit used)"] += 1
        return hardware_max
    return min(requested, hardware_max)
