"""TSDF fusion of depth frames (Open3D VoxelBlockGrid) into the surface point cloud.

Fusion averages the sensor's per-pixel noise over every view that sees a voxel, which a plain
merged cloud does not. Depth outside a world box around the object is dropped first: the
volume then stays small (a few cm of table around the object) and fusion takes well under a
second per dozen frames. (Open3D 0.20's legacy ScalableTSDFVolume returned an empty surface
from numpy 2 arrays here; the tensor VoxelBlockGrid does not.)
"""

from __future__ import annotations

import numpy as np
import open3d as o3d
import open3d.core as o3c

from drex_ros.core.reconstruction.frames import DepthFrame, ReconstructionError


def crop_depth(frame: DepthFrame, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The frame's depth with pixels whose world point lies outside [lower, upper] set to 0."""
    h, w = frame.depth.shape
    v, u = np.mgrid[0:h, 0:w]
    z = frame.depth
    K, T = frame.K, frame.world_T_camera
    cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=-1)
    world = cam @ T[:3, :3].T + T[:3, 3]
    inside = np.all((world >= lower) & (world <= upper), axis=-1) & (z > 0)
    return np.where(inside, z, 0.0).astype(np.float32)


def fuse(frames: list[DepthFrame], lower: np.ndarray, upper: np.ndarray, voxel: float = 0.002,
         truncation_voxels: float = 4.0, min_weight: float = 2.0) -> o3d.geometry.PointCloud:
    """Surface points (with normals) of the fused volume inside the world box [lower, upper];
    a surface point needs `min_weight` observations, which drops single-view speckle."""
    if not frames:
        raise ReconstructionError("no frames to fuse")
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight"), attr_dtypes=(o3c.float32, o3c.float32), attr_channels=((1), (1)),
        voxel_size=voxel, block_resolution=16, block_count=20000)
    used = 0
    for frame in frames:
        frame.validate()
        depth = crop_depth(frame, np.asarray(lower), np.asarray(upper))
        if not depth.any():
            continue
        image = o3d.t.geometry.Image(o3c.Tensor(depth))
        K = o3c.Tensor(np.asarray(frame.K, dtype=np.float64))
        extrinsic = o3c.Tensor(np.linalg.inv(frame.world_T_camera))
        blocks = grid.compute_unique_block_coordinates(image, K, extrinsic, 1.0, 10.0, truncation_voxels)
        grid.integrate(blocks, image, K, extrinsic, 1.0, 10.0, truncation_voxels)
        used += 1
    if used == 0:
        raise ReconstructionError("no frame has depth inside the object's region")
    cloud = grid.extract_point_cloud(weight_threshold=min_weight).to_legacy()
    if len(cloud.points) == 0:
        raise ReconstructionError("fusion gave no surface")
    return cloud
