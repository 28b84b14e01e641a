"""Rendered RGB-D frames with ground truth, for measuring perception (tests and `drex bench perception`).

Frames come from the real MuJoCo scene; object poses are drawn the way objects rest on
a table: a box on any of its faces, a cylinder upright or upside down, a sphere in any
orientation, each at a random yaw and place in the camera's view of the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from drex_ros.core.robot.objects import half_extents
from drex_ros.core.sim.scene import CameraModel, ObjectConfig, Scene, SceneConfig

SHAPES: dict[str, tuple[float, ...]] = {
    "box": (0.06, 0.06, 0.06),
    "cylinder": (0.035, 0.08),
    "sphere": (0.04,),
}
# Where random objects are placed (world x, y ranges): the table in front of the camera.
WORKSPACE_X = (0.45, 0.65)
WORKSPACE_Y = (-0.12, 0.12)


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray
    depth: np.ndarray
    camera: CameraModel
    position: np.ndarray  # ground-truth object position (world)
    rotation: np.ndarray  # ground-truth world_R_object


def make_scene(shape: str, size: tuple[float, ...] | None = None, config: SceneConfig | None = None) -> Scene:
    config = config or SceneConfig()
    config.object = ObjectConfig(shape=shape, size=tuple(size or SHAPES[shape]))
    return Scene(config)


def resting_pose(shape: str, size: tuple[float, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random (position, world_R_object) of the object lying on the table in view."""
    yaw = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi))
    half = half_extents(shape, size)
    if shape == "box":
        down = [(0, 0), (np.pi / 2, 0), (-np.pi / 2, 0), (0, np.pi / 2), (0, -np.pi / 2), (np.pi, 0)]
        rx, ry = down[rng.integers(len(down))]
        tilt = Rotation.from_euler("xy", [rx, ry])
    elif shape == "cylinder":
        tilt = Rotation.from_euler("x", np.pi * rng.integers(2))
    else:
        tilt = Rotation.random(random_state=rng.integers(1 << 31))
    rot = (yaw * tilt).as_matrix()
    height = half[2] if shape != "box" else float(np.abs(rot[2]) @ half)
    pos = np.array([rng.uniform(*WORKSPACE_X), rng.uniform(*WORKSPACE_Y), height + 1e-4])
    return pos, rot


def set_pose(scene: Scene, position: np.ndarray, rotation: np.ndarray) -> None:
    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    scene.set_object_pose(np.asarray(position, float), np.array([w, x, y, z]))


def render_frame(scene: Scene) -> Frame:
    pos, quat = scene.object_pose()
    rot = Rotation.from_quat([quat[1], quat[2], quat[3], quat[0]]).as_matrix()
    return Frame(scene.render_rgb(), scene.render_depth(), scene.camera_model(), pos, rot)


def pose_error(position: np.ndarray, rotation: np.ndarray, true_position: np.ndarray,
               true_rotation: np.ndarray) -> tuple[float, float]:
    """(position error in mm, rotation error in degrees)."""
    d_pos = float(np.linalg.norm(np.asarray(position) - true_position) * 1e3)
    cos = (np.trace(np.asarray(rotation).T @ true_rotation) - 1) / 2
    return d_pos, float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def hide_markers(scene: Scene) -> None:
    """Paint the marker tiles the object's colour: a markerless object for the depth fallback."""
    m = scene.model
    colour = m.geom_rgba[m.geom("object_geom").id].copy()
    for g in range(m.ngeom):
        if m.geom(g).name.startswith("marker_"):
            m.geom_matid[g] = -1
            m.geom_rgba[g] = colour


def intrinsics_of(camera: CameraModel):
    from drex_ros.core.perception.image_input import Intrinsics

    return Intrinsics(camera.K, np.zeros(5), camera.width, camera.height)


