"""Convex parts for collision (CoACD): MuJoCo collides meshes as their convex hulls, so a concave
object (an L, a mug's handle) needs a union of convex pieces to be touched where it really is."""

from __future__ import annotations

import coacd
import numpy as np
import trimesh


def convex_parts(mesh: trimesh.Trimesh, threshold: float = 0.08, max_parts: int = 12) -> list[trimesh.Trimesh]:
    """Convex pieces whose union approximates `mesh` (concavity `threshold`, CoACD's units)."""
    coacd.set_log_level("error")
    parts = coacd.run_coacd(coacd.Mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces)), threshold=threshold,
                            max_convex_hull=max_parts, preprocess_resolution=30, mcts_iterations=60, seed=0)
    return [trimesh.Trimesh(v, f) for v, f in parts]
