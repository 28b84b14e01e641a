"""Grasp-policy runtime: ONNX model + contract checks, observation builder, action decoding.

The model contract (metadata keys, observation fields, action layout, normalization) is
defined and documented in `drex_ros.core.policy.contract`. This module runs such a model:

- `PolicyModel` loads the ONNX file with ONNX Runtime on the CPU (thread count chosen by
  the caller), reads the contract from metadata_props and checks the graph's input `obs`
  and output `action` widths against it.
- `check_contract` compares the contract with the robot (URDF joint names) and the running
  configuration (control rate, observation size, gains) and returns every difference, so a
  node can refuse to start with a message naming each one.
- `ObservationBuilder` turns the latest inputs (joint state, object pose in the world frame,
  identified mass and friction, object size, phase time) into the model's observation, or
  raises `MissingInput` naming what is missing or stale. Poses in the palm frame use the
  robot's forward kinematics; quaternions are w, x, y, z with w >= 0.
- `decode_action` maps the model output to joint position targets and per-joint effort
  limits (grip fraction times the joints' effort limits; other joints get their full limit).
The closed loop (merging with the arm reference, blend-in, deadline monitor) lives in
`drex_ros.core.policy.loop`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pinocchio as pin

from drex_ros.core.policy.contract import JOINT_FIELDS, ContractError, PolicyContract
from drex_ros.core.robot.model import JointLimits, RobotModel

INPUT_NAME = "obs"
OUTPUT_NAME = "action"


class MissingInput(RuntimeError):
    """An input the model declares is absent or stale; the message says which and why."""


class PolicyModel:
    """An ONNX policy and its contract, ready for single-observation inference."""

    def __init__(self, source: str | Path | bytes, num_threads: int = 1) -> None:
        import onnxruntime as ort  # imported here so contract-only users need not load it

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(num_threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for unreadable graphs
            raise ContractError(f"ONNX Runtime cannot load the model: {exc}") from exc
        self.contract = PolicyContract.from_metadata(dict(self.session.get_modelmeta().custom_metadata_map))
        self.input_width = _io_width(self.session.get_inputs(), INPUT_NAME)
        self.output_width = _io_width(self.session.get_outputs(), OUTPUT_NAME)
        if self.input_width != self.contract.obs_dim:
            raise ContractError(f"model input '{INPUT_NAME}' has {self.input_width} values, "
                                f"the declared observation has {self.contract.obs_dim}")
        if self.output_width != self.contract.act_dim:
            raise ContractError(f"model output '{OUTPUT_NAME}' has {self.output_width} values, "
                                f"the declared action has {self.contract.act_dim}")
        c = self.contract
        self._obs_mean, self._obs_inv_std = c.obs_mean.astype(np.float32), (1.0 / c.obs_std).astype(np.float32)
        self._buffer = np.zeros((1, c.obs_dim), dtype=np.float32)

    def infer_normalized(self, obs_normalized: np.ndarray) -> np.ndarray:
        """Raw network output for one already-normalized observation."""
        self._buffer[0] = obs_normalized
        try:
            return self.session.run([OUTPUT_NAME], {INPUT_NAME: self._buffer})[0][0]
        except Exception as exc:  # ORT's own exception types; a failing model must not take the node down
            raise ValueError(f"ONNX Runtime failed on this observation: {exc}") from exc

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Denormalized action for one raw observation: net((obs - mean) / std) * std + mean."""
        raw = self.infer_normalized((np.asarray(obs, dtype=np.float32) - self._obs_mean) * self._obs_inv_std)
        return raw.astype(float) * self.contract.action_std + self.contract.action_mean


def _io_width(args, name: str) -> int:
    by_name = {a.name: a for a in args}
    if name not in by_name:
        raise ContractError(f"model has no tensor named '{name}' (has {sorted(by_name)})")
    shape = by_name[name].shape
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise ContractError(f"model tensor '{name}' has shape {shape}, expected [batch, n]")
    if "float" not in by_name[name].type or "16" in by_name[name].type or "double" in by_name[name].type:
        raise ContractError(f"model tensor '{name}' is {by_name[name].type}, expected tensor(float)")
    return int(shape[1])


@dataclass
class RuntimeExpectations:
    """What the running configuration expects of a model (0 / empty = no expectation)."""

    control_rate_hz: float = 0.0
    obs_dim: int = 0
    gains: dict[str, dict[str, float]] = field(default_factory=dict)
    gain_tolerance: float = 0.05  # relative