def add_sensor_noise(frame: Frame, rng: np.random.Generator, pixel_noise: float, depth_noise_m: float) -> Frame:
    """Gaussian colour noise (grey levels) and depth noise (m, then rounded to whole mm like a 16UC1 driver)."""
    if pixel_noise <= 0 and depth_noise_m <= 0:
        return frame
    rgb = np.clip(frame.rgb + rng.normal(0.0, pixel_noise, frame.rgb.shape), 0, 255).astype(np.uint8)
    depth = frame.depth + rng.normal(0.0, depth_noise_m, frame.depth.shape).astype(np.float32)
    depth = np.round(depth * 1000.0).astype(np.float32) / 1000.0
    return Frame(rgb, depth, frame.camera, frame.position, frame.rotation)


def evaluate_random_poses(frames_per_shape: int, seed: int = 0, markers: bool = True, progress: bool = False,
                          config: SceneConfig | None = None, pixel_noise: float = 0.0,
                          depth_noise_m: float = 0.0) -> list[dict]:
    """Single-frame pose errors over random resting poses of each shape (the filter restarts per pose).

    Returns one record per frame: shape, status, pos_err_mm, rot_err_deg (NaN when no pose), ms (wall
    clock) and cpu_ms (CPU time of this thread: the cost on one core, whatever else the machine runs).
    With markers=False the tiles are hidden and the depth fallback is measured (rot_err is yaw only).
    """
    import time

    from tqdm import tqdm

    from drex_ros.core.perception.tracker import KNOWN_OBJECTS, Perception, parse_object_markers
    from drex_ros.core.robot.markers import layout_as_yaml

    rng = np.random.default_rng(seed)
    records = []
    bar = tqdm(total=frames_per_shape * len(SHAPES), desc="perception frames", disable=not progress)
    for shape, size in SHAPES.items():
        scene = make_scene(shape, size, config=SceneConfig(camera=config.camera) if config else None)
        if not markers:
            hide_markers(scene)
        name = next((n for n, (s, z) in KNOWN_OBJECTS.items() if s == shape and tuple(z) == tuple(size)), shape)
        obj = parse_object_markers(name, layout_as_yaml(shape, size))
        cam = scene.camera_model()
        perception = Perception(obj, cam.position, cam.rotation)
        intr = intrinsics_of(cam)
        for k in range(frames_per_shape):
            set_pose(scene, *resting_pose(shape, size, rng))
            frame = add_sensor_noise(render_frame(scene), rng, pixel_noise, depth_noise_m)
            perception.filter.reset()
            start, cpu_start = time.perf_counter(), time.thread_time()
            result = perception.process(frame.rgb, frame.depth, intr, float(k))
            ms = (time.perf_counter() - start) * 1e3
            cpu_ms = (time.thread_time() - cpu_start) * 1e3
            pos_err = rot_err = float("nan")
            if result.position is not None and (result.status == "tracking") == markers:
                pos_err, rot_err = pose_error(result.position, result.rotation, frame.position, frame.rotation)
                if not markers:
                    rot_err = _yaw_axis_error(result.rotation, frame.rotation)
            records.append({"shape": shape, "status": result.status, "pos_err_mm": pos_err,
                            "rot_err_deg": rot_err, "ms": ms, "cpu_ms": cpu_ms})
            bar.update()
        scene.close()
    bar.close()
    return records


def _yaw_axis_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Angle (deg) between estimated yaw and the nearest in-plane axis of the true object (mod 90 deg)."""
    yaw_est = np.arctan2(estimate[1, 0], estimate[0, 0])
    yaws = [np.arctan2(truth[1, k], truth[0, k]) for k in range(3) if np.hypot(truth[0, k], truth[1, k]) > 0.5]
    if not yaws:
        return float("nan")
    diffs = [abs((yaw_est - y + np.pi / 4) % (np.pi / 2) - np.pi / 4) for y in yaws]
    return float(np.degrees(min(diffs)))


def noisy_quat(q: np.ndarray, sigma_rad: float, rng: np.random.Generator) -> np.ndarray:
    """q (w, x, y, z) turned by a normal angle of `sigma_rad` about a random axis: a camera's rotation noise."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    ang = sigma_rad * rng.normal()
    w1, x1, y1, z1 = np.cos(ang / 2), *(np.sin(ang / 2) * axis)
    w2, x2, y2, z2 = q
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])
