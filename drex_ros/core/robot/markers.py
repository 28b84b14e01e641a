"""Fiducial markers on the graspable object: layout per shape, and their images.

Every object carries square ArUco markers (dictionary `DICTIONARY`) on flat tiles
glued to its faces. The layout is a pure function of shape and size, so the scene that
draws the markers and the perception that reads them agree without sharing state;
`layout_as_yaml` writes the same layout for config/ (marker id -> pose in the object
frame). A marker's own frame follows OpenCV's convention: origin at the marker centre,
x to the right, y up in the image of the marker, z out of the face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drex_ros.core.robot.objects import half_extents

DICTIONARY = cv2.aruco.DICT_4X4_50
# Fraction of a face's smaller side used by the tile, and of the tile by the black marker.
TILE_FRACTION = 0.9
# A 4x4 marker is 6 cells with its border; one white cell of quiet zone on each side.
MARKER_CELLS = 6
TILE_CELLS = MARKER_CELLS + 2
TEXTURE_PX_PER_CELL = 16


@dataclass(frozen=True)
class MarkerFace:
    """One marker: its id, black-square side (m) and pose in the object frame."""

    marker_id: int
    side: float
    position: np.ndarray  # marker centre in the object frame (m)
    rotation: np.ndarray  # 3x3, columns = marker x, y, z axes in the object frame

    @property
    def tile_side(self) -> float:
        return self.side * TILE_CELLS / MARKER_CELLS


def _frame(normal: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    z = normal / np.linalg.norm(normal)
    x = np.cross(up_hint, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


def marker_layout(shape: str, size: tuple[float, ...], first_id: int = 0) -> list[MarkerFace]:
    """Markers on the six faces (+x, -x, +y, -y, +z, -z) of the object's bounding box.

    Box faces carry the tiles directly; on a cylinder the side tiles are tangent to the
    curved wall, and on a sphere all six are tangent planes. Tiles are visual-only.
    """
    half = half_extents(shape, size)
    faces = []
    axes = np.eye(3)
    for k, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]):
        normal = sign * axes[axis]
        others = [i for i in range(3) if i != axis]
        face_side = 2 * min(half[others])
        if shape != "box" and axis != 2:
            face_side = min(face_side, half[0] * np.sqrt(2))  # keep tangent tiles near the surface
        if shape == "sphere":
            face_side = half[0] * np.sqrt(2) * 0.8
        side = TILE_FRACTION * face_side * MARKER_CELLS / TILE_CELLS
        up = axes[2] if axis != 2 else axes[0]
        faces.append(MarkerFace(first_id + k, side, normal * half[axis], _frame(normal, up)))
    return faces


def marker_texture(marker_id: int) -> np.ndarray:
    """RGB image (uint8, HxWx3) of a marker with its white quiet zone, tile-sized."""
    dictionary = cv2.aruco.getPredefinedDictionary(DICTIONARY)
    inner = MARKER_CELLS * TEXTURE_PX_PER_CELL
    img = cv2.aruco.generateImageMarker(dictionary, marker_id, inner)
    pad = TEXTURE_PX_PER_CELL
    img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    return np.repeat(img[:, :, None], 3, axis=2)


def layout_as_yaml(shape: str, size: tuple[float, ...], first_id: int = 0) -> dict:
    """The layout as plain data (marker id -> side, position, quaternion wxyz)."""
    from scipy.spatial.transform import Rotation

    out = {"dictionary": "DICT_4X4_50", "shape": shape, "size": [float(s) for s in size], "markers": {}}
    for face in marker_layout(shape, size, first_id):
        x, y, z, w = Rotation.from_matrix(face.rotation).as_quat()
        out["markers"][face.marker_id] = {
            "side": float(face.side),
            "position": [float(v) for v in face.position],
            "quaternion_wxyz": [float(w), float(x), float(y), float(z)],
        }
    return out
