"""Driver personalities: the real drivers' topics, names, orders, effort semantics and rules,
played on top of the simulator, so a hardware profile is checked against the driver and not
against itself. Each personality holds its driver's facts here, independently of the profile
files (config/robots/*/profile.yaml) that the stack reads: a wrong joint map then moves the
wrong joint or is refused, as on the robot. Sources are the drivers' own files, listed in
/work/shared/HARDWARE.md; every enforced rule names the one it comes from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drex_ros.core.robot.model import ARM_JOINTS, FINGERS

# Franka "Limits for Franka Research 3" / "Limits for Panda" (frankarobotics.github.io/docs/
# control_parameters.html): the motion generator's acceleration and jerk bounds per joint.
FR3_ACCELERATION = (10.0,) * 7
FR3_JERK = (5000.0,) * 7
PANDA_ACCELERATION = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0)
PANDA_JERK = (7500.0, 3750.0, 5000.0, 6250.0, 7500.0, 10000.0, 10000.0)
DISCONTINUITY_TOLERANCE = 0.01  # rad: timing jitter between command arrivals, on top of the bound


@dataclass(frozen=True)
class DriverFacts:
    """One driver as it is: its joint names in its order, the joint each one physically is
    (the simulator's URDF name), its topics, message types, state rate and effort semantics."""

    name: str
    names: tuple[str, ...]
    physical: tuple[str, ...]
    command_topic: str
    command_type: str  # joint_trajectory | float64_array | joint_state
    state_topic: str
    state_rate_hz: float  # 0: every simulator sample
    effort: str  # what the state's effort field holds
    acceleration: tuple[float, ...] = ()
    jerk: tuple[float, ...] = ()
    kp: tuple[float, ...] = ()  # the driver's PD gain, N*m/rad (hands: position PD on the PC)
    torque_cap: tuple[float, ...] = ()  # N*m the driver clamps its PD torque to


def _wonik_physical() -> tuple[str, ...]:
    # ah_joint<finger><joint>, finger 0 = thumb, then index, middle, ring
    # (allegro_hand_bringup/config/v4/single_hand/ros2_controllers.yaml)
    return FINGERS["thumb"] + FINGERS["index"] + FINGERS["middle"] + FINGERS["ring"]


# Torque caps: v4_spec.hpp / allegro_node_pd.cpp PWM caps over 1200 (torque x 1200 = PWM); the
# Wonik driver's normalized torque_max defaults are the same numbers (0.312 = 375/1200 ...).
_CAP_FINGER, _CAP_THUMB = (0.3125, 0.5625, 0.375, 0.2375), (0.4375, 0.3375, 0.225, 0.225)
# PD gains in N*m/rad: allegro_node_pd.cpp k_p over its torque scale (?): see the profiles' README notes.
_KP_FINGER, _KP_THUMB = (0.75, 0.75, 0.75, 1.25), (1.25, 1.25, 1.25, 0.75)

DRIVERS = {
    "franka_fr3": DriverFacts(
        "franka_fr3", tuple(f"fr3_joint{i}" for i in range(1, 8)), ARM_JOINTS,
        "/fr3_arm_controller/joint_trajectory", "joint_trajectory", "franka/joint_states", 0.0,
        "measured_with_gravity", FR3_ACCELERATION, FR3_JERK),
    "franka_panda": DriverFacts(
        "franka_panda", ARM_JOINTS, ARM_JOINTS, "/panda_arm_controller/joint_trajectory", "joint_trajectory",
        "franka/joint_states", 0.0, "measured_with_gravity", PANDA_ACCELERATION, PANDA_JERK),
    "wonik_allegro": DriverFacts(
        "wonik_allegro", tuple(f"ah_joint{f}{j}" for f in range(4) for j in range(4)), _wonik_physical(),
        "/allegro_hand_position_controller/commands", "float64_array", "/joint_states", 100.0, "commanded",
        kp=_KP_THUMB + _KP_FINGER * 3, torque_cap=_CAP_THUMB + _CAP_FINGER * 3),
    "legacy_allegro": DriverFacts(
        "legacy_allegro", tuple(f"joint_{i}.0" for i in range(16)),
        FINGERS["index"] + FINGERS["middle"] + FINGERS["ring"] + FINGERS["thumb"],
        "/allegroHand_0/joint_cmd", "joint_state", "/allegroHand_0/joint_states", 333.0, "commanded",
        kp=_KP_FINGER * 3 + _KP_THUMB, torque_cap=_CAP_FINGER * 3 + _CAP_THUMB),
}


class Rejected(ValueError):
    """A command the driver refuses; the message is what the driver would log."""


@dataclass(frozen=True)
class TrajectoryPoint:
    positions: Sequence[float]
    velocities: Sequence[float]
    effort: Sequence[float]
    time_from_start: float


def check_trajectory(facts: DriverFacts, joint_names: Sequence[str], points: Sequence[TrajectoryPoint],
                     stamp: float, now: float) -> np.ndarray:
    """ros2_controllers' JTC (joint_trajectory_controller.cpp, validate_trajectory_msg): the final
    point's positions in the driver's order, or Rejected."""
    unknown = [n for n in joint_names if n not in facts.names]
    if unknown:  # "Incoming joint ... doesn't match the controller's joints"
        raise Rejected(f"incoming joint {unknown[0]} doesn't match the controller's joints")
    if sorted(joint_names) != sorted(facts.names):  # allow_partial_joints_goal defaults to false
        raise Rejected(f"joints on incoming trajectory don't match the controller joints ({len(joint_names)} given)")
    if not points:
        raise Rejected("empty trajectory")
    for p in points:
        if len(p.positions) != len(joint_names):
            raise Rejected("mismatch between joint_names and positions size")
        if len(p.effort):  # effort command interface not claimed: JTC refuses effort fields
            raise Rejected("trajectory point has effort, which this controller does not command")
        if len(p.velocities) not in (0, len(joint_names)):
            raise Rejected("mismatch between joint_names and velocities size")
    if stamp > 0.0 and stamp + points[-1].time_from_start < now:  # header stamp 0 means "start now"
        raise Rejected("received trajectory with non-zero start time that ends in the past")
    order = {n: k for k, n in enumerate(joint_names)}
    last = points[-1]
    q = np.array([last.positions[order[n]] for n in facts.names], float)
    v = np.array([last.velocities[order[n]] for n in facts.names], float) if len(last.velocities) else np.zeros(len(q))
    return np.stack([q, v])


class FrankaReflex:
    """Franka's motion generator refuses discontinuous targets (franka_hardware/src/robot.cpp
    forwards them; libfranka raises joint_motion_generator_{velocity,acceleration}_discontinuity,
    franka_ros2 issues #55 #127 #168): a new target must be reachable from the last one, moving on
    at its velocity, within the joint's acceleration limit over the time between them, which is
    at least the point's time_from_start: the JTC spreads a change over that much time (its spline
    runs at 1 kHz between). A stream that stops is no step: the JTC reaches its last point and holds
    it there, so a target within reach of the last point is fine too (a gate that fell silent on
    stale state while moving restarts at rest where it stopped). The first violation latches an
    abort until error recovery, as on the robot."""

    def __init__(self, facts: DriverFacts) -> None:
        self.facts = facts
        self.acc, self.jerk = np.asarray(facts.acceleration, float), np.asarray(facts.jerk, float)
        self.error = ""
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None

    def check(self, q: np.ndarray, v: np.ndarray, t: float, horizon: float = 0.0) -> bool:
        if self.error:
            return False
        if self._last is not None:
            t0, q0, v0 = self._last
            dt = max(t - t0, 0.0)
            spread = max(dt, horizon)  # the time over which the JTC may blend the change
            reach = 0.5 * self.acc * spread**2 + DISCONTINUITY_TOLERANCE
            off = np.minimum(np.abs(q - (q0 + v0 * dt)), np.abs(q - q0)) - reach
            if (off > 0).any():
                k = int(np.argmax(off))
                self.error = (f"joint_motion_generator_acceleration_discontinuity: {self.facts.names[k]} target "
                              f"{off[k] + reach[k]:.4f} rad off its path and its last point in {dt:.4f} s (last "
                              f"{q0[k]:.4f} rad at {v0[k]:.3f} rad/s, new {q[k]:.4f} rad; arm aborted; error "
                              f"recovery needed)")
                return False
        self._last = (t, q.copy(), v.copy())
        return True

    def recover(self) -> None:
        self.error, self._last = "", None


def forward_command(facts: DriverFacts, data: Sequence[float]) -> np.ndarray:
    """forward_command_controller (forward_controllers_base.cpp): one value per joint, in the
    controller's joint order, or the command is dropped."""
    if len(data) != len(facts.names):
        raise Rejected(f"command size ({len(data)}) does not match number of interfaces ({len(facts.names)})")
    return np.asarray(data, float)


def legacy_joint_cmd(facts: DriverFacts, names: Sequence[str], position: Sequence[float],
                     effort: Sequence[float]) -> np.ndarray:
    """allegro_node_pd.cpp setJointCallback: reads msg.position BY INDEX (names are not looked at);
    a message of 16 efforts would switch to torque control, which this personality cannot play."""
    del names  # the legacy node never reads them: that is the rule being played
    if len(position) == len(facts.names):
        return np.asarray(position, float)
    if len(effort) == len(facts.names):
        raise Rejected("torque command (effort only): not played by the simulator's position actuators")
    raise Rejected(f"joint_cmd with {len(position)} positions and {len(effort)} efforts ignored")


def hand_sim_target(facts: DriverFacts, q_cmd: np.ndarray, q_measured: np.ndarray, sim_kp: np.ndarray) -> np.ndarray:
    """The simulator target whose PD (gain sim_kp) gives the driver's PD torque kp*(q_cmd - q):
    the driver's gains, not the simulator's, decide how hard a finger presses."""
    kp = np.asarray(facts.kp, float)
    out = q_measured + kp / sim_kp * (q_cmd - q_measured)
    return np.where(np.isfinite(q_measured), out, q_cmd)


def arm_state_effort(facts: DriverFacts, effort_net: np.ndarray, gravity: np.ndarray) -> np.ndarray:
    """franka_hardware/doc/index.rst: the effort state is the measured link-side tau_J, gravity
    included; the simulator reports torques net of its gravity compensation."""
    return effort_net + gravity if facts.effort == "measured_with_gravity" else effort_net
