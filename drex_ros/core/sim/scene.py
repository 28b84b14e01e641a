"""The simulated world at run time: stepping, joint I/O, object state, RGB-D rendering.

`Scene` wraps one MjModel/MjData built by `scene_build`. Joint arrays are in the
canonical order of `robot.JOINT_NAMES`; poses are position + quaternion (w, x, y, z)
in the world frame. The camera is reported in the optical (OpenCV) convention: z
forward, x right, y down, which is what CameraInfo and PnP expect.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import mujoco
import numpy as np

from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.core.sim.reality import N_ARM_LINKS, Reality
from drex_ros.core.sim.scene_build import (
    CameraConfig,
    ObjectConfig,
    SceneConfig,
    build_spec,
    object_inertia,
)

__all__ = ["CameraConfig", "ObjectConfig", "Scene", "SceneConfig", "CameraModel"]

# MuJoCo cameras look along -z with y up; OpenCV's optical frame has z forward, y down.
MUJOCO_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class CameraModel:
    """Pinhole intrinsics and the optical frame's world pose."""

    width: int
    height: int
    K: np.ndarray  # 3x3
    position: np.ndarray  # camera centre in world
    rotation: np.ndarray  # 3x3 world_R_optical


class NominalGravity:
    """Gravity torques of the nominal robot model at a joint configuration: what the drivers'
    gravity compensation applies, whatever the real arm weighs."""

    def __init__(self, config: SceneConfig) -> None:
        self.model = build_spec(replace(config, reality=None)).compile()
        self.data = mujoco.MjData(self.model)
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._dof = np.array([self.model.joint(n).dofadr[0] for n in JOINT_NAMES])
        self._out = np.zeros(self.model.nv)

    def torques(self, q: np.ndarray) -> np.ndarray:
        """(23,) N*m in JOINT_NAMES order."""
        d = self.data
        d.qpos[self._qpos] = q
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)
        d.qvel[:] = 0.0
        d.cvel[:] = 0.0
        d.cdof_dot[:] = 0.0
        mujoco.mj_rne(self.model, d, 0, self._out)
        return self._out[self._dof].copy()


