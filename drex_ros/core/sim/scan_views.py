"""Depth views of an object on the table for reconstruction: the fixed scene camera and a scan ring.

The scan ring is where a D405-class camera on the hand mount would look from on a scan around the
object: standoff poses on rings of given elevations, each looking at the object's centre. The
poses are computed geometrically here; driving the arm through them via the command chain and
taking the wrist camera's pose from the robot model (hand-eye transform, forward kinematics) is
the next step, and is what `drex scan` will record. The world here is only the table and the
object (no robot), which is what those views see once the hand is clear of the object.

Depth carries sensor-like faults: Gaussian noise of ~1 % of depth and no reading at depth edges
(where a stereo sensor's matching fails) or beyond the sensor's range.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from drex_ros.core.sim.scan_objects import ScanObject
from drex_ros.core.sim.scene import MUJOCO_TO_OPTICAL
from drex_ros.core.sim.scene_build import TABLE_CENTER, TABLE_SIZE, CameraConfig, look_at_quat

_GEOM = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
         "sphere": mujoco.mjtGeom.mjGEOM_SPHERE}


@dataclass(frozen=True)
class DepthCamera:
    """A pinhole depth camera: image size and vertical field of view; range in metres."""

    width: int
    height: int
    fovy_deg: float
    min_range: float
    max_range: float

    def K(self) -> np.ndarray:
        f = (self.height / 2) / np.tan(np.deg2rad(self.fovy_deg) / 2)
        return np.array([[f, 0, (self.width - 1) / 2], [0, f, (self.height - 1) / 2], [0, 0, 1]])


# D405: ~87 x 58 deg, 7-50 cm ideal range; 424x240 is one of its depth modes.
WRIST_D405 = DepthCamera(424, 240, 58.0, 0.07, 0.6)
SCENE = CameraConfig()
SCENE_CAMERA = DepthCamera(SCENE.width, SCENE.height, SCENE.fovy_deg, 0.1, 2.0)


@dataclass(frozen=True)
class View:
    depth: np.ndarray  # HxW float32 m, 0 = no reading
    K: np.ndarray
    world_T_camera: np.ndarray  # 4x4, optical frame
    source: str


def look_at_pose(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 world_T_camera (optical frame) of a camera at `position` looking at `target`."""
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, look_at_quat(np.asarray(position, float), np.asarray(target, float)))
    T = np.eye(4)
    T[:3, :3] = rot.reshape(3, 3) @ MUJOCO_TO_OPTICAL
    T[:3, 3] = position
    return T


def scan_ring(centre: np.ndarray, standoff: float = 0.25, elevations_deg: tuple[float, ...] = (30.0, 60.0),
              per_ring: int = 8, start_deg: float = 0.0) -> list[np.ndarray]:
    """Camera poses on rings around `centre` at `standoff` metres, looking at it."""
    poses = []
    for k, elev in enumerate(np.deg2rad(elevations_deg)):
        for az in np.deg2rad(start_deg) + (np.arange(per_ring) + 0.5 * k) * 2 * np.pi / per_ring:
            offset = standoff * np.array([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az), np.sin(elev)])
            poses.append(look_at_pose(centre + offset, centre))
    return poses


def scene_camera_pose() -> np.ndarray:
    return look_at_pose(np.asarray(SCENE.position, float), np.asarray(SCENE.look_at, float))


