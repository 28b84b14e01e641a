"""One depth frame with what fusion needs to place it: pinhole intrinsics and the camera's world pose.

Poses are 4x4 world_T_camera in the optical convention (z forward, x right, y down), the same
as `sim.scene.CameraModel`; depth is float32 metres along the optical axis, 0 where invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class ReconstructionError(RuntimeError):
    """The input cannot give an object model (no frames, nothing left after the table, ...)."""


@dataclass(frozen=True)
class DepthFrame:
    depth: np.ndarray  # HxW float32 m, 0 = no measurement
    K: np.ndarray  # 3x3
    world_T_camera: np.ndarray  # 4x4, optical frame
    rgb: np.ndarray | None = None  # HxWx3 uint8, optional (only drawn in the PNG)
    source: str = ""  # e.g. "scene" or "wrist_03", for the summary and the figure

    def validate(self) -> None:
        if self.depth.ndim != 2 or self.K.shape != (3, 3) or self.world_T_camera.shape != (4, 4):
            raise ReconstructionError(f"frame {self.source!r}: depth must be HxW, K 3x3 and the pose 4x4")
        if not np.isfinite(self.world_T_camera).all():
            raise ReconstructionError(f"frame {self.source!r}: camera pose is not finite")


def pose_matrix(position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """4x4 from a position and a 3x3 rotation."""
    T = np.eye(4)
    T[:3, :3] = rotation
    T[:3, 3] = position
    return T


def backproject(frame: DepthFrame, stride: int = 1) -> np.ndarray:
    """(N, 3) world points of the valid pixels, every `stride`-th pixel in each direction."""
    depth = frame.depth[::stride, ::stride]
    v, u = np.nonzero(depth > 0)
    z = depth[v, u]
    u, v = u * stride, v * stride
    K = frame.K
    cam = np.column_stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z])
    T = frame.world_T_camera
    return cam @ T[:3, :3].T + T[:3, 3]


def common_target(frames: list[DepthFrame]) -> np.ndarray:
    """The world point closest (least squares) to every camera's optical axis: what a scan looks at."""
    if len(frames) < 2:
        raise ReconstructionError("need at least two views to find what they look at")
    A, b = np.zeros((3, 3)), np.zeros(3)
    for f in frames:
        axis = f.world_T_camera[:3, 2]
        P = np.eye(3) - np.outer(axis, axis)  # distance to the axis is |P (x - centre)|
        A += P
        b += P @ f.world_T_camera[:3, 3]
    if np.linalg.cond(A) > 1e6:
        raise ReconstructionError("the views are parallel: they do not look at one place")
    return np.linalg.solve(A, b)