class Scene:
    """Robot + table + object in MuJoCo, driven by joint position targets."""

    def __init__(self, config: SceneConfig | None = None) -> None:
        self.config = config or SceneConfig()
        self.model = build_spec(self.config).compile()
        self.data = mujoco.MjData(self.model)
        self._qpos_adr = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._dof_adr = np.array([self.model.joint(n).dofadr[0] for n in JOINT_NAMES])
        self._act = np.array([self.model.actuator(n).id for n in JOINT_NAMES])
        self._object_body = self.model.body("object").id
        obj_joint = self.model.joint("object_free")
        self._obj_qpos = obj_joint.qposadr[0]
        self._obj_dof = obj_joint.dofadr[0]
        self._camera = self.model.camera("rgbd").id
        self._nominal_camera = (self.model.cam_pos[self._camera].copy(), self.model.cam_quat[self._camera].copy())
        self._renderer: mujoco.Renderer | None = None
        self.reality: Reality | None = self.config.reality
        if self.reality is not None:
            self.reality.validate()
        self._gravity = None  # the drivers' gravity model, where the physics does not compensate it
        if self.reality is not None and self.model.body_gravcomp[self.model.body("panda_link1").id] == 0:
            self._gravity = NominalGravity(self.config)
        self._effort_rng = np.random.default_rng(self.reality.seed if self.reality else 0)
        self.reset()

    # --- state -------------------------------------------------------------------------
    def reset(self, q: np.ndarray | None = None) -> None:
        """Robot at `q` (default home) holding that pose, object at its configured pose."""
        mujoco.mj_resetData(self.model, self.data)
        q = robot_model().home() if q is None else np.asarray(q, dtype=float)
        self.data.qpos[self._qpos_adr] = q
        self.data.ctrl[self._act] = q
        cfg = self.config.object
        self.data.qpos[self._obj_qpos:self._obj_qpos + 3] = cfg.initial_position()
        self.data.qpos[self._obj_qpos + 3:self._obj_qpos + 7] = [np.cos(cfg.yaw / 2), 0, 0, np.sin(cfg.yaw / 2)]
        delay = 0 if self.reality is None else int(round(self.reality.actuator_delay / self.timestep))
        self._commanded = self.data.ctrl[self._act].copy()
        self._queue: deque[np.ndarray] = deque([self._commanded.copy()] * (delay + 1), maxlen=delay + 1)
        mujoco.mj_forward(self.model, self.data)

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def set_targets(self, q_target: np.ndarray) -> None:
        """Position targets for all joints (clipped to the actuators' control range); a real
        cell's motors get them `reality.actuator_delay` later."""
        self._commanded = np.asarray(q_target, dtype=float).copy()
        if self.reality is None:
            self.data.ctrl[self._act] = q_target

    def set_effort_limits(self, efforts: np.ndarray) -> None:
        """Per-joint motor torque limits (N*m), e.g. a grip effort; never above the hardware's."""
        hardware = robot_model().limits.effort
        efforts = np.clip(np.nan_to_num(efforts, nan=np.inf), 0.0, hardware)
        self.model.actuator_forcerange[self._act] = np.column_stack([-efforts, efforts])

    def targets(self) -> np.ndarray:
        return self.data.ctrl[self._act].copy() if self.reality is None else self._commanded.copy()

    def step(self, n: int = 1) -> None:
        if self.reality is None:
            mujoco.mj_step(self.model, self.data, nstep=n)
            return
        for _ in range(n):  # the real cell's drivers act on every physics step
            self._queue.append(self._commanded)
            self.data.ctrl[self._act] = self._queue[0]
            if self._gravity is not None:
                self.data.qfrc_applied[self._dof_adr] = self._gravity.torques(self.joint_positions())
            mujoco.mj_step(self.model, self.data)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._dof_adr].copy()

    def joint_efforts(self) -> np.ndarray:
        """What the drivers report: the motor torques beyond gravity compensation; in a real cell
        (reality.py) as its sensors see them - with or without gravity, friction, offsets, noise."""
        motor = self.data.actuator_force[self._act].copy()
        return motor if self.reality is None else self._sensed(motor)

    def _sensed(self, motor: np.ndarray) -> np.ndarray:
        r = self.reality
        out = motor
        if r.friction_side == "link_side":  # the sensor sits after the gearbox: friction hidden
            out = out + (1.0 - r.link_friction_share) * self.joint_friction()
        if r.effort_semantics == "with_gravity":
            out = out + self._gravity.torques(self.joint_positions())
        arm = slice(0, N_ARM_LINKS)
        out[arm] += np.asarray(r.effort_offset) + self._effort_rng.normal(0.0, 1.0, N_ARM_LINKS) * r.effort_noise
        return out

    def joint_friction(self) -> np.ndarray:
        """(23,) N*m the reality's added joint friction and damping exert on the joints (opposing
        the motion; the URDF's own small damping is the nominal model's, not a sensing matter)."""
        d, m = self.data, self.model
        force = np.zeros(m.nv)
        damping = m.dof_damping[self._dof_adr[:N_ARM_LINKS]]
        added = np.asarray(self.reality.joint_damping)
        force[self._dof_adr[:N_ARM_LINKS]] = d.qfrc_damper[self._dof_adr[:N_ARM_LINKS]] * added / np.maximum(damping,
                                                                                                         1e-12)
        rows = np.flatnonzero(d.efc_type[:d.nefc] == mujoco.mjtConstraint.mjCNSTR_FRICTION_DOF)
        np.add.at(force, d.efc_id[rows], d.efc_force[rows])
        return force[self._dof_adr]

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        q = self.data.qpos
        return q[self._obj_qpos:self._obj_qpos + 3].copy(), q[self._obj_qpos + 3:self._obj_qpos + 7].copy()

    def object_squeeze(self) -> float:
        """Total normal force (N) of the robot's contacts on the object, the table's excluded:
        what a crushable object must survive."""
        m, d, wrench, total = self.model, self.data, np.zeros(6), 0.0
        for i in range(d.ncon):
            bodies = m.geom_bodyid[d.contact.geom1[i]], m.geom_bodyid[d.contact.geom2[i]]
            if self._object_body in bodies and 0 not in bodies:  # body 0 is the world: table, floor
                mujoco.mj_contactForce(m, d, i, wrench)
                total += abs(wrench[0])
        return total

    def set_object_pose(self, position: np.ndarray, quat_wxyz: np.ndarray) -> None:
        self.data.qpos[self._obj_qpos:self._obj_qpos + 3] = position
        self.data.qpos[self._obj_qpos + 3:self._obj_qpos + 7] = quat_wxyz
        self.data.qvel[self._obj_dof:self._obj_dof + 6] = 0
        mujoco.mj_forward(self.model, self.data)

    def set_object_mass(self, mass: float) -> None:
        """Change the object's mass in place: inertia scaled, derived constants recomputed."""
        if not (mass > 0 and np.isfinite(mass)):
            raise ValueError(f"object mass must be positive, got {mass}")
        cfg = self.config.object
        self.model.body_mass[self._object_body] = mass
        self.model.body_inertia[self._object_body] = object_inertia(cfg.shape, cfg.size, mass)
        mujoco.mj_setConst(self.model, self.data)
        cfg.mass = mass

    def frame_position(self, body_name: str) -> np.ndarray:
        return self.data.xpos[self.model.body(body_name).id].copy()

    # --- camera ------------------------------------------------------------------------
    def camera_model(self, nominal: bool = False) -> CameraModel:
        """Intrinsics and the camera's world pose: the true one, or the nominal (calibrated) one."""
        cam: CameraConfig = self.config.camera
        fy = (cam.height / 2) / np.tan(np.deg2rad(self.model.cam_fovy[self._camera]) / 2)
        K = np.array([[fy, 0, (cam.width - 1) / 2], [0, fy, (cam.height - 1) / 2], [0, 0, 1]])
        if nominal:
            position, quat = self._nominal_camera
            mat = np.zeros(9)
            mujoco.mju_quat2Mat(mat, quat)
            return CameraModel(cam.width, cam.height, K, position.copy(), mat.reshape(3, 3) @ MUJOCO_TO_OPTICAL)
        rot = self.data.cam_xmat[self._camera].reshape(3, 3) @ MUJOCO_TO_OPTICAL
        return CameraModel(cam.width, cam.height, K, self.data.cam_xpos[self._camera].copy(), rot)

    def offset_camera(self, position_offset: np.ndarray, rotation_vector: np.ndarray) -> None:
        """Move the rendering camera away from its nominal pose (a miscalibrated real camera)."""
        nominal_pos, nominal_quat = self._nominal_camera
        delta = np.zeros(4)
        mujoco.mju_axisAngle2Quat(delta, rotation_vector / (np.linalg.norm(rotation_vector) or 1.0),
                                  float(np.linalg.norm(rotation_vector)))
        quat = np.zeros(4)
        mujoco.mju_mulQuat(quat, delta, nominal_quat)
        self.model.cam_pos[self._camera] = nominal_pos + position_offset
        self.model.cam_quat[self._camera] = quat
        mujoco.mj_forward(self.model, self.data)

    def _get_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            cam = self.config.camera
            self._renderer = mujoco.Renderer(self.model, cam.height, cam.width)
        return self._renderer

    def render_rgb(self) -> np.ndarray:
        """HxWx3 uint8 colour image from the RGB-D camera."""
        renderer = self._get_renderer()
        renderer.disable_depth_rendering()
        renderer.update_scene(self.data, camera=self._camera)
        return renderer.render().copy()

    def render_depth(self) -> np.ndarray:
        """HxW float32 depth (m along the optical axis) from the RGB-D camera."""
        renderer = self._get_renderer()
        renderer.enable_depth_rendering()
        renderer.update_scene(self.data, camera=self._camera)
        depth = renderer.render().astype(np.float32)
        renderer.disable_depth_rendering()
        return depth

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
