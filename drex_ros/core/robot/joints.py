"""Joint names -> robot indices: the one mapper every consumer of a named joint message uses.

A message (JointState, a command) names any subset of the robot's joints in any order. The rule,
the same everywhere: a joint the robot does not have is counted and ignored; a joint named more
than once in one message takes no value from that message (which of two values to trust is
unknowable) and is reported, so a consumer treats it as absent for this message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_CACHE_SIZE = 32  # name lists a stream repeats; a handful at most in practice


@dataclass(frozen=True)
class NameMap:
    """Where one message's entries go."""

    src: np.ndarray  # message indices of the entries taken
    dst: np.ndarray  # robot indices they go to
    unknown: int  # entries naming no joint of the robot
    duplicated: np.ndarray  # bool per robot joint: named more than once, no value taken


class JointIndex:
    """The robot's joint order, and the NameMap of a message's names (cached per name list)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.index = {n: i for i, n in enumerate(self.names)}
        self._maps: dict[tuple[str, ...], NameMap] = {}

    def __len__(self) -> int:
        return len(self.names)

    def map(self, names: Sequence[str]) -> NameMap:
        key = tuple(names)
        found = self._maps.get(key)
        if found is None:
            found = self._build(key)
            if len(self._maps) >= _CACHE_SIZE:
                self._maps.clear()
            self._maps[key] = found
        return found

    def _build(self, names: tuple[str, ...]) -> NameMap:
        pairs = [(k, self.index[n]) for k, n in enumerate(names) if n in self.index]
        dst_all = np.array([i for _, i in pairs], dtype=int)
        duplicated = np.bincount(dst_all, minlength=len(self.names)) > 1
        kept = [(k, i) for k, i in pairs if not duplicated[i]]
        return NameMap(np.array([k for k, _ in kept], dtype=int), np.array([i for _, i in kept], dtype=int),
                       len(names) - len(pairs), duplicated)

    def gather(self, names: Sequence[str], values: Sequence[float], fill: float = np.nan) -> np.ndarray:
        """`values` (one per name) in robot order; `fill` where absent, duplicated, or when the
        lengths differ (a field a driver leaves empty)."""
        out = np.full(len(self.names), fill, dtype=float)
        if len(values) == len(names):
            m = self.map(names)
            out[m.dst] = np.asarray(values, dtype=float)[m.src]
        return out
