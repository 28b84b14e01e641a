"""The Panda + Allegro robot: joint names and groups, limits, palm/fingertip FK and palm IK.

All arrays in drex use the canonical joint order `JOINT_NAMES` (arm joints 1-7, then
the Allegro joints 0.0-15.0: index, middle, ring, thumb). MuJoCo compiles the composed
URDF in exactly this order; pinocchio orders the hand's branches differently, so this
module converts between the two and no caller ever sees pinocchio's order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from drex_ros.core.robot.description import robot_urdf

ARM_JOINTS: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
N_ARM = len(ARM_JOINTS)
HAND_JOINTS: tuple[str, ...] = tuple(f"joint_{i}.0" for i in range(16))
JOINT_NAMES: tuple[str, ...] = ARM_JOINTS + HAND_JOINTS
FINGERS: dict[str, tuple[str, ...]] = {
    "index": HAND_JOINTS[0:4],
    "middle": HAND_JOINTS[4:8],
    "ring": HAND_JOINTS[8:12],
    "thumb": HAND_JOINTS[12:16],
}
PALM_FRAME = "palm_link"
FINGERTIP_FRAMES: dict[str, str] = {
    "index": "link_3.0_tip",
    "middle": "link_7.0_tip",
    "ring": "link_11.0_tip",
    "thumb": "link_15.0_tip",
}
# A comfortable arm posture above the table with the hand open; used as the home pose.
HOME_ARM = (0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785)

GRAVITY = 9.81  # m/s^2, as MuJoCo's default and pinocchio's model use

@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits in canonical order (rad, rad/s, N*m)."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)


@dataclass
class IKResult:
    q: np.ndarray
    success: bool
    position_error: float
    rotation_error: float
    iterations: int


class RobotModel:
    """Pinocchio kinematics of the composed robot, in canonical joint order."""

    def __init__(self) -> None:
        self.model = pin.buildModelFromXML(robot_urdf())
        self.data = self.model.createData()
        pin_names = list(self.model.names)[1:]
        if sorted(pin_names) != sorted(JOINT_NAMES):
            raise ValueError(f"URDF joints {pin_names} differ from {JOINT_NAMES}")
        # q_pin[pin_index[i]] is the canonical joint i (all joints are 1-DOF revolute).
        self.pin_index = np.array([self.model.joints[self.model.getJointId(n)].idx_q for n in JOINT_NAMES])
        self.limits = JointLimits(
            names=JOINT_NAMES,
            lower=self.model.lowerPositionLimit[self.pin_index].copy(),
            upper=self.model.upperPositionLimit[self.pin_index].copy(),
            velocity=self.model.velocityLimit[self.pin_index].copy(),
            effort=self.model.effortLimit[self.pin_index].copy(),
        )
        self._palm = self.model.getFrameId(PALM_FRAME)
        self._tips = {f: self.model.getFrameId(n) for f, n in FINGERTIP_FRAMES.items()}
        self._arm_idx = np.arange(len(ARM_JOINTS))

    @property
    def joint_names(self) -> tuple[str, ...]:
        return JOINT_NAMES

    def home(self) -> np.ndarray:
        """Home configuration: arm above the table, hand open (clipped to limits)."""
        q = np.zeros(len(JOINT_NAMES))
        q[: len(ARM_JOINTS)] = HOME_ARM
        return np.clip(q, self.limits.lower, self.limits.upper)

    def random_configuration(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.limits.lower, self.limits.upper)

    def to_pin(self, q: np.ndarray) -> np.ndarray:
        """q in JOINT_NAMES order -> pinocchio's configuration vector."""
        q_pin = np.zeros(self.model.nq)
        q_pin[self.pin_index] = q
        return q_pin

    def _update(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=float)
        if q.shape != (len(JOINT_NAMES),):
            raise ValueError(f"expected {len(JOINT_NAMES)} joint positions, got shape {q.shape}")
        pin.framesForwardKinematics(self.model, self.data, self.to_pin(q))

    def palm_pose(self, q: np.ndarray) -> pin.SE3:
        """World pose of the palm frame (robot base = world)."""
        self._update(q)
        return self.data.oMf[self._palm].copy()

    def frame_positions(self, q: np.ndarray) -> dict[str, np.ndarray]:
        """Palm and fingertip positions in one FK pass (keys: palm, index, ...)."""
        self._update(q)
        out = {"palm": self.data.oMf[self._palm].translation.copy()}
        out.update({f: self.data.oMf[i].translation.copy() for f, i in self._tips.items()})
        return out

    def solve_palm_ik(
        self,
        target: pin.SE3,
        q0: np.ndarray,
        position_only: bool = False,
        tol_pos: float = 1e-4,
        tol_rot: float = 1e-3,
        max_iter: int = 300,
        damping: float = 1e-3,
    ) -> IKResult:
        """Damped least-squares IK of the palm pose over the arm joints; hand joints fixed.

        Joint limits are enforced by clipping each step; the result says whether the
        tolerances were met, so a caller never uses an unreachable pose unknowingly.
        """
        q = np.clip(np.asarray(q0, dtype=float).copy(), self.limits.lower, self.limits.upper)
        arm_cols = self.pin_index[self._arm_idx]  # pinocchio velocity index == q index here
        err = np.zeros(6)
        for it in range(1, max_iter + 1):
            q_pin = self.to_pin(q)
            pin.framesForwardKinematics(self.model, self.data, q_pin)
            current = self.data.oMf[self._palm]
            err = pin.log6(current.actInv(target)).vector
            pos_err = np.linalg.norm(current.translation - target.translation)
            rot_err = np.linalg.norm(err[3:])
            if pos_err < tol_pos and (position_only or rot_err < tol_rot):
                return IKResult(q, True, pos_err, rot_err, it)
            jac = pin.computeFrameJacobian(self.model, self.data, q_pin, self._palm, pin.LOCAL)[:, arm_cols]
            if position_only:
                jac_w = pin.computeFrameJacobian(self.model, self.data, q_pin, self._palm, pin.LOCAL_WORLD_ALIGNED)
                jac = jac_w[:3, arm_cols]
                err = target.translation - current.translation
            dq = jac.T @ np.linalg.solve(jac @ jac.T + damping * np.eye(jac.shape[0]), err)
            step = np.zeros_like(q)
            step[self._arm_idx] = dq
            q = np.clip(q + step, self.limits.lower, self.limits.upper)
        current = self.palm_pose(q)
        pos_err = float(np.linalg.norm(current.translation - target.translation))
        rot_err = float(np.linalg.norm(pin.log3(current.rotation.T @ target.rotation)))
        ok = pos_err < tol_pos and (position_only or rot_err < tol_rot)
        return IKResult(q, ok, pos_err, rot_err, max_iter)


@functools.lru_cache(maxsize=1)
def robot_model() -> RobotModel:
    """Shared read-only instance (building the model parses the URDF)."""
    return RobotModel()
