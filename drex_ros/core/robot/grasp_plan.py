"""The arm's reference for one grasp: approach, descend, close, lift, shake and hold.

D-REX's policy commands the hand (joint targets + grip effort); the arm follows a planned
reference. The plan is a top-down pinch: palm facing down above the object, fingers
pointing sideways (+y) and reaching down its far side, the opposed thumb its near side,
so the object is squeezed at mid-height between three fingertips and the thumb. Keyframe
arm configurations come from palm IK once; `arm_targets(t)` then only interpolates between
them (min-jerk), so it is cheap and deterministic at any control rate.

Phases (seconds from the start of the plan): approach (to a pre-grasp above the object),
descend, close (arm still, hand closes), lift (by `lift_height`), shake (small up/down and
sideways oscillation that tests the grip), hold (still, lifted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pinocchio as pin

from drex_ros.core.robot.model import N_ARM, RobotModel, robot_model
from drex_ros.core.robot.objects import half_extents

# Hand postures (16 Allegro joints) solved once from the hand's kinematics: OPEN puts the
# middle fingertip 6.5 cm and the thumb tip 5.3 cm either side of a point 8.5 cm below the
# palm; CLOSED puts them 2 cm past it, so contact leaves the joints saturated. Index and
# ring are turned 0.25 rad toward the middle finger so all three meet a 4-6 cm object
# (measured: 13 of 16 random objects held at full effort, against 6 of 16 without).
HAND_OPEN = np.array([-0.25, 0.474, 0.782, 0.782, 0.0, 0.474, 0.782, 0.782, 0.25, 0.474, 0.782, 0.782,
                      1.3, 1.16, 0.068, 1.7])
HAND_CLOSED = np.array([-0.25, 1.45, 0.8, 0.8, 0.0, 1.45, 0.8, 0.8, 0.25, 1.45, 0.8, 0.8,
                        1.3, 0.45, 1.27, 0.0])
PHASES = ("approach", "descend", "close", "lift", "shake", "hold")
NOMINAL_HEADING = np.pi / 2
# Arm posture with the palm down, fingers along +y, low over the table at x~0.55: the IK seed.
TOPDOWN_SEED = (-0.42, 0.91, 0.05, -1.76, 1.21, 1.43, 0.46)


@dataclass(frozen=True)
class GraspTiming:
    """Duration of each phase (s)."""

    approach: float = 3.5  # from home: keeps every arm joint under 45% of its velocity limit (safety allows 50%)
    descend: float = 1.0
    close: float = 0.8
    lift: float = 1.2
    shake: float = 1.0
    hold: float = 3.0

    def boundaries(self) -> dict[str, tuple[float, float]]:
        out, t = {}, 0.0
        for name in PHASES:
            d = float(getattr(self, name))
            out[name] = (t, t + d)
            t += d
        return out


@dataclass(frozen=True)
class GraspGeometry:
    """Where the object sits in the palm frame at the grasp, and the motion sizes (m)."""

    grasp_depth: float = 0.075  # object centre below the palm frame (along the palm normal); tips meet here
    # Object centre along the finger axis (palm z). At 0 the fingers take the far side on their
    # middle phalanges (short lever) and the thumb presses ~20% harder than at -0.015 (toward the
    # thumb, fingertip contact): full effort holds 98% of 0.9-1.5 kg objects instead of 83%.
    centre_offset: float = 0.0
    lateral_offset: float = 0.0  # object centre along palm y (the middle finger's plane)
    pregrasp_height: float = 0.10  # palm above the grasp pose before descending
    lift_height: float = 0.15
    shake_amplitude: tuple[float, float, float] = (0.0, 0.02, 0.015)  # world x, y, z
    shake_cycles: float = 2.0


class GraspPlanError(ValueError):
    """No feasible plan (unreachable pose or bad object description)."""


def min_jerk(s: float | np.ndarray) -> float | np.ndarray:
    """Min-jerk progress (0..1) at normalised time `s` (clipped to 0..1)."""
    s = np.clip(s, 0.0, 1.0) if isinstance(s, np.ndarray) else min(max(s, 0.0), 1.0)  # scalars: the plan's hot path
    return s * s * s * (10 - 15 * s + 6 * s * s)


def object_yaw(quat_wxyz: np.ndarray) -> float:
    """Heading of the object's x axis in the world xy plane (the object stands upright).

    A quaternion off unit length by more than rounding is normalised first; one within it is
    used as it is, so that a yaw does not change in its last bits with the path it took.
    """
    q = np.asarray(quat_wxyz, dtype=float)
    norm = np.linalg.norm(q)
    w, x, y, z = q / norm if abs(norm - 1.0) > 1e-9 else q
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def grasp_heading(shape: str, yaw: float) -> float:
    """Direction the fingers point (world yaw): +y (to the robot's left) or the box face nearest to it.

    Fingers pointing sideways keep the Panda far from its joint limits with the palm down
    over the whole workspace (pointing away from or toward the robot does not). A box is
    gripped across two parallel faces, so the hand turns with it (the face normal closest
    to +y); round objects are gripped with the fingers along +y.
    """
    if shape != "box":
        return NOMINAL_HEADING
    return float(NOMINAL_HEADING + (yaw - NOMINAL_HEADING + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def palm_rotation(heading: float) -> np.ndarray:
    """Palm facing down (palm x = -world z), fingers (palm z) along `heading` in the table plane."""
    x = np.array([0.0, 0.0, -1.0])
    z = np.array([np.cos(heading), np.sin(heading), 0.0])
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


@dataclass
class GraspPlan:
    """Arm keyframes and timing for one grasp; `arm_targets(t)` is the reference at time t."""

    q_start: np.ndarray  # 7 arm joints at the start
    q_pregrasp: np.ndarray
    q_grasp: np.ndarray
    q_lift: np.ndarray
    q_shake: np.ndarray  # lift pose displaced by the shake amplitude
    timing: GraspTiming
    geometry: GraspGeometry
    palm_grasp: pin.SE3 = field(repr=False)
    object_height: float = 0.0  # object's bounding-box height (m)

    @property
    def duration(self) -> float:
        return self.phases()["hold"][1]

    def phases(self) -> dict[str, tuple[float, float]]:
        return self.timing.boundaries()

    def phase_at(self, t: float) -> str:
        for name, (_t0, t1) in self.phases().items():
            if t < t1:
                return name
        return "hold" if t >= 0 else "approach"

    def arm_targets(self, t: float) -> np.ndarray:
        """Arm joint position targets (7, canonical arm order) at plan time t (s)."""
        ph = self.phases()
        if t < ph["approach"][1]:
            return self._blend(self.q_start, self.q_pregrasp, t, ph["approach"])
        if t < ph["descend"][1]:
            return self._blend(self.q_pregrasp, self.q_grasp, t, ph["descend"])
        if t < ph["close"][1]:
            return self.q_grasp.copy()
        if t < ph["lift"][1]:
            return self._blend(self.q_grasp, self.q_lift, t, ph["lift"])
        if t < ph["shake"][1]:
            t0, t1 = ph["shake"]
            s = (t - t0) / (t1 - t0)
            # A sine under a smooth envelope: starts and ends at rest at the lift pose.
            amp = np.sin(np.pi * s) ** 2 * np.sin(2 * np.pi * self.geometry.shake_cycles * s)
            return self.q_lift + amp * (self.q_shake - self.q_lift)
        return self.q_lift.copy()

    @staticmethod
    def _blend(q0: np.ndarray, q1: np.ndarray, t: float, span: tuple[float, float]) -> np.ndarray:
        s = min_jerk((t - span[0]) / max(span[1] - span[0], 1e-9))
        return q0 + s * (q1 - q0)


def _ik(robot: RobotModel, target: pin.SE3, seeds: list[np.ndarray], what: str) -> np.ndarray:
    """IK from each seed in turn; the first that converges wins (seeds ordered by preference)."""
    res = None
    for seed in seeds:
        res = robot.solve_palm_ik(target, seed, tol_pos=5e-4, tol_rot=5e-3, max_iter=300)
        if res.success:
            return res.q
    raise GraspPlanError(f"{what}: palm pose unreachable (position error {res.position_error:.4f} m, "
                         f"rotation error {res.rotation_error:.3f} rad)")


def _grasp_seeds(q_start: np.ndarray, target: pin.SE3, heading: float) -> list[np.ndarray]:
    """The top-down posture turned toward the target: base yaw to its bearing, wrist by the heading."""
    bearing = np.arctan2(target.translation[1], target.translation[0]) - np.arctan2(0.0, 0.55)
    seeds = []
    for wrist_sign in (1.0, -1.0):
        q = q_start.copy()
        q[:N_ARM] = TOPDOWN_SEED
        q[0] += bearing
        q[6] += wrist_sign * (heading - NOMINAL_HEADING)
        seeds.append(q)
    return seeds


def plan_grasp(
    object_position: np.ndarray,
    object_quat_wxyz: np.ndarray,
    shape: str,
    size: tuple[float, ...],
    q_start: np.ndarray,
    robot: RobotModel | None = None,
    timing: GraspTiming | None = None,
    geometry: GraspGeometry | None = None,
) -> GraspPlan:
    """Plan the arm reference for a top-down power grasp of an upright object.

    object_position: object centre in the world (m); q_start: all 23 joints (canonical
    order), the hand part is kept for IK. Raises GraspPlanError if a keyframe is out of reach.
    """
    robot = robot or robot_model()
    timing = timing or GraspTiming()
    geometry = geometry or GraspGeometry()
    pos = np.asarray(object_position, dtype=float)
    q_start = np.asarray(q_start, dtype=float)
    if pos.shape != (3,) or not np.all(np.isfinite(pos)):
        raise GraspPlanError(f"object position must be 3 finite values, got {object_position}")
    if q_start.shape != (len(robot.joint_names),):
        raise GraspPlanError(f"q_start must hold {len(robot.joint_names)} joints, got shape {q_start.shape}")
    expected = {"box": 3, "cylinder": 2, "sphere": 1}
    if shape not in expected:
        raise GraspPlanError(f"unknown object shape {shape!r}; use box, cylinder or sphere")
    size = tuple(float(v) for v in size)
    if len(size) != expected[shape] or not all(np.isfinite(v) and v > 0 for v in size):
        raise GraspPlanError(f"{shape} size needs {expected[shape]} positive values, got {size}")
    half = half_extents(shape, size)
    heading = grasp_heading(shape, object_yaw(object_quat_wxyz))
    rot = palm_rotation(heading)
    # Object centre in the palm frame: at the depth where the thumb and middle fingertips meet.
    centre_in_palm = np.array([geometry.grasp_depth, geometry.lateral_offset,
                               geometry.centre_offset])
    palm_pos = pos - rot @ centre_in_palm
    grasp = pin.SE3(rot, palm_pos)
    up = np.array([0.0, 0.0, 1.0])
    pre = pin.SE3(rot, palm_pos + geometry.pregrasp_height * up)
    lift = pin.SE3(rot, palm_pos + geometry.lift_height * up)
    shake = pin.SE3(rot, palm_pos + geometry.lift_height * up + np.asarray(geometry.shake_amplitude))

    seeds = _grasp_seeds(q_start, grasp, heading)
    q_grasp = _ik(robot, grasp, seeds, "grasp")
    # Later keyframes start from the grasp posture so the arm moves smoothly between them; near
    # the edge of reach that can be a local minimum, so the top-down seeds follow.
    q_pre = _ik(robot, pre, [q_grasp, *seeds], "pre-grasp")
    q_lift = _ik(robot, lift, [q_grasp, *seeds], "lift")
    q_shake = _ik(robot, shake, [q_lift, *seeds], "shake")
    return GraspPlan(
        q_start=q_start[:N_ARM].copy(),
        q_pregrasp=q_pre[:N_ARM].copy(),
        q_grasp=q_grasp[:N_ARM].copy(),
        q_lift=q_lift[:N_ARM].copy(),
        q_shake=q_shake[:N_ARM].copy(),
        timing=timing,
        geometry=geometry,
        palm_grasp=grasp,
        object_height=float(2 * half[2]),
    )
