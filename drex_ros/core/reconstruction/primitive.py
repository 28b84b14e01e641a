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
import trimesh

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


def _face_bounds(coord: np.ndarray, normal: np.ndarray, fallback: tuple[float, float]) -> tuple[float, float]:
    """Lower and upper face positions along one box axis: the median of the points facing each way
    (percentiles of all points would move the faces out by the sensor noise)."""
    out = []
    for sign, default in ((-1.0, fallback[0]), (1.0, fallback[1])):
        facing = sign * normal > 0.8
        out.append(float(np.median(coord[facing])) if facing.sum() >= 10 else default)
    return out[0], out[1]


def fit_box(obj: ObjectCloud) -> Fit:
    (cx, cy), _, angle = cv2.minAreaRect(obj.points[:, :2].astype(np.float32))
    yaw = np.deg2rad(angle)
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, -s], [s, c]])
    local = (obj.points[:, :2] - [cx, cy]) @ R  # into the box's axes
    n_local = obj.normals[:, :2] @ R
    rough_lo, rough_hi = np.percentile(local, 0.5, axis=0), np.percentile(local, 99.5, axis=0)
    lo, hi = np.zeros(2), np.zeros(2)
    for k in range(2):
        lo[k], hi[k] = _face_bounds(local[:, k], n_local[:, k], (rough_lo[k], rough_hi[k]))
    mid = (lo + hi) / 2
    top = _face_bounds(obj.points[:, 2], obj.normals[:, 2], (obj.table_z, float(np.percentile(obj.points[:, 2],
                                                                                               99.5))))[1]
    half = np.array([*(hi - lo) / 2, (top - obj.table_z) / 2])
    centre = np.array([cx + c * mid[0] - s * mid[1], cy + s * mid[0] + c * mid[1], obj.table_z + half[2]])
    q = np.column_stack([local - mid, obj.points[:, 2] - centre[2]])
    d = np.abs(q) - half
    sdf = np.linalg.norm(np.maximum(d, 0), axis=1) + np.minimum(d.max(axis=1), 0)
    p90, p99 = _percentiles(np.abs(sdf))
    return Fit("box", tuple(float(x) for x in 2 * half), centre, float(yaw), p90, p99, float(np.prod(2 * half)))


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
    top = _face_bounds(obj.points[:, 2], obj.normals[:, 2], (obj.table_z, float(np.percentile(obj.points[:, 2],
                                                                                               99.5))))[1]
    hz = (top - obj.table_z) / 2
    centre = np.array([*centre_xy, obj.table_z + hz])
    dr = np.linalg.norm(obj.points[:, :2] - centre_xy, axis=1) - radius
    dz = np.abs(obj.points[:, 2] - centre[2]) - hz
    sdf = np.hypot(np.maximum(dr, 0), np.maximum(dz, 0)) + np.minimum(np.maximum(dr, dz), 0)
    p90, p99 = _percentiles(np.abs(sdf))
    return Fit("cylinder", (radius, float(2 * hz)), centre, 0.0, p90, p99, float(np.pi * radius ** 2 * 2 * hz))


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


def primitive_mesh(fit: Fit) -> trimesh.Trimesh:
    """The fitted primitive as a closed mesh in the world frame (what the simulator will collide)."""
    T = np.eye(4)
    c, s = np.cos(fit.yaw), np.sin(fit.yaw)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = fit.centre
    if fit.kind == "box":
        return trimesh.creation.box(extents=fit.size, transform=T)
    if fit.kind == "cylinder":
        return trimesh.creation.cylinder(radius=fit.size[0], height=fit.size[1], sections=64, transform=T)
    return trimesh.creation.icosphere(subdivisions=4, radius=fit.size[0]).apply_transform(T)
