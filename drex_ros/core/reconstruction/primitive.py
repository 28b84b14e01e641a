"""Fit a box (with yaw), an upright cylinder and a sphere to the object's points; keep one only if it fits.

Each fit is measured by the distance of every observed point to the fitted surface. Sensor noise
left after fusion keeps the 90th percentile near a millimetre; a shape the primitive does not
have (an L's missing corner, a bottle's neck, a mug's handle) puts a whole region of points
centimetres away, which the 99th percentile sees. The best fit is taken only if both are
within tolerance; otherwise the object is "mesh". (The closed mesh's volume is no check here:
its unseen base, e.g. a sphere's lower cap, is guessed.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from drex_ros.core.reconstruction.segment import ObjectCloud


@dataclass(frozen=True)
class Fit:
    kind: str  # box | cylinder | sphere
    size: tuple[float, ...]  # drex's size tuple: box (x, y, z), cylinder (radius, height), sphere (radius,)
    centre: np.ndarray  # world, centre of the shape
    yaw: float
    p90: float  # m, 90th percentile of point-to-surface distance
    p99: float
    volume: float


@dataclass(frozen=True)
class Choice:
    kind: str  # box | cylinder | sphere | mesh
    fit: Fit | None
    fits: dict[str, Fit] = field(default_factory=dict)


def _percentiles(dist: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(dist, 90)), float(np.percentile(dist, 99))


def fit_box(obj: ObjectCloud) -> Fit:
    (cx, cy), (w, h), angle = cv2.minAreaRect(obj.points[:, :2].astype(np.float32))
    yaw = np.deg2rad(angle)
    c, s = np.cos(yaw), np.sin(yaw)
    local = (obj.points[:, :2] - [cx, cy]) @ np.array([[c, -s], [s, c]])  # into the box's axes
    lo, hi = np.percentile(local, 0.5, axis=0), np.percentile(local, 99.5, axis=0)  # noise-proof extents
    mid = (lo + hi) / 2
    top = float(np.percentile(obj.points[:, 2], 99.5))
    half = np.array([*(hi - lo) / 2, (top - obj.table_z) / 2])
    centre = np.array([cx + c * mid[0] - s * mid[1], cy + s * mid[0] + c * mid[1], obj.table_z + half[2]])
    q = np.column_stack([local - mid, obj.points[:, 2] - centre[2]])
    d = np.abs(q) - half
    sdf = np.linalg.norm(np.maximum(d, 0), axis=1) + np.minimum(d.max(axis=1), 0)
    p90, p99 = _percentiles(np.abs(sdf))
    return Fit("box", tuple(2 * half), centre, float(yaw), p90, p99, float(np.prod(2 * half)))


def _circle(xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares circle (algebraic): x^2 + y^2 + D x + E y + F = 0."""
    A = np.column_stack([xy, np.ones(len(xy))])
    D, E, F = np.linalg.lstsq(A, -(xy ** 2).sum(axis=1), rcond=None)[0]
    centre = -np.array([D, E]) / 2
    return centre, float(np.sqrt(max(centre @ centre - F, 0.0)))


def fit_cylinder(obj: ObjectCloud) -> Fit:
    side = np.abs(obj.normals[:, 2]) < 0.5  # the top face's points would pull the circle inwards
    xy = obj.points[side if side.sum() >= 10 else slice(None), :2]
    centre_xy, radius = _circle(xy)
    top = float(np.percentile(obj.points[:, 2], 99.5))
    hz = (top - obj.table_z) / 2
    centre = np.array([*centre_xy, obj.table_z + hz])
    dr = np.linalg.norm(obj.points[:, :2] - centre_xy, axis=1) - radius
    dz = np.abs(obj.points[:, 2] - centre[2]) - hz
    sdf = np.hypot(np.maximum(dr, 0), np.maximum(dz, 0)) + np.minimum(np.maximum(dr, dz), 0)
    p90, p99 = _percentiles(np.abs(sdf))
    return Fit("cylinder", (radius, 2 * hz), centre, 0.0, p90, p99, float(np.pi * radius ** 2 * 2 * hz))


def fit_sphere(obj: ObjectCloud) -> Fit:
    p = obj.points
    A = np.column_stack([2 * p, np.ones(len(p))])
    sol = np.linalg.lstsq(A, (p ** 2).sum(axis=1), rcond=None)[0]
    centre = sol[:3]
    radius = float(np.sqrt(max(sol[3] + centre @ centre, 0.0)))
    p90, p99 = _percentiles(np.abs(np.linalg.norm(p - centre, axis=1) - radius))
    return Fit("sphere", (radius,), centre, 0.0, p90, p99, float(4 / 3 * np.pi * radius ** 3))


def choose(obj: ObjectCloud, tol_p90: float = 0.0025, tol_p99: float = 0.006) -> Choice:
    """The best-fitting primitive if it fits within tolerance, else "mesh"."""
    fits = {f.kind: f for f in (fit_box(obj), fit_cylinder(obj), fit_sphere(obj))}
    best = min(fits.values(), key=lambda f: f.p90)
    if best.p90 <= tol_p90 and best.p99 <= tol_p99:
        return Choice(best.kind, best, fits)
    return Choice("mesh", None, fits)
