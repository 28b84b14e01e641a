"""One URDF-named joint state from the drivers' own state streams, or none while any is stale.

Each driver group (arm, hand) publishes at its own rate with its own names and stamps; a
message counts for a group only if it carries every joint of that group (a topic may be shared:
Franka's joint_state_publisher and Wonik's broadcaster both publish /joint_states). The merged
state exists only while every group has been heard within its timeout: a silent hand must stop
the robot (safety publishes nothing without fresh state), and `stale()` says which driver and
topic went quiet. Efforts are converted to the stack's convention, net of gravity: a driver
reporting measured torque with gravity (Franka's tau_J) has the URDF model's g(q) subtracted;
commanded torques (the Allegro drivers) pass through as the simulator's hand efforts are the
PD's commanded torques too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from drex_ros.core.robot.joints import JointIndex
from drex_ros.core.robot.profile import GroupSpec, Profile


@dataclass
class GroupSample:
    t: float  # receipt time on the merger's clock
    stamp: float  # the driver's header stamp (s), 0 when unstamped
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


@dataclass(frozen=True)
class MergedState:
    stamp: float  # the primary (fastest) group's stamp; the others' latest samples ride along
    position: np.ndarray  # URDF order
    velocity: np.ndarray
    effort: np.ndarray


class StateMerger:
    def __init__(self, profile: Profile, n_joints: int,
                 gravity: Callable[[np.ndarray], np.ndarray] | None = None, timeout_scale: float = 1.0) -> None:
        self.groups: dict[str, GroupSpec] = dict(profile.groups)
        self.n = n_joints
        self._gravity = gravity
        self.timeout = {g: s.state_timeout_s * timeout_scale for g, s in self.groups.items()}
        self._latest: dict[str, GroupSample] = {}
        self._indices = {name: JointIndex(g.map.driver_names) for name, g in self.groups.items()}  # driver order
        # The merged state is published with each sample of the fastest driver (the arm's 1 kHz),
        # so the identifier sees the arm at its own rate; slower groups contribute their latest.
        self.primary = max(self.groups, key=lambda g: self.groups[g].state_rate_hz) if self.groups else ""
        self.ignored: dict[str, int] = {g: 0 for g in self.groups}  # messages missing some of the group's joints
        if any(g.effort == "measured_with_gravity" for g in self.groups.values()) and gravity is None:
            raise ValueError("a group reports efforts with gravity: the merger needs a gravity model")

    def on_message(self, topic: str, names: Sequence[str], position: Sequence[float], velocity: Sequence[float],
                   effort: Sequence[float], stamp: float, t: float) -> list[str]:
        """Take one driver message; returns the groups it updated."""
        updated = []
        for name, g in self.groups.items():
            if g.state_topic != topic:
                continue
            sample = self._sample(name, names, position, velocity, effort, stamp, t)
            if sample is None:
                self.ignored[name] += int(bool(set(names) & set(g.map.driver_names)))
                continue
            self._latest[name] = sample
            updated.append(name)
        return updated

    def stale(self, t: float) -> list[str]:
        """One line per group without fresh state, naming its driver topic."""
        out = []
        for name, g in self.groups.items():
            s = self._latest.get(name)
            if s is None:
                out.append(f"{name} state: nothing received on {g.state_topic} yet")
            elif t - s.t > self.timeout[name]:
                out.append(f"{name} state stale: {g.state_topic} silent for {t - s.t:.3f} s "
                           f"(timeout {self.timeout[name]:g} s)")
        return out

    def merged(self, t: float) -> MergedState | None:
        if self.stale(t):
            return None
        q, v, e = (np.full(self.n, np.nan) for _ in range(3))
        for name, g in self.groups.items():
            s, idx = self._latest[name], g.map.urdf_index
            q[idx], v[idx], e[idx] = s.position, s.velocity, s.effort
        for g in self.groups.values():
            if g.effort == "measured_with_gravity":
                idx = g.map.urdf_index
                e[idx] = e[idx] - self._gravity(np.nan_to_num(q))[idx]
        return MergedState(self._latest[self.primary].stamp, q, v, e)

    def _sample(self, group: str, names: Sequence[str], position, velocity, effort, stamp: float,
                t: float) -> GroupSample | None:
        """The group's joints out of one message, or None if it lacks any (or names one twice)."""
        index = self._indices[group]
        if len(position) != len(names) or len(index.map(names).dst) != len(index):
            return None
        return GroupSample(t, stamp, *(index.gather(names, values) for values in (position, velocity, effort)))
