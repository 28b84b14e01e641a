"""Markerless fallback: the object's position and yaw from depth + colour segmentation.

Used when no marker is readable (an unmarked object, motion blur, a hand over the
markers). Depth pixels are lifted to the world frame; the object is the connected blob
of points above the table plane, inside the workspace, whose colour passes the
saturation test (grey/white objects against a wooden table, say), nearest the last
known position when there is one. The blob's top surface is what a camera above the
table sees completely, so its centroid is the object's x, y; the object rests on the
table, so its centre height is half the top's height; yaw is the principal axis of the
top surface. Lower confidence than markers, and said so through the covariance:
roll and pitch are not observed at all, yaw only when the top is elongated.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from drex_ros.core.perception.image_input import Intrinsics

UNOBSERVED_VARIANCE = 1e6  # covariance entry for an angle this method does not see


@dataclass(frozen=True)
class FallbackSettings:
    table_z: float = 0.0  # table plane height in the world frame (m)
    min_height: float = 0.008  # points lower than this above the table are table
    max_height: float = 0.30  # points higher than this are not the object (arm, ...)
    workspace_min: tuple[float, float] = (0.25, -0.4)  # world x, y
    workspace_max: tuple[float, float] = (1.0, 0.4)
    max_saturation: float = 0.25  # colour test, 0..1; 1 disables it
    min_pixels: int = 30  # (after striding) fewer points than this are noise
    top_band: float = 0.006  # points within this of the top belong to the top surface
    stride: int = 2  # use every stride-th pixel in each direction
    position_sigma: float = 0.006  # m, reported 1-sigma of x, y, z


@dataclass(frozen=True)
class FallbackPose:
    position: np.ndarray
    yaw: float
    covariance: np.ndarray  # 6x6 [position, rotation about world x, y, z]
    pixels: int


def object_mask(rgb: np.ndarray, depth: np.ndarray, intr: Intrinsics, world_R_cam: np.ndarray,
                world_t_cam: np.ndarray, settings: FallbackSettings) -> tuple[np.ndarray, np.ndarray]:
    """(mask of candidate object pixels, HxWx3 world points) on the strided grid."""
    s = settings.stride
    z = depth[::s, ::s].astype(np.float64)
    h, w = z.shape
    v, u = np.mgrid[0:h, 0:w] * s
    K = intr.K
    cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=-1)
    world = cam @ world_R_cam.T + world_t_cam
    height = world[..., 2] - settings.table_z
    with np.errstate(invalid="ignore"):
        mask = (height > settings.min_height) & (height < settings.max_height)
        mask &= (world[..., 0] > settings.workspace_min[0]) & (world[..., 0] < settings.workspace_max[0])
        mask &= (world[..., 1] > settings.workspace_min[1]) & (world[..., 1] < settings.workspace_max[1])
    if settings.max_saturation < 1.0:
        sat = cv2.cvtColor(np.ascontiguousarray(rgb[::s, ::s]), cv2.COLOR_RGB2HSV)[..., 1]
        mask &= sat <= settings.max_saturation * 255
    return mask, world


def estimate_fallback(rgb: np.ndarray, depth: np.ndarray, intr: Intrinsics, world_R_cam: np.ndarray,
                      world_t_cam: np.ndarray, settings: FallbackSettings | None = None,
                      prior_xy: np.ndarray | None = None) -> FallbackPose | None:
    """The object's (x, y, z, yaw) from one frame, or None when no object-like blob is seen."""
    st = settings or FallbackSettings()
    mask, world = object_mask(rgb, depth, intr, world_R_cam, world_t_cam, st)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    blobs = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= st.min_pixels]
    if not blobs:
        return None
    if prior_xy is not None:
        def distance(k: int) -> float:
            return float(np.linalg.norm(np.median(world[labels == k][:, :2], axis=0) - prior_xy))
        blob = min(blobs, key=distance)
    else:
        blob = max(blobs, key=lambda k: stats[k, cv2.CC_STAT_AREA])
    pts = world[labels == blob]
    top = np.percentile(pts[:, 2], 98)
    cap = pts[pts[:, 2] > top - st.top_band]
    xy = cap[:, :2].mean(axis=0)
    position = np.array([xy[0], xy[1], st.table_z + (top - st.table_z) / 2])
    # Principal axis of the top surface; its elongation says how much the yaw is worth.
    eigval, eigvec = np.linalg.eigh(np.cov((cap[:, :2] - xy).T) if len(cap) > 2 else np.eye(2))
    major = eigvec[:, 1]
    yaw = float(np.arctan2(major[1], major[0]))
    yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2  # an axis, not a direction: yaw is modulo pi
    elongation = eigval[1] / max(eigval[0], 1e-12)
    yaw_var = UNOBSERVED_VARIANCE if elongation < 1.5 else (0.15 / np.sqrt(elongation - 1)) ** 2
    cov = np.diag([st.position_sigma**2] * 3 + [UNOBSERVED_VARIANCE, UNOBSERVED_VARIANCE, yaw_var])
    return FallbackPose(position, yaw, cov, int(len(pts)))
