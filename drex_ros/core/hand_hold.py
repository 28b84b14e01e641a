"""Is the object in the hand, and where is it while the hand hides it from the camera?

Once the fingers close, the hand covers the object's markers from most camera angles, so
the task cannot rely on the camera alone to see it rise. Two facts stand in for it:

* In-hand: a closed hand holding something cannot reach its commanded posture. The
  Allegro's PD fingers stall against the object and their position error stays large
  (measured in sim: 0.7 rad on every finger with a 4-6 cm object, 0.0 with an empty
  hand closing on air), independent of the grip effort, because the error is geometric.
* Carried pose: the object last seen resting on the table has not moved until the fingers
  closed on it; from that moment it moves with the palm. Its pose in the palm frame,
  taken when the grip closes, gives its pose from the arm's forward kinematics.

A dropped object frees the fingers (they reach their targets), which ends the carry, and
falls back into view, so a carried pose is never reported for an object that is not held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from drex_ros.core.robot import FINGERS, JOINT_NAMES

_FINGER_INDEX = {f: [JOINT_NAMES.index(j) for j in joints] for f, joints in FINGERS.items()}


@dataclass(frozen=True)
class InHandSettings:
    stall_rad: float = 0.25  # a finger this far from its commanded position is blocked by the object
    min_fingers: int = 2  # blocked fingers needed to call the object held


def blocked_fingers(measured: np.ndarray, commanded: np.ndarray, settings: InHandSettings) -> int:
    """How many fingers are held away from their commanded posture (full 23-joint arrays)."""
    measured, commanded = np.asarray(measured, float), np.asarray(commanded, float)
    count = 0
    for idx in _FINGER_INDEX.values():
        error = np.abs(commanded[idx] - measured[idx])
        if np.all(np.isfinite(error)) and error.max() > settings.stall_rad:
            count += 1
    return count


def object_in_hand(measured: np.ndarray, commanded: np.ndarray, settings: InHandSettings | None = None) -> bool:
    settings = settings or InHandSettings()
    return blocked_fingers(measured, commanded, settings) >= settings.min_fingers


class CarriedObject:
    """The object's position in the palm frame, anchored when the grip closes on it."""

    def __init__(self) -> None:
        self._in_palm: np.ndarray | None = None

    @property
    def anchored(self) -> bool:
        return self._in_palm is not None

    def anchor(self, palm: pin.SE3, object_position: np.ndarray) -> None:
        self._in_palm = palm.rotation.T @ (np.asarray(object_position, float) - palm.translation)

    def release(self) -> None:
        self._in_palm = None

    def position(self, palm: pin.SE3) -> np.ndarray:
        if self._in_palm is None:
            raise RuntimeError("no carried object: anchor() it when the grip closes")
        return palm.translation + palm.rotation @ self._in_palm
