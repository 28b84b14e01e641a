"""The graspable object's geometry: the primitive shapes drex knows and their extents.

A size tuple is per shape: box (x, y, z) edge lengths, cylinder (radius, height), sphere
(radius,), all in metres; the object frame is at the centre, z up.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("box", "cylinder", "sphere")


def half_extents(shape: str, size: tuple[float, ...]) -> np.ndarray:
    """Half extents of the object's bounding box along its own axes."""
    if shape == "box":
        return np.asarray(size, dtype=float) / 2
    if shape == "cylinder":
        radius, height = size
        return np.array([radius, radius, height / 2])
    if shape == "sphere":
        return np.full(3, size[0])
    raise ValueError(f"unknown shape {shape!r} ({', '.join(SHAPES)})")
