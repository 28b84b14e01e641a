"""Frames in, object model out: fusion, table removal, closed mesh, primitive choice, convex parts,
each stage timed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import trimesh

from drex_ros.core.reconstruction.decompose import convex_parts
from drex_ros.core.reconstruction.frames import DepthFrame, ReconstructionError
from drex_ros.core.reconstruction.fusion import fuse
from drex_ros.core.reconstruction.primitive import Choice, choose, primitive_mesh
from drex_ros.core.reconstruction.segment import ObjectCloud, isolate_object
from drex_ros.core.reconstruction.surface import watertight_mesh


@dataclass
class ObjectModel:
    mesh: trimesh.Trimesh  # closed, world frame
    cloud: ObjectCloud
    choice: Choice
    parts: list[trimesh.Trimesh]  # convex collision parts (empty when a primitive is chosen)
    frames: list[DepthFrame]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def volume(self) -> float:
        """m^3 of the model: the primitive's where one is chosen, else the closed mesh's."""
        return self.choice.fit.volume if self.choice.fit else float(self.mesh.volume)

    @property
    def surface(self) -> trimesh.Trimesh:
        """The model's closed surface: the primitive's where one is chosen, else the mesh. (Where the
        views never saw the underside, e.g. a sphere's lower half, only the primitive has it right.)"""
        return primitive_mesh(self.choice.fit) if self.choice.fit else self.mesh

    @property
    def extents(self) -> np.ndarray:
        """World axis-aligned extents of the model's surface (m)."""
        bounds = self.surface.bounds
        return bounds[1] - bounds[0]


def reconstruct(frames: list[DepthFrame], lower: np.ndarray, upper: np.ndarray, table_z: float | None = None,
                voxel: float = 0.002, decompose: str = "auto") -> ObjectModel:
    """The object inside the world box [lower, upper] (which must hold some table around it).
    decompose: "auto" (convex parts only when no primitive fits), "always" or "never"."""
    if not frames:
        raise ReconstructionError("no frames to reconstruct from")
    timings: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = now - t
        t = now

    cloud = fuse(frames, lower, upper, voxel=voxel)
    lap("fusion_s")
    obj = isolate_object(cloud, table_z, cluster_eps=3 * voxel)
    lap("segment_s")
    mesh = watertight_mesh(obj)
    lap("mesh_s")
    choice = choose(obj)
    lap("fit_s")
    parts = convex_parts(mesh) if decompose == "always" or (decompose == "auto" and choice.kind == "mesh") else []
    lap("decompose_s")
    return ObjectModel(mesh, obj, choice, parts, frames, timings)
