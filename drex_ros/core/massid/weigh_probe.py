"""The weighing probe: grasp, lift, hold still, set down, let go.

It follows a push that did not pin the mass down (weigh.weighing_reason), and replaces the push
for a sphere where enabled. Why (probe.py's identifiability analysis): a pushed sphere rolls off
the palm and feels a force only while the palm speeds up, about 1/70 of the information one
second of weighing carries; a light box or cylinder resists the palm with a few tenths of a
newton, against a push-to-push scatter of the contact of the same order. Lifted and held still,
the object's weight m g is the only load the arm carries beyond its own model, so the arm's
joint efforts read it directly (weigh.py), friction and rolling play no part. Measured
in-process (spheres 0.1-1.5 kg, the arm's efforts over 2.5 s of hold): within 0.7%.

The grip needs no mass: the hand closes at full effort (the expert's posture, grasp_plan's
HAND_CLOSED). In-process it held bench-sized boxes and cylinders at up to 0.6 kg (27 of 28;
a 4 cm cylinder was knocked over) and spheres at up to 1.5 kg; at 0.9 kg two of 28 slipped,
so heavier objects are not weighed (MassIdConfig.weigh_max_mass). The arm follows the
grasp plan's keyframes (approach, descend, close, lift), holds, lowers the object back onto the
table where it was (or pulled in to SET_DOWN_MAX_RADIUS from the base), opens the hand, rises
and returns to where it started, so the task then grasps it as after any probe (boxes and
cylinders came down within 0.5-2.4 cm of the planned spot, turned by 7-37 deg). A sphere does
not stay: squeezed up to 2.2 cm up in the hand, it drops or is flicked on release and rolls
on (the scene's table has no rolling resistance), so mass_id_node weighs spheres only on
request (weigh_spheres).

Tare: the empty hand is held still at the hold's arm configuration before the grasp and again
after the set-down, each stop (and the hold) followed by the same vertical sweep, and weigh.py
subtracts what the arm reads in the empty sweeps from the loaded one. What the
arm's efforts read beyond its model at a still configuration - torque sensor offsets, the gap
between the real and the modelled arm and hand (the hand alone is 0.955 kg: 5 % is 48 g) - is the
same with and without the object, so it cancels; only the object's weight remains. Without it a
held-out reality with such errors read light objects 17-70 % off (issue 19).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from drex_ros.core.massid.push_probe import ProbePlan, ProbePlanError
from drex_ros.core.robot.grasp_plan import HAND_CLOSED, HAND_OPEN, GraspPlanError, GraspTiming, min_jerk, plan_grasp
from drex_ros.core.robot.model import N_ARM, robot_model

# How far below the grasp pose the object is set down. Pressing lower (tried for spheres, which
# the grip squeezes up in the hand) made the fingers slide up the object and flick it on release.
SET_DOWN_PRESS = 0.0  # m
# A push moves the object outward (the demo's light box from 0.55 to 0.64 m), and a set-down
# 1 cm farther still left it where the task's grasp could not reach (palm 8-9 mm short): the
# object goes down no farther from the base than this. The open hand then rises straight up.
SET_DOWN_MAX_RADIUS = 0.58  # m
BACK_OFF_RISE = 0.08  # m
# Each stop ends in a slow vertical sweep, up and back down, and the weight is read during it
# (tare.py): moving, every joint's friction is the sliding one, the same in the loaded sweep as in
# the empty ones. Still, the friction a link-side sensor sees is stuck wherever the arm came to
# rest, and in drawn cells through the node chain that left 0.05-0.15 N between stops (a light
# object's weight is 0.5 N).
SWEEP_HEIGHT = 0.04  # m


@dataclass(frozen=True)
class WeighTiming:
    """Seconds per segment after the grasp plan's approach, descend and close."""

    # Every stop the arm is weighed at - the tares and the hold - is reached by the same upward
    # move along the grasp's vertical: joint friction a link-side torque sensor still sees then
    # holds the same way at each. (A tare reached from above the set-down spot, which a push moves
    # outward, read 0.2-0.3 N apart from the other in drawn cells: the arm's joints arrived from
    # other directions.)
    to_tare: float = 3.5  # from the start to the pre-grasp pose (the grasp's approach time) ...
    rise_to_tare: float = 1.5  # ... and up, empty-handed, to the hold's configuration
    tare: float = 1.5  # the empty hand held still there, before the grasp and after the set-down (as the hold) ...
    sweep: float = 1.2  # ... then raised by SWEEP_HEIGHT and lowered back, each way in this long ...
    after_sweep: float = 0.3  # ... and held still again briefly
    tare_to_grasp: float = 1.5  # from there to the grasp's pre-grasp pose
    back_to_tare: float = 1.5  # after the set-down, to the pre-grasp pose again, and up as before
    grip_settle: float = 0.5  # the fingers come to rest on the object before the lift
    lift: float = 1.5
    hold: float = 1.5  # still at the lift pose (the chain left 0.8 s of 1 s still), then swept as the tares
    lower: float = 2.0
    release: float = 1.0
    back_off: float = 1.0
    home: float = 3.0


