"""Isolate the object in the fused cloud: find the table plane, drop it, keep the object's cluster.

The table is found by RANSAC unless its height is given (the robot model knows it in a calibrated
cell). RANSAC takes the largest plane, which is the table only while the crop keeps a margin of
table around the object; the plane is checked to be level and to have the object above it, so a
large box top is never taken for the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from drex_ros.core.reconstruction.frames import ReconstructionError

LEVEL_COS = 0.97  # a table normal within ~14 deg of world z


@dataclass(frozen=True)
class ObjectCloud:
    points: np.ndarray  # (N, 3) world
    normals: np.ndarray  # (N, 3) unit, outward
    table_z: float


def table_height(cloud: o3d.geometry.PointCloud, tolerance: float = 0.003) -> float:
    """Height of the level plane the object stands on (RANSAC)."""
    if len(cloud.points) < 50:
        raise ReconstructionError(f"only {len(cloud.points)} points: too few to find the table")
    o3d.utility.random.seed(0)  # the same table for the same cloud
    (a, b, c, _), inliers = cloud.segment_plane(tolerance, 3, 300)
    normal = np.array([a, b, c]) / np.linalg.norm([a, b, c])
    if abs(normal[2]) < LEVEL_COS:
        raise ReconstructionError(f"the dominant plane is not level (normal {np.round(normal, 2)}): no table found")
    points = np.asarray(cloud.points)
    height = float(np.median(points[inliers, 2]))
    rest = np.delete(points[:, 2], inliers)
    if rest.size and np.mean(rest < height - 0.01) > 0.2:  # 1 cm: not the plane's own noise
        raise ReconstructionError("the dominant level plane has the object below it: no table found")
    return height


def isolate_object(cloud: o3d.geometry.PointCloud, table_z: float | None = None, margin: float = 0.003,
                   cluster_eps: float = 0.006) -> ObjectCloud:
    """The largest cluster of points above the table (plus `margin`)."""
    if table_z is None:
        table_z = table_height(cloud)
    points = np.asarray(cloud.points)
    keep = np.flatnonzero(points[:, 2] > table_z + margin)
    if keep.size < 30:
        raise ReconstructionError(f"{keep.size} points above the table: no object found")
    above = cloud.select_by_index(keep)
    labels = np.asarray(above.cluster_dbscan(eps=cluster_eps, min_points=8))
    if labels.max() < 0:
        raise ReconstructionError("no cluster above the table: the points are scattered noise")
    largest = np.bincount(labels[labels >= 0]).argmax()
    obj = above.select_by_index(np.flatnonzero(labels == largest))
    obj, _ = obj.remove_statistical_outlier(nb_neighbors=16, std_ratio=3.0)
    pts, normals = np.asarray(obj.points), np.asarray(obj.normals)
    return ObjectCloud(pts.copy(), _outward(pts, normals), float(table_z))


def _outward(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Unit normals; flipped all at once if most point into the object (TSDF sign convention)."""
    n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    if n.size and np.mean(np.sum(n * (points - points.mean(axis=0)), axis=1) > 0) < 0.5:
        n = -n
    return n