def check_contract(contract: PolicyContract, joint_names: Sequence[str],
                   expect: RuntimeExpectations | None = None) -> list[str]:
    """Every difference between a model's contract and the robot + configuration (empty = fine)."""
    expect = expect or RuntimeExpectations()
    problems: list[str] = []
    known = set(joint_names)
    for f in contract.observation:
        if f.name in JOINT_FIELDS:
            unknown = [j for j in f.joints if j not in known]
            if unknown:
                problems.append(f"observation {f.name} names joints the robot does not have: {unknown}")
            if len(set(f.joints)) != len(f.joints):
                problems.append(f"observation {f.name} lists a joint twice")
    for label, names in (("position_targets", contract.position_targets), ("grip_effort", contract.grip_effort)):
        unknown = [j for j in names if j not in known]
        if unknown:
            problems.append(f"action {label} names joints the robot does not have: {unknown}")
        if len(set(names)) != len(names):
            problems.append(f"action {label} lists a joint twice")
    if not contract.position_targets:
        problems.append("action declares no position targets")
    if expect.control_rate_hz > 0 and abs(expect.control_rate_hz - contract.control_rate_hz) > 1e-3 * max(
            expect.control_rate_hz, 1.0):
        problems.append(f"control rate: configured {expect.control_rate_hz:g} Hz "
                        f"(period {1.0 / expect.control_rate_hz:.4g} s), model trained at "
                        f"{contract.control_rate_hz:g} Hz (period {1.0 / contract.control_rate_hz:.4g} s)")
    if expect.obs_dim > 0 and expect.obs_dim != contract.obs_dim:
        problems.append(f"observation size: configured {expect.obs_dim}, model declares {contract.obs_dim}")
    for joint, model_gains in contract.gains.items():
        for key, model_value in model_gains.items():
            ours = expect.gains.get(joint, {}).get(key)
            if ours is None:
                continue
            if abs(ours - model_value) > expect.gain_tolerance * max(abs(model_value), 1e-9):
                problems.append(f"gain {key} of {joint}: configured {ours:g}, model trained with {model_value:g}")
    return problems


@dataclass
class PolicyInputs:
    """Latest inputs in canonical joint order, with the time each arrived (node clock, s)."""

    n_joints: int
    position: np.ndarray = None
    velocity: np.ndarray = None
    effort: np.ndarray = None
    joint_state_time: float = -np.inf
    object_position: np.ndarray | None = None  # world frame
    object_quat: np.ndarray | None = None  # world frame, w x y z
    object_pose_time: float = -np.inf
    object_mass: float | None = None
    object_friction: float | None = None
    object_size: np.ndarray | None = None
    phase_time: float = 0.0

    def __post_init__(self) -> None:
        for name in ("position", "velocity", "effort"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(self.n_joints, np.nan))


