"""Build the MuJoCo world: the Panda + Allegro on a table, one marker-textured object, an RGB-D camera.

World frame: origin at the robot base on the table top, z up, the workspace at +x.
The robot comes from the same composed URDF that pinocchio loads. Joints are driven
by position actuators with PD gains and effort limits of the real hardware's order of
magnitude (Franka's joint-impedance gains, Allegro ~0.7 N*m), with gravity compensated
as the real drivers do, so contact makes the hand comply rather than be infinitely stiff.
All joint arrays are in the canonical order of `robot.JOINT_NAMES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from drex_ros.core.robot.description import robot_urdf
from drex_ros.core.robot.markers import marker_layout, marker_texture
from drex_ros.core.robot.model import ARM_JOINTS, JOINT_NAMES, robot_model
from drex_ros.core.robot.objects import half_extents
from drex_ros.core.sim import reality as real
from drex_ros.core.sim.reality import Reality

TIMESTEP = 0.002
ARM_KP = (600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0)
ARM_KD = (50.0, 50.0, 50.0, 50.0, 30.0, 25.0, 15.0)
HAND_KP = 3.0
HAND_KD = 0.1
ARM_ARMATURE = 0.1
HAND_ARMATURE = 0.002
# Contact groups: robot geoms never touch each other, everything else touches all.
ROBOT_CONTYPE, ROBOT_CONAFFINITY = 2, 1
WORLD_CONTYPE, WORLD_CONAFFINITY = 1, 3
TABLE_SIZE = (0.7, 0.6, 0.02)  # half extents
TABLE_CENTER = (0.45, 0.0)


@dataclass
class ObjectConfig:
    """The graspable object. size: box (x, y, z), cylinder (radius, height), sphere (radius,) in m."""

    shape: str = "box"
    size: tuple[float, ...] = (0.06, 0.06, 0.06)
    mass: float = 0.3
    friction: float = 0.6
    position: tuple[float, float] = (0.55, 0.0)  # x, y on the table; z follows from the size
    yaw: float = 0.0

    def validate(self) -> None:
        expected = {"box": 3, "cylinder": 2, "sphere": 1}
        if self.shape not in expected:
            raise ValueError(f"unknown object shape {self.shape!r}; use box, cylinder or sphere")
        if len(self.size) != expected[self.shape] or min(self.size) <= 0:
            raise ValueError(f"{self.shape} size needs {expected[self.shape]} positive values, got {self.size}")
        if not (self.mass > 0 and np.isfinite(self.mass)):
            raise ValueError(f"object mass must be positive, got {self.mass}")
        if not (self.friction > 0 and np.isfinite(self.friction)):
            raise ValueError(f"object friction must be positive, got {self.friction}")

    def initial_position(self) -> np.ndarray:
        return np.array([*self.position, half_extents(self.shape, self.size)[2] + 1e-4])


@dataclass
class CameraConfig:
    """Fixed RGB-D camera looking at the workspace."""

    width: int = 640
    height: int = 480
    fovy_deg: float = 50.0
    position: tuple[float, float, float] = (0.85, -0.32, 0.38)
    look_at: tuple[float, float, float] = (0.55, 0.0, 0.03)


@dataclass
class SceneConfig:
    object: ObjectConfig = field(default_factory=ObjectConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    timestep: float = TIMESTEP
    # How the simulated cell differs from the nominal model (reality.py); None: it does not. The
    # identifier builds its replays from its own SceneConfig, which never carries one.
    reality: Reality | None = None


def joint_gains() -> dict[str, dict[str, float]]:
    """{joint: {"kp", "kd"}} of the simulated position actuators: what policy_node checks a
    model's training gains against when no real robot's gains are configured."""
    arm = {j: {"kp": ARM_KP[i], "kd": ARM_KD[i]} for i, j in enumerate(ARM_JOINTS)}
    return {**arm, **{j: {"kp": HAND_KP, "kd": HAND_KD} for j in JOINT_NAMES if j not in ARM_JOINTS}}


def object_inertia(shape: str, size: tuple[float, ...], mass: float) -> np.ndarray:
    """Principal moments of a solid box, cylinder or sphere (kg*m^2)."""
    if shape == "box":
        x, y, z = size
        return mass / 12 * np.array([y * y + z * z, x * x + z * z, x * x + y * y])
    if shape == "cylinder":
        r, h = size
        side = mass * (3 * r * r + h * h) / 12
        return np.array([side, side, mass * r * r / 2])
    r = size[0]
    return np.full(3, 0.4 * mass * r * r)


def look_at_quat(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo camera quaternion (wxyz): camera looks along -z with +y up."""
    back = position - target
    back /= np.linalg.norm(back)
    right = np.cross(np.array([0.0, 0.0, 1.0]), back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, up, back]).flatten())
    return quat


