"""Driver joint names <-> URDF joint names, per driver group, checked before anything moves.

A hardware profile maps each driver's joints onto the URDF's BY NAME, in the order the driver
expects them (some drivers read commands by array position and ignore names, so the order is
part of the contract). A map that leaves a URDF joint uncovered, names a joint twice or names
a joint the URDF does not have is refused with a message naming the joint: a silent mismatch
would send one finger's target to another.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


class JointMapError(ValueError):
    """A joint map that cannot be used; the message names the joint and the group."""


@dataclass(frozen=True)
class GroupMap:
    """One driver's joints: its names in its order, and the URDF joint each one is."""

    group: str
    driver_names: tuple[str, ...]
    urdf_names: tuple[str, ...]
    urdf_index: np.ndarray  # URDF (canonical) index of each driver joint, in driver order

    def __len__(self) -> int:
        return len(self.driver_names)


def build_joint_map(groups: Mapping[str, Sequence[Sequence[str]]], urdf_names: Sequence[str]) -> dict[str, GroupMap]:
    """`groups`: group -> [[driver_name, urdf_name], ...] in driver order. Raises JointMapError."""
    index = {n: i for i, n in enumerate(urdf_names)}
    pairs = [(g, _pair(g, p)) for g, entries in groups.items() for p in entries]
    _refuse_twice(Counter((g, d) for g, (d, _) in pairs), "driver joint")
    _refuse_twice(Counter(("", u) for _, (_, u) in pairs), "URDF joint")
    for g, (d, u) in pairs:
        if u not in index:
            raise JointMapError(f"joint map group {g!r}: {d!r} maps to {u!r}, which the URDF does not have")
    covered = {u for _, (_, u) in pairs}
    missing = [n for n in urdf_names if n not in covered]
    if missing:
        raise JointMapError(f"joint map does not cover URDF joint(s) {', '.join(missing)}")
    out = {}
    for g in groups:
        mine = [p for gg, p in pairs if gg == g]
        out[g] = GroupMap(g, tuple(d for d, _ in mine), tuple(u for _, u in mine),
                          np.array([index[u] for _, u in mine], dtype=int))
    return out


def _pair(group: str, entry: Sequence[str]) -> tuple[str, str]:
    if isinstance(entry, str) or len(entry) != 2 or not all(isinstance(x, str) and x for x in entry):
        raise JointMapError(f"joint map group {group!r}: entry {entry!r} is not [driver_name, urdf_name]")
    return entry[0], entry[1]


def _refuse_twice(counts: Counter, what: str) -> None:
    twice = [name for (_, name), k in counts.items() if k > 1]
    if twice:
        raise JointMapError(f"joint map names {what} {', '.join(repr(n) for n in twice)} more than once")
