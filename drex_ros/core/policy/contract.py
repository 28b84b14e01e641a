"""The contract between a trained grasp policy (ONNX) and the drex runtime.

A policy is an ONNX model with one float32 input `obs` of shape [N, obs_dim] and one
float32 output `action` of shape [N, act_dim]. Everything the runtime needs to feed and
read it is declared in the model's metadata_props, each value a JSON string:

- `drex.contract_version`: "1".
- `drex.observation`: list of fields, concatenated in this order. Each field is
  {"name": ..., "size": n} plus "joints": [...] for joint fields. Names:
    joint_position, joint_velocity, joint_effort (size = len(joints), rad, rad/s, N*m),
    object_position_palm (3, m, object origin in the palm frame),
    object_quat_palm (4, w x y z, object orientation in the palm frame),
    object_position_world (3), object_quat_world (4),
    object_mass (1, kg), object_friction (1), object_size (3, m, bounding-box extents),
    palm_position_world (3), phase_time (1, s since the policy started).
- `drex.action`: {"position_targets": [joint names], "grip_effort": [joint names]}.
  The first len(position_targets) outputs are joint position targets (rad); if
  grip_effort lists joints, one more output follows: the grip effort as a fraction in
  [0, 1] of those joints' effort limits (clipped), published as their JointState effort.
- `drex.obs_mean`, `drex.obs_std` (obs_dim each): the runtime feeds (obs - mean) / std.
- `drex.action_mean`, `drex.action_std` (act_dim each): the runtime uses out * std + mean.
- `drex.control_rate_hz`: the rate the policy was trained at.
- `drex.gains` (optional): {joint: {"kp": .., "kd": ..}} the training scene used;
  compared with the running configuration at start-up.

Conventions the runtime (drex_ros.core.policy.runtime) follows, which training must match:
- Joint names are the URDF's (drex_ros.core.robot.model.JOINT_NAMES); a field may list any
  subset in any order. Every name must exist in the robot, or the model is refused.
- "palm frame" is the URDF frame `palm_link`, from forward kinematics of the measured
  joint positions; the world frame has the robot base at the origin on the table top.
- Quaternions are (w, x, y, z), unit, with the sign chosen so that w >= 0.
- object_size is the full bounding box along the object's axes: box (x, y, z),
  cylinder (2r, 2r, h), sphere (2r, 2r, 2r).
- object_mass and object_friction are the identified values from /drex/object_mass.
- phase_time counts from the moment the policy is enabled (restarts at each enable), or,
  once the task publishes its grasp plan's clock after the enable (/drex/policy/plan_time),
  is that clock: it stands still while the task holds the arm, as training's plan time.
- Joints of the robot not in position_targets are commanded by the runtime (the task's
  arm reference, else held); effort of joints not in grip_effort is their full limit.
- The graph must run per single observation (N = 1) within the control period; the
  runtime blends in from the measured position over its first steps and the safety
  node clamps every command, so a policy need not (and cannot) bypass either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

CONTRACT_VERSION = "1"
JOINT_FIELDS = ("joint_position", "joint_velocity", "joint_effort")
FIXED_FIELDS = {
    "object_position_palm": 3,
    "object_quat_palm": 4,
    "object_position_world": 3,
    "object_quat_world": 4,
    "object_mass": 1,
    "object_friction": 1,
    "object_size": 3,
    "palm_position_world": 3,
    "phase_time": 1,
}
PREFIX = "drex."


class ContractError(ValueError):
    """A model's metadata does not follow the contract; the message names the difference."""


@dataclass
class ObsField:
    name: str
    size: int
    joints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {"name": self.name, "size": self.size}
        if self.joints:
            d["joints"] = list(self.joints)
        return d


@dataclass
class PolicyContract:
    observation: list[ObsField]
    position_targets: list[str]
    grip_effort: list[str]
    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_mean: np.ndarray
    action_std: np.ndarray
    control_rate_hz: float
    gains: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def obs_dim(self) -> int:
        return sum(f.size for f in self.observation)

    @property
    def act_dim(self) -> int:
        return len(self.position_targets) + (1 if self.grip_effort else 0)

    def field_names(self) -> list[str]:
        return [f.name for f in self.observation]

    def validate(self) -> None:
        for f in self.observation:
            if f.name in JOINT_FIELDS:
                if not f.joints or f.size != len(f.joints):
                    raise ContractError(f"observation field {f.name}: size {f.size} != {len(f.joints)} joints")
            elif f.name in FIXED_FIELDS:
                if f.size != FIXED_FIELDS[f.name]:
                    raise ContractError(f"observation field {f.name}: size {f.size}, expected {FIXED_FIELDS[f.name]}")
            else:
                raise ContractError(f"unknown observation field {f.name!r}")
        for name, arr, dim in (("obs_mean", self.obs_mean, self.obs_dim), ("obs_std", self.obs_std, self.obs_dim),
                               ("action_mean", self.action_mean, self.act_dim),
                               ("action_std", self.action_std, self.act_dim)):
            if arr.shape != (dim,):
                raise ContractError(f"{name} has {arr.size} values, expected {dim}")
            if not np.all(np.isfinite(arr)):
                raise ContractError(f"{name} holds non-finite values")
        if np.any(self.obs_std <= 0) or np.any(self.action_std <= 0):
            raise ContractError("normalization std must be positive")
        if not (self.control_rate_hz > 0):
            raise ContractError(f"control_rate_hz must be positive, got {self.control_rate_hz}")

    def to_metadata(self) -> dict[str, str]:
        self.validate()
        return {
            PREFIX + "contract_version": CONTRACT_VERSION,
            PREFIX + "observation": json.dumps([f.to_dict() for f in self.observation]),
            PREFIX + "action": json.dumps({"position_targets": self.position_targets,
                                           "grip_effort": self.grip_effort}),
            PREFIX + "obs_mean": json.dumps(self.obs_mean.tolist()),
            PREFIX + "obs_std": json.dumps(self.obs_std.tolist()),
            PREFIX + "action_mean": json.dumps(self.action_mean.tolist()),
            PREFIX + "action_std": json.dumps(self.action_std.tolist()),
            PREFIX + "control_rate_hz": json.dumps(float(self.control_rate_hz)),
            PREFIX + "gains": json.dumps(self.gains),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> PolicyContract:
        def get(key: str):
            if PREFIX + key not in meta:
                raise ContractError(f"model metadata lacks '{PREFIX + key}'")
            try:
                return json.loads(meta[PREFIX + key])
            except json.JSONDecodeError as exc:
                raise ContractError(f"model metadata '{PREFIX + key}' is not JSON: {exc}") from exc

        version = meta.get(PREFIX + "contract_version")
        if version != CONTRACT_VERSION:
            raise ContractError(f"contract version {version!r}, this runtime reads {CONTRACT_VERSION!r}")
        action = get("action")
        contract = cls(
            observation=[ObsField(f["name"], int(f["size"]), list(f.get("joints", []))) for f in get("observation")],
            position_targets=list(action.get("position_targets", [])),
            grip_effort=list(action.get("grip_effort", [])),
            obs_mean=np.asarray(get("obs_mean"), dtype=float),
            obs_std=np.asarray(get("obs_std"), dtype=float),
            action_mean=np.asarray(get("action_mean"), dtype=float),
            action_std=np.asarray(get("action_std"), dtype=float),
            control_rate_hz=float(get("control_rate_hz")),
            gains=get("gains") if PREFIX + "gains" in meta else {},
        )
        contract.validate()
        return contract