def _robot_spec() -> mujoco.MjSpec:
    """The robot from the composed URDF, with actuators; the rest of the world is added to it."""
    spec = mujoco.MjSpec.from_string(robot_urdf())
    spec.compiler.discardvisual = False  # the URDF has no visuals left; keep marker tiles
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = ROBOT_CONTYPE, ROBOT_CONAFFINITY
        geom.rgba = [0.85, 0.85, 0.88, 1.0] if geom.parent.name.startswith("panda") else [0.15, 0.15, 0.15, 1.0]
    for body in spec.bodies:
        body.gravcomp = 1.0
    limits = robot_model().limits
    gains = joint_gains()
    for i, name in enumerate(JOINT_NAMES):
        arm = name in ARM_JOINTS
        joint = spec.joint(name)
        joint.armature = ARM_ARMATURE if arm else HAND_ARMATURE
        kp, kd = gains[name]["kp"], gains[name]["kd"]
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.gainprm[0] = kp
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.biasprm[:3] = [0.0, -kp, -kd]
        act.ctrlrange = [limits.lower[i], limits.upper[i]]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-limits.effort[i], limits.effort[i]]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    return spec


def _add_table(spec: mujoco.MjSpec) -> None:
    spec.worldbody.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=list(TABLE_SIZE),
        pos=[*TABLE_CENTER, -TABLE_SIZE[2]],
        rgba=[0.55, 0.45, 0.35, 1.0],
        friction=[0.5, 0.005, 0.0001],
        contype=WORLD_CONTYPE,
        conaffinity=WORLD_CONAFFINITY,
    )
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1], pos=[0, 0, -0.75],
                            rgba=[0.3, 0.3, 0.32, 1], contype=0, conaffinity=0)


def _add_marker_tiles(spec: mujoco.MjSpec, body: mujoco.MjsBody, cfg: ObjectConfig) -> None:
    for face in marker_layout(cfg.shape, cfg.size):
        tex_name = f"marker_tex_{face.marker_id}"
        img = marker_texture(face.marker_id)
        tex = spec.add_texture(name=tex_name, type=mujoco.mjtTexture.mjTEXTURE_2D, width=img.shape[1],
                               height=img.shape[0], nchannel=3)
        tex.data = img.tobytes()  # MuJoCo maps rows as given: no flip
        mat = spec.add_material(name=f"marker_mat_{face.marker_id}")
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex_name
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, face.rotation.flatten())
        half = face.tile_side / 2
        thickness = 2e-4
        body.add_geom(
            name=f"marker_{face.marker_id}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[half, half, thickness],
            pos=face.position + face.rotation[:, 2] * thickness,
            quat=quat,
            material=mat.name,
            contype=0,
            conaffinity=0,
            mass=0.0,
            group=1,
        )


def _add_object(spec: mujoco.MjSpec, cfg: ObjectConfig, reality: Reality | None = None) -> None:
    cfg.validate()
    body = spec.worldbody.add_body(name="object", pos=cfg.initial_position())
    body.quat = [np.cos(cfg.yaw / 2), 0, 0, np.sin(cfg.yaw / 2)]
    body.add_freejoint(name="object_free")
    body.explicitinertial = True
    body.ipos = [0.0, 0.0, 0.0]
    body.iquat = [1.0, 0.0, 0.0, 0.0]
    body.mass = cfg.mass
    body.inertia = object_inertia(cfg.shape, cfg.size, cfg.mass)
    geom_type = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
                 "sphere": mujoco.mjtGeom.mjGEOM_SPHERE}[cfg.shape]
    half = half_extents(cfg.shape, cfg.size)
    geom_size = {"box": half, "cylinder": [half[0], half[2], 0], "sphere": [half[0], 0, 0]}[cfg.shape]
    geom = body.add_geom(
        name="object_geom",
        type=geom_type,
        size=list(geom_size),
        rgba=[0.9, 0.9, 0.9, 1.0],
        friction=[cfg.friction, 0.005, 0.0001],
        condim=4,
        priority=1,  # the object's friction governs all of its contacts
        contype=WORLD_CONTYPE,
        conaffinity=WORLD_CONAFFINITY,
    )
    if reality is not None:
        real.apply_object(body, geom, half, reality)
    _add_marker_tiles(spec, body, cfg)


def _add_camera_and_lights(spec: mujoco.MjSpec, cam: CameraConfig) -> None:
    pos = np.asarray(cam.position, dtype=float)
    spec.worldbody.add_camera(name="rgbd", pos=pos, quat=look_at_quat(pos, np.asarray(cam.look_at, float)),
                              fovy=cam.fovy_deg)
    spec.worldbody.add_light(pos=[0.5, 0.0, 2.0], dir=[0, 0, -1], diffuse=[0.7, 0.7, 0.7], castshadow=False)
    spec.worldbody.add_light(pos=[1.5, -1.0, 1.5], dir=[-1, 0.7, -1], diffuse=[0.35, 0.35, 0.35],
                             castshadow=False)


def build_spec(config: SceneConfig) -> mujoco.MjSpec:
    """The scene as an editable MjSpec (mass identification edits and recompiles it)."""
    spec = _robot_spec()
    spec.modelname = "drex_scene"
    spec.option.timestep = config.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.visual.global_.offwidth = max(640, config.camera.width)
    spec.visual.global_.offheight = max(480, config.camera.height)
    _add_table(spec)
    _add_object(spec, config.object, config.reality)
    if config.reality is not None:
        real.apply_robot(spec, config.reality)
        real.apply_physics(spec, config.reality)
    _add_camera_and_lights(spec, config.camera)
    return spec
