"""What a hardware profile adds to a stack: parameter files, nodes and remaps (for `drex
bringup --robot`, `drex demo --robot` and the tests; launch/bringup.launch.py does the same).

`sim` adds nothing. A driver profile adds its params.yaml and site.yaml after config/*.yaml,
joint_state_merger_node, and in simulation driver_personality_node, with sim_node moved off
the drivers' topics; stack nodes read the merged state where the profile puts it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from drex_ros.core.robot.profile import DEFAULT_ROBOT, profile_folder

MERGER, PERSONALITY = "joint_state_merger_node", "driver_personality_node"
SIM_TIMEOUT_SCALE = 4.0
STACK_NODES = ("safety_node", "smoother_node", "policy_node", "perception_node", "mass_id_node", "task_node",
               "recorder")


@dataclass
class ProfileArgs:
    files: list[Path] = field(default_factory=list)  # parameter files, after config/*.yaml
    nodes: list[str] = field(default_factory=list)  # extra nodes, in start order
    ros_args: list[str] = field(default_factory=list)  # node-prefixed remaps (one process or many)


def profile_arguments(robot: str, sim: bool, config_dir: Path) -> ProfileArgs:
    folder = profile_folder(robot, config_dir)
    out = ProfileArgs(files=[f for f in (folder / "params.yaml", folder / "site.yaml") if f.is_file()])
    doc = yaml.safe_load((folder / "profile.yaml").read_text()) or {}
    if not doc.get("groups"):
        return out
    out.nodes = ([PERSONALITY] if sim else []) + [MERGER]
    for node in STACK_NODES:
        out.ros_args += _remaps(node, doc.get("stack_remaps") or {})
    if sim:
        out.ros_args += _remaps("sim_node", doc.get("sim_remaps") or {})
    profile_file = str((folder / "profile.yaml").resolve())
    params = {n: {"robot_profile": profile_file} for n in ("safety_node", MERGER, PERSONALITY)}
    if sim:  # the simulated cell has no operator to release the real robot's start-up latch
        params["safety_node"]["start_latched"] = False
        # Two Python hops (personality, merger) on a shared host: a 50 ms stall is not a dead driver
        params[MERGER]["state_timeout_scale"] = SIM_TIMEOUT_SCALE
    out.files.append(_temp_params(params))
    return out


def _remaps(node: str, remaps: dict[str, str]) -> list[str]:
    return [a for src, dst in remaps.items() for a in ("-r", f"{node}:{src}:={dst}")]


def _temp_params(params: dict) -> Path:
    handle = tempfile.NamedTemporaryFile("w", suffix="-profile.yaml", delete=False)
    yaml.safe_dump({n: {"ros__parameters": p} for n, p in params.items()}, handle)
    handle.close()
    return Path(handle.name)


__all__ = ["DEFAULT_ROBOT", "ProfileArgs", "profile_arguments"]
