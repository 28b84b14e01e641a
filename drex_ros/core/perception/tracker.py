"""Object pose from RGB-D: markers first, a depth fallback second, a constant-velocity filter on top.

`Perception.process` takes one colour + depth frame (already decoded by image_input),
and returns a `PerceptionResult` saying what was seen and how much to trust it:
- "tracking": markers gave a pose that passed the filter's gate; publish it as fresh.
- "outlier": markers gave a pose the filter rejected; nothing trustworthy this frame.
- "fallback": no marker readable, the depth + colour blob gave position and yaw only.
- "lost": nothing found. After `lost_after` seconds without markers the filter is
  reset, so a stale track never resurfaces as fresh.
Poses are in the world frame, through the camera extrinsics world_T_optical.

Marker layouts are read from config/markers.yaml (object name -> marker id -> face
pose), which `markers_document` generates from core/robot/markers.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from drex_ros.core.perception.depth_fallback import FallbackSettings, estimate_fallback
from drex_ros.core.perception.image_input import Intrinsics, check_frame
from drex_ros.core.perception.marker_pose import MarkerPoseEstimator, MarkerSettings
from drex_ros.core.perception.pose_filter import FilterSettings, PoseFilter
from drex_ros.core.robot.markers import MarkerFace, layout_as_yaml

DICTIONARIES = {"DICT_4X4_50": cv2.aruco.DICT_4X4_50, "DICT_4X4_100": cv2.aruco.DICT_4X4_100,
                "DICT_5X5_50": cv2.aruco.DICT_5X5_50, "DICT_5X5_100": cv2.aruco.DICT_5X5_100,
                "DICT_6X6_50": cv2.aruco.DICT_6X6_50, "DICT_APRILTAG_36h11": cv2.aruco.DICT_APRILTAG_36h11}
# The objects config/markers.yaml describes: name -> (shape, size). The sim's default object first.
KNOWN_OBJECTS: dict[str, tuple[str, tuple[float, ...]]] = {
    "box_60mm": ("box", (0.06, 0.06, 0.06)),
    "box_50x70x90mm": ("box", (0.05, 0.07, 0.09)),
    "cylinder_r35_h80mm": ("cylinder", (0.035, 0.08)),
    "sphere_r40mm": ("sphere", (0.04,)),
}


# --- marker layouts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectMarkers:
    name: str
    dictionary: int
    faces: dict[int, MarkerFace]


def markers_document() -> dict:
    """The content of config/markers.yaml, generated from the layouts in core/robot/markers.py."""
    return {"objects": {name: layout_as_yaml(shape, size) for name, (shape, size) in KNOWN_OBJECTS.items()}}


def parse_object_markers(name: str, entry: dict) -> ObjectMarkers:
    """One object's entry of markers.yaml -> ObjectMarkers (ValueError says what is wrong)."""
    dictionary = entry.get("dictionary")
    if dictionary not in DICTIONARIES:
        raise ValueError(f"object {name!r}: dictionary {dictionary!r} unknown; use one of {sorted(DICTIONARIES)}")
    faces = {}
    for marker_id, m in (entry.get("markers") or {}).items():
        try:
            w, x, y, z = (float(v) for v in m["quaternion_wxyz"])
            rot = Rotation.from_quat([x, y, z, w]).as_matrix()
            pos = np.array([float(v) for v in m["position"]])
            side = float(m["side"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"object {name!r} marker {marker_id}: needs side, position [3], "
                             f"quaternion_wxyz [4] ({exc})") from exc
        if pos.shape != (3,) or not side > 0:
            raise ValueError(f"object {name!r} marker {marker_id}: position must have 3 values and side be > 0")
        faces[int(marker_id)] = MarkerFace(int(marker_id), side, pos, rot)
    if not faces:
        raise ValueError(f"object {name!r} has no markers")
    return ObjectMarkers(name, DICTIONARIES[dictionary], faces)


def load_object_markers(path: str | os.PathLike, name: str) -> ObjectMarkers:
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    objects = doc.get("objects") or {}
    if name not in objects:
        raise ValueError(f"object {name!r} is not in {path}; known: {sorted(objects)}")
    return parse_object_markers(name, objects[name])


def resolve_object_markers(path: str | os.PathLike, name: str, shape: str = "",
                           size: tuple[float, ...] = ()) -> tuple[ObjectMarkers, str]:
    """The object's markers by name, else by shape + size; returns (markers, where they came from).

    With no name, the file's entry of that shape and size is used; if the file has none,
    the layout core/robot/markers.py gives that object (the one the simulator draws), so any
    sim object can be tracked. A name that is not in the file is an error.
    """
    if name:
        return load_object_markers(path, name), f"{path} [{name}]"
    if not shape:
        raise ValueError("give object_name, or object_shape and object_size")
    with open(path) as f:
        objects = (yaml.safe_load(f) or {}).get("objects") or {}
    for key, entry in objects.items():
        if entry.get("shape") == shape and np.allclose(entry.get("size", []), size, atol=1e-6) \
                and len(entry.get("size", [])) == len(size):
            return parse_object_markers(key, entry), f"{path} [{key}]"
    doc = layout_as_yaml(shape, tuple(size))
    return parse_object_markers(f"{shape}_{'x'.join(f'{v:g}' for v in size)}", doc), "core/robot/markers.py layout"


# --- the pipeline -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PerceptionSettings:
    markers: MarkerSettings = field(default_factory=MarkerSettings)
    filter: FilterSettings = field(default_factory=FilterSettings)
    fallback: FallbackSettings = field(default_factory=FallbackSettings)
    use_fallback: bool = True
    max_stamp_gap: float = 0.02  # s between colour and depth of one frame
    lost_after: float = 0.5  # s without markers before the track is dropped


@dataclass(frozen=True)
class PerceptionResult:
    status: str  # tracking, outlier, fallback, lost
    stamp: float
    position: np.ndarray | None = None  # world
    rotation: np.ndarray | None = None  # world_R_object
    covariance: np.ndarray | None = None  # 6x6 [position, rotation about world axes]
    marker_ids: tuple[int, ...] = ()
    message: str = ""
    velocity: np.ndarray | None = None
    seconds_since_markers: float = float("inf")

    @property
    def fresh_pose(self) -> bool:
        """A trustworthy pose measured in this very frame (what /drex/object_pose carries)."""
        return self.status == "tracking"


class Perception:
    def __init__(self, markers: ObjectMarkers, camera_position: np.ndarray, camera_rotation: np.ndarray,
                 settings: PerceptionSettings | None = None) -> None:
        """camera_position, camera_rotation: world_T_optical (OpenCV optical frame)."""
        self.settings = settings or PerceptionSettings()
        self.markers = markers
        self.estimator = MarkerPoseEstimator(markers.faces, markers.dictionary, self.settings.markers)
        self.filter = PoseFilter(self.settings.filter)
        self.set_extrinsics(camera_position, camera_rotation)
        self._last_marker_stamp: float | None = None
        self._last_xy: np.ndarray | None = None

    def set_extrinsics(self, position: np.ndarray, rotation: np.ndarray) -> None:
        rotation = np.asarray(rotation, dtype=float)
        if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) \
                or np.linalg.det(rotation) < 0:
            raise ValueError("camera rotation must be a proper 3x3 rotation matrix")
        position = np.asarray(position, dtype=float)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError("camera position must be 3 finite numbers")
        self.world_R_cam, self.world_t_cam = rotation, position
        self.filter.reset()

    def process(self, rgb: np.ndarray, depth: np.ndarray, intr: Intrinsics | None, color_stamp: float,
                depth_stamp: float | None = None) -> PerceptionResult:
        """One frame. Raises image_input.ImageInputError for frames that cannot be interpreted."""
        st = self.settings
        check_frame(rgb, depth, intr, color_stamp, color_stamp if depth_stamp is None else depth_stamp,
                    st.max_stamp_gap)
        stamp = color_stamp
        if self._last_marker_stamp is not None and stamp < self._last_marker_stamp:
            self._last_marker_stamp = None  # time went backwards (sim reset): old tracks mean nothing
            self.filter.reset()
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        measured = self.estimator.estimate(gray, depth, intr)
        if measured is not None:
            return self._fuse_markers(stamp, measured)
        since = np.inf if self._last_marker_stamp is None else stamp - self._last_marker_stamp
        if since > st.lost_after:
            self.filter.reset()
        message = "no marker seen" + ("" if not np.isfinite(since) else f" for {since:.2f} s")
        if st.use_fallback:
            fb = estimate_fallback(rgb, depth, intr, self.world_R_cam, self.world_t_cam, st.fallback, self._last_xy)
            if fb is not None:
                rot = Rotation.from_euler("z", fb.yaw).as_matrix()
                return PerceptionResult("fallback", stamp, fb.position, rot, fb.covariance,
                                        message=message + "; depth fallback (position and yaw only)",
                                        seconds_since_markers=since)
        return PerceptionResult("lost", stamp, message=message + "; no object found", seconds_since_markers=since)

    def _fuse_markers(self, stamp: float, measured) -> PerceptionResult:
        R_wc, t_wc = self.world_R_cam, self.world_t_cam
        position = R_wc @ measured.translation + t_wc
        rotation = R_wc @ measured.rotation
        B = np.kron(np.eye(2), R_wc)
        cov = B @ measured.covariance @ B.T
        filtered = self.filter.update(stamp, position, rotation, cov)
        self._last_marker_stamp = stamp
        if filtered is None:
            return PerceptionResult("outlier", stamp, position, rotation, cov, measured.marker_ids,
                                    message="marker pose jumped beyond the filter's gate; not used",
                                    seconds_since_markers=0.0)
        self._last_xy = filtered.position[:2]
        return PerceptionResult("tracking", stamp, filtered.position, filtered.rotation,
                                filtered.covariance, measured.marker_ids,
                                message=f"markers {list(measured.marker_ids)}, reprojection "
                                        f"{measured.rms_reproj_px:.2f} px", velocity=filtered.velocity,
                                seconds_since_markers=0.0)
