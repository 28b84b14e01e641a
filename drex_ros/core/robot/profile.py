"""A hardware profile: which drivers drive which joints, with their topics, message types,
orders, rates and effort semantics (config/robots/<name>/profile.yaml).

The stack itself works in URDF names; a profile says how each driver group (arm, hand) differs
from that. `sim` has no groups: sim_node speaks the stack's own conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from drex_ros.core.paths import config_dir
from drex_ros.core.robot.joint_map import GroupMap, JointMapError, build_joint_map
from drex_ros.core.robot.model import JointLimits

COMMAND_TYPES = ("joint_trajectory", "float64_array", "joint_state")
EFFORT_SEMANTICS = ("measured_net_of_gravity", "measured_with_gravity", "commanded")
GRIP_MODES = ("none", "position_offset")
DEFAULT_ROBOT = "sim"


@dataclass(frozen=True)
class GroupSpec:
    """One driver: its joints, state stream and command interface."""

    map: GroupMap
    state_topic: str
    state_rate_hz: float
    state_timeout_s: float
    effort: str  # one of EFFORT_SEMANTICS
    command_type: str  # one of COMMAND_TYPES
    command_topic: str
    horizon_s: float = 0.0  # joint_trajectory: time_from_start of the point
    grip: str = "none"  # how a grip effort reaches a hand without torque commands
    kp: np.ndarray | None = None  # N*m/rad per driver joint: the driver's PD gain (grip offset)
    torque_cap: np.ndarray | None = None  # N*m per driver joint: the driver's torque clamp
    limits: dict = field(default_factory=dict)  # per driver joint: lower/upper/velocity/effort/...


@dataclass(frozen=True)
class Profile:
    name: str
    folder: Path
    groups: dict[str, GroupSpec]
    state_topic: str  # where the merged URDF-named state goes (the stack's /joint_states)
    stack_remaps: dict[str, str]  # applied to every stack node
    sim_remaps: dict[str, str]  # applied to sim_node when the profile runs in simulation

    @property
    def uses_drivers(self) -> bool:
        return bool(self.groups)


def profile_folder(name: str, root: Path | None = None) -> Path:
    folder = (root or config_dir()) / "robots" / name
    if not (folder / "profile.yaml").is_file():
        known = sorted(p.name for p in folder.parent.glob("*") if (p / "profile.yaml").is_file())
        raise JointMapError(f"robot profile {name!r} not found in {folder.parent} (known: {', '.join(known)})")
    return folder


def load_profile(path: str | Path, urdf_names: tuple[str, ...]) -> Profile:
    """profile.yaml (or its folder) -> Profile; JointMapError names what is wrong."""
    path = Path(path)
    path = path / "profile.yaml" if path.is_dir() else path
    doc = yaml.safe_load(path.read_text()) or {}
    raw = doc.get("groups") or {}
    maps = build_joint_map({g: spec.get("joints") or [] for g, spec in raw.items()}, urdf_names) if raw else {}
    groups = {g: _group(g, maps[g], spec) for g, spec in raw.items()}
    return Profile(doc.get("name", path.parent.name), path.parent, groups, doc.get("state_topic", "/joint_states"),
                   dict(doc.get("stack_remaps") or {}), dict(doc.get("sim_remaps") or {}))


def _group(name: str, gmap: GroupMap, spec: dict) -> GroupSpec:
    state, command = spec.get("state") or {}, spec.get("command") or {}
    _choice(name, "state.effort", state.get("effort"), EFFORT_SEMANTICS)
    _choice(name, "command.type", command.get("type"), COMMAND_TYPES)
    _choice(name, "command.grip", command.get("grip", "none"), GRIP_MODES)
    kp, cap = (_per_joint(name, gmap, command.get(k)) for k in ("kp", "torque_cap"))
    if command.get("grip") == "position_offset" and (kp is None or cap is None or (kp <= 0).any()):
        raise JointMapError(f"group {name!r}: grip position_offset needs positive kp and torque_cap per joint")
    limits = {k: _per_joint(name, gmap, v) for k, v in (spec.get("limits") or {}).items()}
    return GroupSpec(gmap, str(state["topic"]), float(state.get("rate_hz", 0.0)), float(state["timeout_s"]),
                     state["effort"], command["type"], str(command["topic"]), float(command.get("horizon_s", 0.0)),
                     command.get("grip", "none"), kp, cap, limits)


def _choice(group: str, key: str, value, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise JointMapError(f"group {group!r}: {key} must be one of {allowed}, got {value!r}")


def _per_joint(group: str, gmap: GroupMap, values) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=float)
    if arr.shape != (len(gmap),):
        raise JointMapError(f"group {group!r}: {len(arr)} values where the group has {len(gmap)} joints")
    return arr


def tightened_limits(limits: JointLimits, profile: Profile) -> JointLimits:
    """The URDF's limits, tightened where a profile's driver group declares narrower ones (the
    URDF is the Panda's; an FR3's joint 6 starts higher). Never widened."""
    lower, upper, velocity, effort = (a.copy() for a in (limits.lower, limits.upper, limits.velocity, limits.effort))
    for g in profile.groups.values():
        idx, lim = g.map.urdf_index, g.limits
        if "lower" in lim:
            lower[idx] = np.maximum(lower[idx], lim["lower"])
        if "upper" in lim:
            upper[idx] = np.minimum(upper[idx], lim["upper"])
        if "velocity" in lim:
            velocity[idx] = np.minimum(velocity[idx], lim["velocity"])
        if "effort" in lim:
            effort[idx] = np.minimum(effort[idx], lim["effort"])
    return JointLimits(limits.names, lower, upper, velocity, effort)