def quat_wxyz(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix, sign chosen so that w >= 0."""
    q = pin.Quaternion(np.asarray(rotation, dtype=float))
    out = np.array([q.w, q.x, q.y, q.z])
    return -out if out[0] < 0 else out


def rotation_from_wxyz(quat: Sequence[float]) -> np.ndarray:
    w, x, y, z = (float(v) for v in quat)
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    if not np.isfinite(norm) or norm < 1e-9:
        raise MissingInput(f"object orientation {list(quat)} is not a valid quaternion")
    return pin.Quaternion(w / norm, x / norm, y / norm, z / norm).toRotationMatrix()


class ObservationBuilder:
    """Builds the raw (unnormalized) observation vector a contract declares."""

    def __init__(self, contract: PolicyContract, robot: RobotModel, joint_state_timeout: float = 0.1,
                 object_pose_timeout: float = 0.5) -> None:
        self.contract = contract
        self.robot = robot
        self.joint_state_timeout = joint_state_timeout
        self.object_pose_timeout = object_pose_timeout
        index = {n: i for i, n in enumerate(robot.joint_names)}
        # Per field, the canonical indices of its joints (None for non-joint fields), in observation order.
        self._plan = [(f, np.array([index[j] for j in f.joints]) if f.name in JOINT_FIELDS else None)
                      for f in contract.observation]
        names = set(contract.field_names())
        self.needs_joint_state = bool(names & {"joint_position", "joint_velocity", "joint_effort",
                                               "object_position_palm", "object_quat_palm", "palm_position_world"})
        self.needs_object_pose = bool(names & {"object_position_palm", "object_quat_palm",
                                               "object_position_world", "object_quat_world"})
        self.needs_palm = bool(names & {"object_position_palm", "object_quat_palm", "palm_position_world"})
        self.needs_mass = "object_mass" in names
        self.needs_friction = "object_friction" in names
        self.needs_size = "object_size" in names
        self._out = np.zeros(contract.obs_dim)

    def problems(self, inputs: PolicyInputs, now: float) -> list[str]:
        """Why the declared inputs cannot be used now (empty list = all present and fresh)."""
        out = []
        if self.needs_joint_state:
            age = now - inputs.joint_state_time
            if not np.isfinite(age):
                out.append("no /joint_states received")
            elif age > self.joint_state_timeout:
                out.append(f"/joint_states is stale ({age:.3f} s old, limit {self.joint_state_timeout} s)")
            else:
                out += self._joint_problems(inputs)
        if self.needs_object_pose:
            age = now - inputs.object_pose_time
            if inputs.object_position is None or not np.isfinite(age):
                out.append("no object pose received")
            elif age > self.object_pose_timeout:
                out.append(f"object pose is stale ({age:.3f} s old, limit {self.object_pose_timeout} s)")
        if self.needs_mass and (inputs.object_mass is None or not np.isfinite(inputs.object_mass)):
            out.append("no object mass identified")
        if self.needs_friction and (inputs.object_friction is None or not np.isfinite(inputs.object_friction)):
            out.append("no object friction identified")
        if self.needs_size and (inputs.object_size is None or inputs.object_size.shape != (3,)
                                or not np.all(np.isfinite(inputs.object_size))):
            out.append("no object size configured")
        return out

    def _joint_problems(self, inputs: PolicyInputs) -> list[str]:
        out = []
        arrays = {"joint_position": inputs.position, "joint_velocity": inputs.velocity,
                  "joint_effort": inputs.effort}
        for f, idx in self._plan:
            if idx is not None:
                finite = np.isfinite(arrays[f.name][idx])
                if not finite.all():
                    missing = [j for j, ok in zip(f.joints, finite, strict=True) if not ok]
                    out.append(f"/joint_states lacks {f.name} of {missing}")
        if self.needs_palm and not np.all(np.isfinite(inputs.position)):
            out.append("/joint_states lacks positions needed for the palm pose")
        return out

    def build(self, inputs: PolicyInputs, now: float) -> np.ndarray:
        """The raw observation; raises MissingInput when an input is missing or stale."""
        problems = self.problems(inputs, now)
        if problems:
            raise MissingInput("; ".join(problems))
        palm = self.robot.palm_pose(inputs.position) if self.needs_palm else None
        obj_rot = None
        if self.needs_object_pose:
            obj_rot = rotation_from_wxyz(inputs.object_quat)
        arrays = {"joint_position": inputs.position, "joint_velocity": inputs.velocity,
                  "joint_effort": inputs.effort}
        out = self._out
        k = 0
        for f, idx in self._plan:
            if idx is not None:
                value = arrays[f.name][idx]
            elif f.name == "object_position_palm":
                value = palm.rotation.T @ (np.asarray(inputs.object_position) - palm.translation)
            elif f.name == "object_quat_palm":
                value = quat_wxyz(palm.rotation.T @ obj_rot)
            elif f.name == "object_position_world":
                value = inputs.object_position
            elif f.name == "object_quat_world":
                value = quat_wxyz(obj_rot)
            elif f.name == "object_mass":
                value = inputs.object_mass
            elif f.name == "object_friction":
                value = inputs.object_friction
            elif f.name == "object_size":
                value = inputs.object_size
            elif f.name == "palm_position_world":
                value = palm.translation
            elif f.name == "phase_time":
                value = inputs.phase_time
            else:  # validate() already refuses unknown fields; kept so a new field cannot be silently zero
                raise ContractError(f"observation field {f.name!r} has no builder")
            out[k:k + f.size] = value
            k += f.size
        return out.copy()


def decode_action(contract: PolicyContract, action: np.ndarray, joint_names: Sequence[str],
                  limits: JointLimits) -> tuple[dict[str, float], dict[str, float]]:
    """Position targets {joint: rad} and effort limits {joint: N*m} from a denormalized action."""
    action = np.asarray(action, dtype=float)
    if not np.all(np.isfinite(action)):
        raise ValueError("policy output holds non-finite values")
    n = len(contract.position_targets)
    targets = dict(zip(contract.position_targets, action[:n].tolist(), strict=True))
    efforts: dict[str, float] = {}
    if contract.grip_effort:
        fraction = float(np.clip(action[n], 0.0, 1.0))
        index = {name: i for i, name in enumerate(joint_names)}
        for joint in contract.grip_effort:
            efforts[joint] = fraction * float(limits.effort[index[joint]])
    return targets, efforts