def _world_spec(obj: ScanObject, position: tuple[float, float], yaw: float) -> mujoco.MjSpec:
    spec = mujoco.MjSpec()
    spec.visual.global_.offwidth = max(SCENE_CAMERA.width, WRIST_D405.width)
    spec.visual.global_.offheight = max(SCENE_CAMERA.height, WRIST_D405.height)
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=list(TABLE_SIZE),
                            pos=[*TABLE_CENTER, -TABLE_SIZE[2]], rgba=[0.5, 0.4, 0.3, 1])
    body = spec.worldbody.add_body(name="object", pos=[*position, 0.0], quat=[np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    for part in obj.parts:
        size = list(part.half) + [0.0] * (3 - len(part.half))
        body.add_geom(type=_GEOM[part.kind], size=size, pos=list(part.pos), rgba=[0.9, 0.9, 0.9, 1])
    spec.worldbody.add_camera(name="view", pos=[0, 0, 1])
    spec.worldbody.add_light(pos=[0.5, 0.0, 2.0], dir=[0, 0, -1], diffuse=[0.7, 0.7, 0.7], castshadow=False)
    return spec


class ScanWorld:
    """The table with one object on it, rendered as depth from any camera pose."""

    def __init__(self, obj: ScanObject, position: tuple[float, float] = (0.55, 0.0), yaw: float = 0.0) -> None:
        self.object, self.position, self.yaw = obj, position, yaw
        self.model = _world_spec(obj, position, yaw).compile()
        self.data = mujoco.MjData(self.model)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def object_T_world(self) -> np.ndarray:
        """4x4 taking world points into the object frame (truth, for evaluation)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        T = np.eye(4)
        T[:3, :3] = [[c, s, 0], [-s, c, 0], [0, 0, 1]]
        T[:3, 3] = -T[:3, :3] @ np.array([*self.position, 0.0])
        return T

    def render_depth(self, camera: DepthCamera, world_T_camera: np.ndarray) -> np.ndarray:
        """Noise-free HxW float32 depth (m along the optical axis) from a camera pose."""
        key = (camera.height, camera.width)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, camera.height, camera.width)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, (world_T_camera[:3, :3] @ MUJOCO_TO_OPTICAL).flatten())
        self.model.cam_pos[0], self.model.cam_quat[0] = world_T_camera[:3, 3], quat
        self.model.cam_fovy[0] = camera.fovy_deg
        mujoco.mj_forward(self.model, self.data)
        renderer = self._renderers[key]
        renderer.enable_depth_rendering()
        renderer.update_scene(self.data, camera=0)
        depth = renderer.render().astype(np.float32)
        depth[(depth < camera.min_range) | (depth > camera.max_range)] = 0.0
        return depth

    def view(self, camera: DepthCamera, world_T_camera: np.ndarray, source: str,
             rng: np.random.Generator | None = None, relative_noise: float = 0.01) -> View:
        depth = self.render_depth(camera, world_T_camera)
        if rng is not None:
            depth = sensor_depth(depth, rng, relative_noise)
        return View(depth, camera.K(), world_T_camera.copy(), source)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def sensor_depth(depth: np.ndarray, rng: np.random.Generator, relative_noise: float = 0.01,
                 edge_jump: float = 0.03) -> np.ndarray:
    """Depth as a stereo sensor returns it: noise of `relative_noise` x depth (1 sigma), and no
    reading where a neighbour differs by more than `edge_jump` x depth, grown by one pixel."""
    d = depth.astype(np.float32)
    pad = np.pad(d, 1, mode="edge")
    jump = np.zeros(d.shape, bool)
    for dv, du in ((0, 1), (2, 1), (1, 0), (1, 2)):
        jump |= np.abs(pad[dv:dv + d.shape[0], du:du + d.shape[1]] - d) > edge_jump * np.maximum(d, 1e-3)
    grown = np.pad(jump, 1)
    edge = np.zeros_like(jump)
    for dv in range(3):
        for du in range(3):
            edge |= grown[dv:dv + d.shape[0], du:du + d.shape[1]]
    noisy = d * (1.0 + relative_noise * rng.standard_normal(d.shape).astype(np.float32))
    return np.where(edge | (d <= 0), 0.0, noisy).astype(np.float32)


def scan_views(world: ScanWorld, rng: np.random.Generator | None, standoff: float = 0.25,
               per_ring: int = 8, elevations_deg: tuple[float, ...] = (30.0, 60.0)) -> list[View]:
    """The scene camera's view and a wrist scan ring around the object's (known, rough) position."""
    centre = np.array([*world.position, 0.04])
    views = [world.view(SCENE_CAMERA, scene_camera_pose(), "scene", rng)]
    for i, pose in enumerate(scan_ring(centre, standoff, elevations_deg, per_ring)):
        views.append(world.view(WRIST_D405, pose, f"wrist_{i:02d}", rng))
    return views
