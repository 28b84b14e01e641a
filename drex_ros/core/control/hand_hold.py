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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from drex_ros.core.robot.model import FINGERS, JOINT_NAMES

_FINGER_INDEX = {f: [JOINT_NAMES.index(j) for j in joints] for f, joints in FINGERS.items()}
_HAND_INDEX = [i for idx in _FINGER_INDEX.values() for i in idx]


@dataclass(frozen=True)
class InHandSettings:
    stall_rad: float = 0.25  # a finger this far from its commanded position is blocked by the object
    min_fingers: int = 2  # blocked fingers needed to call the object held
    fresh_pose_s: float = 0.2  # a camera pose this recent is used as seen; older, a held object is carried
    # Free fingers must persist this long before the object counts as gone: a policy blending in
    # again after a refusal commands the measured position for a moment, like an empty hand.
    release_after_s: float = 1.0
    # Fingers slower than this (rad/s) have stopped closing: the grip is set and may take load.
    # (Measured: up to 3 rad/s while closing, under 0.07 once stalled on the object.)
    settled_speed: float = 0.3


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


def grip_settled(measured: np.ndarray, velocity: np.ndarray, commanded: np.ndarray,
                 settings: InHandSettings | None = None) -> bool:
    """The fingers are stalled on the object and have stopped moving: the arm may lift now.

    A lift that starts while the fingers still close pulls the object out of a grip that is
    not yet squeezing (seen when the policy's commands ran late on a loaded host).
    """
    settings = settings or InHandSettings()
    speed = np.abs(np.asarray(velocity, float)[_HAND_INDEX])
    return bool(np.all(np.isfinite(speed)) and speed.max() < settings.settled_speed
                and object_in_hand(measured, commanded, settings))


class CarriedObject:
    """The object's position (and optionally orientation) in the palm frame, anchored when the grip closes."""

    def __init__(self) -> None:
        self._in_palm: np.ndarray | None = None
        self._rotation_in_palm: np.ndarray | None = None

    @property
    def anchored(self) -> bool:
        return self._in_palm is not None

    def anchor(self, palm: pin.SE3, object_position: np.ndarray, object_rotation: np.ndarray | None = None) -> None:
        self._in_palm = palm.rotation.T @ (np.asarray(object_position, float) - palm.translation)
        self._rotation_in_palm = None if object_rotation is None else palm.rotation.T @ object_rotation

    def release(self) -> None:
        self._in_palm = self._rotation_in_palm = None

    def position(self, palm: pin.SE3) -> np.ndarray:
        if self._in_palm is None:
            raise RuntimeError("no carried object: anchor() it when the grip closes")
        return palm.translation + palm.rotation @ self._in_palm

    def rotation(self, palm: pin.SE3) -> np.ndarray:
        """World rotation of the carried object (anchored with a rotation)."""
        if self._rotation_in_palm is None:
            raise RuntimeError("no carried orientation: anchor() it with the object's rotation")
        return palm.rotation @ self._rotation_in_palm


class HeldObjectTracker:
    """The object's position for the task: as seen, or carried with the palm while held and hidden.

    update() returns the estimate (position, time) or None, and an event: "anchored" when the
    grip closed on the object, "dropped" when a held object's fingers came free for good.
    """

    def __init__(self, palm_pose: Callable[[np.ndarray], pin.SE3], settings: InHandSettings | None = None) -> None:
        self.palm_pose, self.settings = palm_pose, settings or InHandSettings()
        self.carry = CarriedObject()
        self._free_since: float | None = None

    def reset(self) -> None:
        self.carry.release()
        self._free_since = None

    def update(self, now: float, seen: tuple[np.ndarray, float] | None, measured: np.ndarray | None,
               commanded: np.ndarray | None, closing: bool,
               rest: np.ndarray | None = None) -> tuple[tuple[np.ndarray, float] | None, str]:
        """seen: (position, stamp) of the last camera pose; closing: the grasp has reached its close phase;
        commanded: the hand's live command, None when there is none (then a held object stays held);
        rest: where the object settled before the hand reached for it, the anchor when given. The last
        pose seen is the anchor otherwise, but it is taken while the hand covers the markers: one such
        pose, 56 mm low, once made the task judge a 12.5 cm lift as 7.9 cm."""
        s = self.settings
        if commanded is None and self.carry.anchored and measured is not None:
            held = True  # no live command to compare with (a silent policy): no verdict, keep carrying
        else:
            held = closing and measured is not None and commanded is not None and object_in_hand(measured, commanded, s)
        event = ""
        if held:
            self._free_since = None
        elif self.carry.anchored:
            self._free_since = now if self._free_since is None else self._free_since
            held = now - self._free_since < s.release_after_s
            if not held:
                self.reset()
                event = "dropped"
        if not held:
            return seen, event
        palm = self.palm_pose(measured)
        if not self.carry.anchored and (rest is not None or seen is not None):
            # Resting on the table, untouched until the grip closed.
            self.carry.anchor(palm, rest if rest is not None else seen[0])
            event = "anchored"
        if (seen is not None and now - seen[1] <= s.fresh_pose_s) or not self.carry.anchored:
            return seen, event
        return (self.carry.position(palm), now), event
