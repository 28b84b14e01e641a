"""Objects for reconstruction benches and tests: unions of MuJoCo primitive geoms, with their truth.

An object is a list of parts (box, cylinder, sphere) in its own frame: origin on the table under
the object, z up. Besides the three primitives this gives the shapes a primitive fit must refuse:
an L-shaped block, a bottle (body + neck cylinders) and a mug (cylinder + a handle with a hole).
The true surface (for chamfer distances) and volume come from the parts by sampling, so
overlapping parts are measured as their union.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Part:
    kind: str  # "box" | "cylinder" | "sphere"
    half: tuple[float, ...]  # MuJoCo geom size: box half extents, cylinder (radius, half height), sphere (radius,)
    pos: tuple[float, float, float]  # centre in the object frame


@dataclass(frozen=True)
class ScanObject:
    name: str
    parts: tuple[Part, ...]
    primitive: str  # the true primitive kind, or "mesh"
    size: tuple[float, ...] = ()  # drex's size tuple for a primitive (see robot.objects)


def box(x: float, y: float, z: float, name: str = "") -> ScanObject:
    return ScanObject(name or f"box_{x*1e3:.0f}x{y*1e3:.0f}x{z*1e3:.0f}",
                      (Part("box", (x / 2, y / 2, z / 2), (0, 0, z / 2)),), "box", (x, y, z))


def cylinder(radius: float, height: float, name: str = "") -> ScanObject:
    return ScanObject(name or f"cylinder_r{radius*1e3:.0f}_h{height*1e3:.0f}",
                      (Part("cylinder", (radius, height / 2), (0, 0, height / 2)),), "cylinder", (radius, height))


def sphere(radius: float, name: str = "") -> ScanObject:
    return ScanObject(name or f"sphere_r{radius*1e3:.0f}", (Part("sphere", (radius,), (0, 0, radius)),),
                      "sphere", (radius,))


def l_block() -> ScanObject:
    """A 10 x 5 cm slab, 3 cm thick, with a 3 cm upright at one end (8 cm tall there)."""
    return ScanObject("l_block", (Part("box", (0.05, 0.025, 0.015), (0, 0, 0.015)),
                                  Part("box", (0.015, 0.025, 0.025), (-0.035, 0, 0.055))), "mesh")


def bottle() -> ScanObject:
    """A 7 cm wide, 11 cm body with a 2.6 cm wide, 5 cm neck."""
    return ScanObject("bottle", (Part("cylinder", (0.035, 0.055), (0, 0, 0.055)),
                                 Part("cylinder", (0.013, 0.025), (0, 0, 0.135))), "mesh")


def mug() -> ScanObject:
    """An 8 cm wide, 9 cm tall body with a handle that leaves a 1.5 x 4 cm hole."""
    return ScanObject("mug", (Part("cylinder", (0.04, 0.045), (0, 0, 0.045)),
                              Part("box", (0.005, 0.008, 0.03), (0.06, 0, 0.045)),
                              Part("box", (0.0095, 0.008, 0.005), (0.0465, 0, 0.07)),
                              Part("box", (0.0095, 0.008, 0.005), (0.0465, 0, 0.02))), "mesh")


def bench_objects(quick: bool = False) -> list[ScanObject]:
    """Primitives over the size range the Allegro hand grasps (about 4-10 cm) and the three others."""
    if quick:
        return [box(0.06, 0.05, 0.08), cylinder(0.035, 0.09), sphere(0.04), l_block(), bottle(), mug()]
    return [box(0.04, 0.04, 0.05), box(0.06, 0.05, 0.08), box(0.10, 0.06, 0.05), cylinder(0.025, 0.10),
            cylinder(0.035, 0.09), cylinder(0.045, 0.06), sphere(0.03), sphere(0.045), l_block(), bottle(), mug()]


def _inside_part(part: Part, p: np.ndarray, pad: float = 0.0) -> np.ndarray:
    q = p - np.asarray(part.pos)
    if part.kind == "box":
        return np.all(np.abs(q) < np.asarray(part.half) - pad, axis=1)
    if part.kind == "cylinder":
        r, hz = part.half
        return (np.hypot(q[:, 0], q[:, 1]) < r - pad) & (np.abs(q[:, 2]) < hz - pad)
    return np.linalg.norm(q, axis=1) < part.half[0] - pad


def _sample_part_surface(part: Part, n: int, rng: np.random.Generator) -> np.ndarray:
    if part.kind == "sphere":
        d = rng.normal(size=(n, 3))
        return part.half[0] * d / np.linalg.norm(d, axis=1, keepdims=True) + part.pos
    if part.kind == "box":
        h = np.asarray(part.half)
        areas = np.array([h[1] * h[2], h[0] * h[2], h[0] * h[1]])
        axis = rng.choice(3, size=n, p=areas / areas.sum())
        p = rng.uniform(-1, 1, size=(n, 3)) * h
        p[np.arange(n), axis] = rng.choice([-1, 1], size=n) * h[axis]
        return p + part.pos
    r, hz = part.half
    side = rng.uniform(size=n) < (2 * np.pi * r * 2 * hz) / (2 * np.pi * r * 2 * hz + 2 * np.pi * r * r)
    phi = rng.uniform(0, 2 * np.pi, n)
    rad = np.where(side, r, r * np.sqrt(rng.uniform(size=n)))
    z = np.where(side, rng.uniform(-hz, hz, n), rng.choice([-hz, hz], size=n))
    return np.column_stack([rad * np.cos(phi), rad * np.sin(phi), z]) + part.pos


def surface_points(obj: ScanObject, n: int = 20000, seed: int = 0) -> np.ndarray:
    """(~n, 3) points on the union's surface, object frame: each part's surface minus what lies in another."""
    rng = np.random.default_rng(seed)
    chunks = []
    for i, part in enumerate(obj.parts):
        p = _sample_part_surface(part, n // len(obj.parts), rng)
        hidden = np.zeros(len(p), bool)
        for j, other in enumerate(obj.parts):
            if j != i:
                hidden |= _inside_part(other, p, pad=1e-6)
        chunks.append(p[~hidden])
    return np.concatenate(chunks)


def bounds(obj: ScanObject) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds of the object in its own frame."""
    lo, hi = [], []
    for part in obj.parts:
        h = part.half if part.kind == "box" else (part.half[0], part.half[0], part.half[-1])
        lo.append(np.asarray(part.pos) - h)
        hi.append(np.asarray(part.pos) + h)
    return np.min(lo, axis=0), np.max(hi, axis=0)


def volume(obj: ScanObject, cell: float = 0.0005) -> float:
    """Volume of the union (m^3) by counting grid cells whose centre is inside a part."""
    lo, hi = bounds(obj)
    axes = [np.arange(a + cell / 2, b, cell) for a, b in zip(lo, hi, strict=True)]
    total = 0
    for x in axes[0]:  # one slab at a time keeps memory small
        yy, zz = np.meshgrid(axes[1], axes[2], indexing="ij")
        p = np.column_stack([np.full(yy.size, x), yy.ravel(), zz.ravel()])
        inside = np.zeros(len(p), bool)
        for part in obj.parts:
            inside |= _inside_part(part, p)
        total += int(inside.sum())
    return total * cell ** 3