def plan_weigh_probe(q_start: np.ndarray, object_position: np.ndarray, object_yaw: float, shape: str,
                     size: tuple[float, ...], rate_hz: float = 250.0,
                     timing: WeighTiming | None = None) -> ProbePlan:
    """Full-robot commands at `rate_hz`; push_start..push_end of the plan is the hold (direction +z).
    The empty hand is held at the hold's arm configuration for `timing.tare` s before the grasp and
    after the set-down (the tares)."""
    timing = timing or WeighTiming()
    q_start = np.asarray(q_start, dtype=float)
    quat = np.array([np.cos(object_yaw / 2), 0.0, 0.0, np.sin(object_yaw / 2)])
    try:
        grasp = plan_grasp(np.asarray(object_position, dtype=float), quat, shape, size, q_start,
                           timing=GraspTiming())
    except GraspPlanError as exc:
        raise ProbePlanError(f"no weighing grasp can be planned: {exc}") from exc
    phases = grasp.phases()
    shift = _set_down_shift(np.asarray(object_position, dtype=float))
    q_set = _palm_ik(grasp.palm_grasp, shift, grasp.q_grasp, q_start)
    q_up = _palm_ik(grasp.palm_grasp, shift + np.array([0.0, 0.0, BACK_OFF_RISE]), q_set, q_start)
    q_top = _palm_ik(grasp.palm_grasp, np.array([0.0, 0.0, grasp.geometry.lift_height + SWEEP_HEIGHT]),
                     grasp.q_lift, q_start)

    def stop(still: float, hand: np.ndarray) -> tuple:  # still at the lift pose, then the sweep
        return ((still, grasp.q_lift, hand), (timing.sweep, q_top, hand), (timing.sweep, grasp.q_lift, hand),
                (timing.after_sweep, grasp.q_lift, hand))

    segments = (  # (duration, arm pose at the end, hand posture at the end)
        (timing.to_tare, grasp.q_pregrasp, HAND_OPEN), (timing.rise_to_tare, grasp.q_lift, HAND_OPEN),
        *stop(timing.tare, HAND_OPEN),
        (timing.tare_to_grasp, grasp.q_pregrasp, HAND_OPEN),
        (phases["descend"][1] - phases["descend"][0], grasp.q_grasp, HAND_OPEN),
        (phases["close"][1] - phases["close"][0], grasp.q_grasp, HAND_CLOSED),
        (timing.grip_settle, grasp.q_grasp, HAND_CLOSED),
        (timing.lift, grasp.q_lift, HAND_CLOSED), *stop(timing.hold, HAND_CLOSED),
        (timing.lower, q_set, HAND_CLOSED), (timing.release, q_set, HAND_OPEN), (timing.back_off, q_up, HAND_OPEN),
        (timing.back_to_tare, grasp.q_pregrasp, HAND_OPEN), (timing.rise_to_tare, grasp.q_lift, HAND_OPEN),
        *stop(timing.tare, HAND_OPEN),
        (timing.home, q_start[:N_ARM], q_start[N_ARM:]))
    ends = np.cumsum([d for d, _, _ in segments])
    arm_keys = [(float(t), arm, hand) for t, (_, arm, hand) in zip(ends, segments, strict=True)]
    times = np.arange(0.0, ends[-1] + 1e-9, 1.0 / rate_hz)
    commands = _interpolate(times, [(0.0, q_start[:N_ARM], q_start[N_ARM:]), *arm_keys])
    closed, hold_start = float(ends[8]), float(ends[10])  # after the first stop's 4 segments
    hold_end = hold_start + timing.hold + 2 * timing.sweep + timing.after_sweep
    return ProbePlan(times, commands, push_start=hold_start, contact_time=closed, push_end=hold_end,
                     direction=np.array([0.0, 0.0, 1.0]))


def _set_down_shift(object_position: np.ndarray) -> np.ndarray:
    """Where the object goes down, from where it was grasped: no farther from the base than
    SET_DOWN_MAX_RADIUS, so the task's grasp reaches it."""
    xy = object_position[:2]
    r = float(np.linalg.norm(xy))
    inward = xy * (1.0 - SET_DOWN_MAX_RADIUS / r) if r > SET_DOWN_MAX_RADIUS else np.zeros(2)
    return np.array([-inward[0], -inward[1], -SET_DOWN_PRESS])


def _palm_ik(palm_grasp: pin.SE3, offset: np.ndarray, seed_arm: np.ndarray, q_start: np.ndarray) -> np.ndarray:
    """Arm joints for the grasp's palm pose moved by `offset` (m, world)."""
    seed = q_start.copy()
    seed[:N_ARM] = seed_arm
    res = robot_model().solve_palm_ik(pin.SE3(palm_grasp.rotation, palm_grasp.translation + offset), seed,
                                      tol_pos=5e-4, tol_rot=5e-3)
    if not res.success:
        raise ProbePlanError(f"no weighing grasp can be planned: the set-down pose is out of reach "
                             f"({res.position_error:.4f} m)")
    return res.q[:N_ARM]


def _interpolate(times: np.ndarray, keys: list[tuple[float, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Min-jerk between consecutive (time, arm, hand) keyframes."""
    out = np.empty((len(times), N_ARM + len(keys[0][2])))
    for (t0, a0, h0), (t1, a1, h1) in zip(keys[:-1], keys[1:], strict=True):
        sel = (times >= t0) & (times <= t1)
        s = min_jerk((times[sel] - t0) / max(t1 - t0, 1e-9))[:, None]
        out[sel, :N_ARM] = a0 + s * (np.asarray(a1) - a0)
        out[sel, N_ARM:] = h0 + s * (np.asarray(h1) - h0)
    return out
