"""A watertight surface from the object's fused points (screened Poisson, Open3D).

The table hides the object's base, so the fused points stop there. The base is supplied as
points on the table plane under the contact region (what the object's points within a few mm
of the table cover, filled in), with normals pointing down; Poisson then closes the surface
over a complete, oriented sample and the result encloses a volume.
"""

from __future__ import annotations

import cv2
import numpy as np
import open3d as o3d
import trimesh

from drex_ros.core.reconstruction.frames import ReconstructionError
from drex_ros.core.reconstruction.segment import ObjectCloud


def base_points(obj: ObjectCloud, band: float = 0.01, cell: float = 0.002) -> np.ndarray:
    """Points on the table plane filling the outline of the object's points near the table."""
    near = obj.points[obj.points[:, 2] < obj.table_z + band, :2]
    if len(near) < 3:
        return np.empty((0, 3))
    lo = near.min(axis=0) - 2 * cell
    ij = np.floor((near - lo) / cell).astype(int)
    shape = ij.max(axis=0) + 3
    mask = np.zeros((shape[1], shape[0]), np.uint8)
    mask[ij[:, 1], ij[:, 0]] = 1
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(mask, contours, -1, 1, thickness=cv2.FILLED)  # fill the inside the camera never saw
    hull = np.zeros_like(mask)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.column_stack([ij[:, 0], ij[:, 1]]).astype(np.int32)), 1)
    if mask.sum() < 0.6 * hull.sum():  # the outline has gaps (unseen strips at the base): take its hull
        mask = hull
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))  # inside the walls' noisy outermost points
    rows, cols = np.nonzero(mask)
    xy = lo + (np.column_stack([cols, rows]) + 0.5) * cell
    return np.column_stack([xy, np.full(len(xy), obj.table_z)])


def watertight_mesh(obj: ObjectCloud, depths: tuple[int, ...] = (7, 8, 6), spacing: float = 0.0015) -> trimesh.Trimesh:
    """Closed triangle mesh of the object (world frame), nothing below the table plane.

    Poisson's octree depth 7 (about 1 mm cells on a hand-sized object) is tried first; Open3D
    sometimes leaves a few non-manifold edges, and then the next depth is tried; if none closes,
    the convex hull of the points is taken (mesh.metadata["closed_by"] says which). That happens
    when the views never saw the object's lower part (a sphere's underside): Poisson's surface
    then runs into its grid's boundary, open."""
    base = base_points(obj)
    points = np.vstack([obj.points, base])
    normals = np.vstack([obj.normals, np.tile([0.0, 0.0, -1.0], (len(base), 1))])
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.normals = o3d.utility.Vector3dVector(normals)
    # Thinned to even spacing first: where views overlap, doubled noisy samples can make Poisson
    # leave non-manifold edges; some surfaces close only from the full cloud, so both are tried.
    for sample in (cloud.voxel_down_sample(spacing), cloud):
        for depth in depths:
            with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
                mesh, _ = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(sample, depth=depth,
                                                                                    linear_fit=True)
            tm = _closed(_largest_component(mesh))
            if tm is not None:
                tm.vertices[:, 2] = np.maximum(tm.vertices[:, 2], obj.table_z)  # nothing below the table
                tm.metadata["closed_by"] = f"poisson_depth_{depth}" + ("" if sample is cloud else "_thinned")
                return tm
    if len(points) < 4:
        raise ReconstructionError("the surface could not be closed: too few points")
    hull = trimesh.convex.convex_hull(points)  # closed by construction; exact for convex objects
    hull.metadata["closed_by"] = "convex_hull"
    return hull


def _closed(mesh: o3d.geometry.TriangleMesh) -> trimesh.Trimesh | None:
    tm = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles), process=True)
    if not tm.is_watertight:
        return None
    trimesh.repair.fix_normals(tm)
    return tm


def _largest_component(mesh: o3d.geometry.TriangleMesh) -> o3d.geometry.TriangleMesh:
    labels, counts, _ = mesh.cluster_connected_triangles()
    labels = np.asarray(labels)
    if len(counts) > 1:
        mesh.remove_triangles_by_mask(labels != int(np.argmax(counts)))
        mesh.remove_unreferenced_vertices()
    return mesh
