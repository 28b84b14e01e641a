"""Pairing a camera's colour and depth streams by stamp, and the camera's extrinsics from parameters.

Colour and depth arrive as two topics; a pose needs one frame of each taken at the same time.
The newest colour frame with a depth frame within `max_gap` is processed (older frames are
stale by then); a frame older than the other stream's newest by more than the gap can never
be matched and is dropped, and said so: as a lost partner when the streams paired moments
before (a busy node's full queue drops frames), else as streams out of sync.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

BUFFERED_FRAMES = 4


RECENT_PAIR_S = 1.0  # a pair this recent shows the streams are in sync


@dataclass(frozen=True)
class UnmatchedFrame:
    kind: str  # "colour" or "depth"
    stamp: float
    nearest_gap: float  # s to the nearest frame of the other stream
    # The streams paired within RECENT_PAIR_S before it: its partner was lost on the way (dropped
    # from a full queue while the node was busy), not out of sync.
    partner_lost: bool = False


class FramePairer:
    def __init__(self, max_gap: float, depth: int = BUFFERED_FRAMES) -> None:
        self.max_gap = max_gap
        self._frames = {"colour": deque(maxlen=depth), "depth": deque(maxlen=depth)}
        self.last_pair_stamp: float | None = None

    def add(self, kind: str, stamp: float, frame: Any) -> tuple[tuple[Any, Any] | None, list[UnmatchedFrame]]:
        """Add a frame; returns the (colour, depth) pair to process, if any, and the frames dropped."""
        self._frames[kind].append((stamp, frame))
        pair = self._newest_pair()
        return pair, ([] if pair is not None else self._drop_unmatchable())

    def _newest_pair(self) -> tuple[Any, Any] | None:
        colors, depths = self._frames["colour"], self._frames["depth"]
        for ci in range(len(colors) - 1, -1, -1):
            c_stamp, c_frame = colors[ci]
            gap, di = min(((abs(d_stamp - c_stamp), di) for di, (d_stamp, _) in enumerate(depths)),
                          default=(np.inf, -1))
            if gap <= self.max_gap:
                d_frame = depths[di][1]
                self.last_pair_stamp = c_stamp
                for _ in range(ci + 1):
                    colors.popleft()
                for _ in range(di + 1):
                    depths.popleft()
                return c_frame, d_frame
        return None

    def _drop_unmatchable(self) -> list[UnmatchedFrame]:
        dropped = []
        for kind, other in (("colour", "depth"), ("depth", "colour")):
            frames, others = self._frames[kind], self._frames[other]
            while frames and others and frames[0][0] < others[-1][0] - self.max_gap:
                stamp, _ = frames.popleft()
                lost = self.last_pair_stamp is not None and 0.0 <= stamp - self.last_pair_stamp <= RECENT_PAIR_S
                dropped.append(UnmatchedFrame(kind, stamp, min(abs(o - stamp) for o, _ in others), lost))
        return dropped


def extrinsics_from(translation: Sequence[float], quaternion_wxyz: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """world_T_optical as (position, rotation matrix) from parameters; ValueError naming what is wrong."""
    t = np.asarray(translation, dtype=float)
    q = np.asarray(quaternion_wxyz, dtype=float)
    if t.shape != (3,) or q.shape != (4,) or not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))):
        raise ValueError(f"camera_translation needs 3 and camera_quaternion_wxyz 4 finite numbers, got {t}, {q}")
    if abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise ValueError(f"camera_quaternion_wxyz {q.tolist()} is not a unit quaternion (norm {np.linalg.norm(q):.4f})")
    return t, Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()
