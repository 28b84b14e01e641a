"""The mass-identification push probe: which push, and why it makes mass observable.

Identifiability (Fisher information of the measurements about theta = (m, mu))
-------------------------------------------------------------------------------
The palm pushes the object across the table. For a sliding object (box, upright cylinder)

    F(t) = m a(t) + mu (m g - F_z(t))        F: palm force along the push, F_z: palm force upwards

(F_z is friction at the palm face: the arm's compliance lets the face slip vertically). For
Gaussian noise the Fisher information is I = sum_t g_t g_t^T / sigma^2 with the sensitivities
g_t = dF/d(m, mu) = (a + mu g, m g - F_z). Each channel in turn:

* Object poses (2 mm, 1 deg): with persistent contact the object's path is the palm's path;
  d(pose)/dm is the arm's tracking error under a few newtons (600 N*m/rad joints), far below a
  millimetre for 10% of mass: I ~ 0. A free slide decelerates at mu g whatever m: mu only.
* Quasi-static push (a = 0, F_z = 0): g_t is the same vector at every t, I has rank 1 (only
  m * mu is seen).
* Accelerating phases make the first column vary. But the arm's PD lag filters the palm's
  acceleration to about 2 m/s^2 (measured; asked for 6-11), below mu g = 3-10 m/s^2, and the
  contact's stick-slip is chaotic: a 1% parameter change changes the force trace by as much
  as a 5-10% mass change does. Acceleration alone left +-20-40% on m (measured).
* The joint efforts give F and F_z (inverse dynamics of the arm, force_regression.py). Moving
  the palm up and down while it pushes at constant speed ("scrub") makes the palm face slip
  vertically, so friction at the face alternately presses the object into the table and
  lifts it: F_z swings by about +-mu_palm F, and the table's friction force follows
  mu (m g - F_z). The second column of g_t now varies independently of the first: I has full
  rank, with the regression slope dF/d(-F_z) = mu and intercept mu m g. Measured: mu within
  1-5%, m within 10-17% before and 1-7% after calibrating the reading on replays (massid).

So the probe, with the back of the palm: creep into contact at 3 cm/s (small impact, object
starts from rest), scrub 3.5 s at 3 cm/s with +-6 mm vertical at 2 Hz, then a quick speed-up to
0.35 m/s (a != 0, more inertial information) and a stop, all with persistent contact (the
object stops with the palm; no separation and re-impact, which is what makes losses jagged).
The scrub's length is what averages the chaos (the reading's scatter between replays falls a
little faster than 1/sqrt(time)).

The scrub's length and the final speed-up trade information against travel (13.5-14 cm, within
the task's grasp); the measurements behind that choice are in MODEL_CARD.md ("Push probe design").

A rolling sphere has no friction to measure and leaves a palm that stops accelerating: it gets
one short, hard speed-up from contact and rolls away; its mass is the momentum it took over the
speed it rolls away at (integral of F + F_z = 7/5 m v, massid / force_regression). That
carries little: the sphere feels a force only while the palm speeds up (about 2 m/s^2 for
0.17 s), F = 7/5 m a = 2.8 N per kg for 0.2 s, where a box's scrub carries mu m g = 3-10 N per
kg for 3.5 s: by (F/m)^2 T, two orders of magnitude less information per kg. Weighing a lifted
object (F = m g for as long as it is held) carries far more: a sphere is not pushed by default
(`push_spheres`), since the push also rolls it out of the task's reach; the measurements are in
MODEL_CARD.md.

Why the back of the palm and not the fingers: the Allegro fingers are PD joints of 3 N*m/rad
with a 0.7 N*m limit; they fold under the 15 N a 1.5 kg object with mu = 1 needs. The palm is
carried by the arm (600 N*m/rad, 87 N*m): it pushes every object in range, and the contact force
shows in the arm's joint efforts. The hand is held open, turned so the fingers point sideways
(horizontal, away from the object) and the thumb up, clear of the table. A box is pushed along
the face normal closest to radial (an edge-first contact turns it during the push, the most
chaotic part of any push); round objects radially from the robot base (stays in reach). Only
when that push leaves the arm's reach is another face, or a push towards the base, tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pinocchio as pin

from drex_ros.core.robot.grasp_plan import min_jerk
from drex_ros.core.robot.model import ARM_JOINTS, robot_model
from drex_ros.core.robot.objects import half_extents

# Palm collision box in the palm_link frame (centre, half sizes): thickness along x, the
# back face (the pushing face) is at x = centre - 0.02; the fingers extend along +z.
PALM_BOX_CENTER = np.array([-0.009, 0.0, -0.047])
PALM_BOX_HALF = np.array([0.02, 0.056, 0.048])


@dataclass
class PushProfile:
    """Palm speed along the push: creep into contact, speed up, hold, stop hard, dwell.

    The creep (a = 0) measures the sliding friction force mu (m g - F_z); the speed-up
    (a > 0, persistent contact) adds m a; the hard stop decelerates the palm faster than
    mu g for most objects, so the object leaves the palm and slides freely, decelerating at
    mu g whatever its mass: its slide distance v^2 / (2 mu g) gives mu from the camera alone.
    The palm then stays put, so there is no re-impact. Objects with a higher mu stay on the
    palm through the stop instead, and the large deceleration separates m from mu in the force.
    """

    standoff: float = 0.03  # gap between palm and object before the push (see ProbeConfig.settle_time)
    creep_speed: float = 0.03  # contact is made at this speed
    creep_past_contact: float = 0.008  # creep this far after nominal contact (quasi-static phase)
    scrub_time: float = 3.5  # s of sliding at creep speed while the palm moves up and down (module docstring)
    scrub_amplitude: float = 0.006  # m, vertical palm oscillation (the palm face slips up and down)
    scrub_frequency: float = 2.0  # Hz
    peak_speed: float = 0.35  # m/s
    ramp_up: float = 0.08  # s, cosine speed-up (asks for pi/2 * dv / T = 6.3 m/s^2)
    hold: float = 0.0  # s at peak speed (4 cm of travel per 0.12 s, better spent on the scrub)
    ramp_down: float = 0.05  # s, cosine stop (asks for ~11 m/s^2; the arm gives what it can)
    dwell: float = 0.35  # hold after the push (the object slides to rest)

    def samples(self, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
        """Times, palm displacement s(t) along the push and z(t) up, and the phase start times."""
        t_creep = (self.standoff + self.creep_past_contact) / self.creep_speed
        phases = {"creep": 0.0, "scrub": t_creep}
        t_creep += self.scrub_time
        phases.update({"ramp_up": t_creep, "hold": t_creep + self.ramp_up})
        phases["ramp_down"] = phases["hold"] + self.hold
        phases["dwell"] = phases["ramp_down"] + self.ramp_down
        phases["end"] = phases["dwell"] + self.dwell
        t = np.arange(0.0, phases["end"] + 1e-9, dt)
        v0, v1 = self.creep_speed, self.peak_speed
        v = np.full_like(t, v0)
        up = (t >= phases["ramp_up"]) & (t < phases["hold"])
        v[up] = v0 + (v1 - v0) * 0.5 * (1 - np.cos(np.pi * (t[up] - phases["ramp_up"]) / self.ramp_up))
        v[(t >= phases["hold"]) & (t < phases["ramp_down"])] = v1
        down = (t >= phases["ramp_down"]) & (t < phases["dwell"])
        v[down] = v1 * 0.5 * (1 + np.cos(np.pi * (t[down] - phases["ramp_down"]) / self.ramp_down))
        v[t >= phases["dwell"]] = 0.0
        s = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]) * dt)])
        z = np.zeros_like(t)
        scrub = (t >= phases["scrub"]) & (t < phases["ramp_up"])
        z[scrub] = self.scrub_amplitude * np.sin(2 * np.pi * self.scrub_frequency * (t[scrub] - phases["scrub"]))
        return t, s, z, phases


@dataclass
class ProbeConfig:
    palm_height: float = 0.08  # palm box centre above the table (wrist and fingers clear it)
    finger_tilt: float = 0.0  # rad; roll of the hand about the push axis
    travel_height: float = 0.20  # palm height when moving over the object
    move_speed: float = 0.6  # rad/s peak joint speed for the free moves
    # Hold at the pre-push pose before the push. Through the node chain on a loaded host the
    # commands stall for up to ~0.8 s at times and the safety's per-joint speed clamp then bends
    # the palm's path: with 0.4 s and a 15 mm standoff the palm was still 4 cm high and 2.5 cm
    # forward when the push began, and landed on top of the object (3 of 21 bench objects).
    settle_time: float = 1.0
    rate_hz: float = 250.0  # command rate
    retreat: float = 0.03
    # If set, the push is slowed until its joints stay below this fraction of the URDF speeds
    # (safety_node clamps at 0.5; the 0.35 m/s speed-up asks joint 4 for 1.2-1.5x that). Off by
    # default: through the node chain a push slowed to 0.48 left the force reading 1.6-1.7x
    # off (3 of 3 runs unidentifiable), while the clamped push is replayed faithfully anyway
    # (the replay follows the targets the drivers applied, recovered from the joint states).
    velocity_fraction: float | None = None
    limit_margin: float = 0.03  # rad inside the joint limits (safety keeps 0.02)
    profile: PushProfile = field(default_factory=PushProfile)
    # A sphere rolls: it has no friction to measure and leaves the palm whenever the palm stops
    # accelerating. Its push is one short, hard speed-up from contact, as hard as the arm allows
    # (0.35 m/s in 0.25 s; with 0.25 m/s in 0.5 s the force regression read 2-4x more scatter):
    # the rolling contact is chaotic (replays differ by +-30% in force).
    sphere_profile: PushProfile = field(default_factory=lambda: PushProfile(
        creep_past_contact=0.0, scrub_time=0.0, scrub_amplitude=0.0, peak_speed=0.35, ramp_up=0.25, hold=0.0,
        ramp_down=0.15, dwell=0.3))

    def profile_for(self, shape: str) -> PushProfile:
        return self.sphere_profile if shape == "sphere" else self.profile


@dataclass
class ProbePlan:
    """Full-robot joint commands at `rate_hz`, and where the push is in time."""

    times: np.ndarray  # (N,) s from the start of the probe
    commands: np.ndarray  # (N, 23) joint position targets
    push_start: float  # time the palm leaves the pre-push pose
    contact_time: float  # nominal contact time
    push_end: float  # end of the post-push dwell
    direction: np.ndarray  # unit push direction in the table plane (3,)


class ProbeError(ValueError):
    """The probe cannot run (planning failed, or a failure while it runs)."""


class ProbePlanError(ProbeError):
    """No push of the object can be planned (too close to the base, every push out of reach)."""


def push_directions(object_xy: np.ndarray, shape: str = "sphere", yaw: float = 0.0) -> list[np.ndarray]:
    """Push directions to try, best first: radially away from the robot base, then towards it.

    Away from the base first: the palm pushes from the object's near side, where the arm is
    most dexterous. For a box, its face normals, the most radial first: the palm then meets a
    face flush. An edge-first contact turns the box into alignment during the push, and that
    turning is the most parameter-sensitive (chaotic) part of a push. The later directions are
    for an object whose outward push ends beyond the arm's reach: a box's other outward face
    (2 of 100 eval objects), then pushes towards the base, the palm reaching past the object
    with its wrist turned the other way (1 of 100 eval objects: a box at 0.61 m).
    """
    xy = np.asarray(object_xy, dtype=float)[:2]
    n = np.linalg.norm(xy)
    if n < 0.2:
        raise ProbePlanError(f"object at {xy} is too close to the robot base to push")
    radial = np.array([xy[0] / n, xy[1] / n, 0.0])
    if shape != "box":
        return [radial, -radial]
    normals = [np.array([np.cos(yaw + k * np.pi / 2), np.sin(yaw + k * np.pi / 2), 0.0]) for k in range(4)]
    outward = sorted((v for v in normals if v @ radial > 0), key=lambda v: -float(v @ radial))
    inward = sorted((v for v in normals if v @ radial <= 0), key=lambda v: float(v @ radial))
    return outward + inward


def push_direction(object_xy: np.ndarray, shape: str = "sphere", yaw: float = 0.0) -> np.ndarray:
    """The preferred push direction (see push_directions)."""
    return push_directions(object_xy, shape, yaw)[0]


def palm_rotation(direction: np.ndarray, finger_tilt: float = 0.0) -> np.ndarray:
    """Palm frame for a push along `direction`: back face forward, thumb up, fingers sideways.

    `finger_tilt` (rad) rolls the hand about the push axis so the fingers point slightly up,
    which keeps the splayed ring finger off the table when the palm pushes low.
    """
    x = -direction  # palm +x (front) faces back towards the robot
    y = np.array([0.0, 0.0, 1.0])  # thumb side up
    z = np.cross(x, y)  # fingers sideways
    c, s = np.cos(finger_tilt), np.sin(finger_tilt)
    y, z = c * y - s * z, s * y + c * z
    return np.column_stack([x, y, z])


def object_support(shape: str, size: tuple[float, ...], yaw: float, direction: np.ndarray) -> float:
    """Distance from the object's centre to its face touching a pusher moving along `direction`."""
    half = half_extents(shape, size)
    if shape != "box":
        return float(half[0])
    c, s = np.cos(yaw), np.sin(yaw)
    ex, ey = np.array([c, s, 0.0]), np.array([-s, c, 0.0])
    return float(abs(direction @ ex) * half[0] + abs(direction @ ey) * half[1])


def _palm_target(rot: np.ndarray, box_center_world: np.ndarray) -> pin.SE3:
    return pin.SE3(rot, box_center_world - rot @ PALM_BOX_CENTER)


def _min_jerk(q0: np.ndarray, q1: np.ndarray, duration: float, dt: float) -> np.ndarray:
    """Joint samples every dt from q0 (excluded) to q1 on the min-jerk profile."""
    s = np.linspace(0.0, 1.0, max(2, int(round(duration / dt)) + 1))[1:]
    return q0 + min_jerk(s)[:, None] * (q1 - q0)


def _push_joints(profile: PushProfile, dt: float, pre_center: np.ndarray, d: np.ndarray, q_pre: np.ndarray, ik):
    """Joint commands of the push: the profile's palm line through IK."""
    t_prof, s_prof, z_prof, phases = profile.samples(dt)
    # IK along the line at 2.5 mm knots for three palm heights, then joints at the profile's
    # samples: linear along the line, quadratic (Lagrange) in height.
    s_knots = np.arange(0.0, s_prof.max() + 0.0025, 0.0025)
    amp = max(profile.scrub_amplitude, 1e-4)
    levels = []
    for dz in (-amp, 0.0, amp):
        knots = [ik(pre_center + np.array([0, 0, dz]), q_pre)]
        for s in s_knots[1:]:
            knots.append(ik(pre_center + d * s + np.array([0, 0, dz]), knots[-1]))
        knots = np.array(knots)
        levels.append(np.stack([np.interp(s_prof, s_knots, knots[:, j]) for j in range(knots.shape[1])], axis=1))
    u = (z_prof / amp)[:, None]
    q_push = levels[0] * (u * (u - 1) / 2) + levels[1] * (1 - u * u) + levels[2] * (u * (u + 1) / 2)
    return t_prof, s_prof, z_prof, phases, q_push


def plan_probe(q_start: np.ndarray, object_position: np.ndarray, object_yaw: float, shape: str,
               size: tuple[float, ...], config: ProbeConfig | None = None) -> ProbePlan:
    """Joint commands for: move above the pre-push pose, descend, settle, push, dwell, retreat.

    The push is a straight palm line along a push direction, solved by IK every few
    millimetres and timed by `PushProfile`. When a pose of a push is out of reach, the next of
    `push_directions` is tried. Raises ProbePlanError if no push is in reach.
    """
    cfg = config or ProbeConfig()
    errors = []
    for d in push_directions(object_position, shape, object_yaw):
        try:
            return _plan_push(d, q_start, object_position, object_yaw, shape, size, cfg)
        except ProbeError as exc:
            errors.append(str(exc))
    others = f" (and in the other {len(errors) - 1} push directions)" if len(errors) > 1 else ""
    raise ProbePlanError(errors[0] + others)


def _plan_push(d: np.ndarray, q_start: np.ndarray, object_position: np.ndarray, object_yaw: float, shape: str,
               size: tuple[float, ...], cfg: ProbeConfig) -> ProbePlan:
    rm = robot_model()
    dt = 1.0 / cfg.rate_hz
    q_start = np.clip(np.asarray(q_start, dtype=float), rm.limits.lower + cfg.limit_margin,
                      rm.limits.upper - cfg.limit_margin)
    rot = palm_rotation(d, cfg.finger_tilt)
    obj = np.asarray(object_position, dtype=float)
    contact_dist = object_support(shape, size, object_yaw, d) + PALM_BOX_HALF[0]
    obj_xy = np.array([obj[0], obj[1], 0.0])
    profile = cfg.profile_for(shape)
    pre_center = obj_xy - d * (contact_dist + profile.standoff) + np.array([0, 0, cfg.palm_height])

    def ik(center: np.ndarray, seed: np.ndarray) -> np.ndarray:
        res = rm.solve_palm_ik(_palm_target(rot, center), seed, max_iter=500)
        if not res.success:
            raise ProbePlanError(f"palm pose at {np.round(center, 3)} is out of reach "
                             f"(position error {res.position_error * 1000:.1f} mm)")
        return res.q

    n_arm = len(ARM_JOINTS)  # fingers straight (the thumb's limit is > 0), inside the safety's margin
    hand_open = np.clip(np.zeros(len(q_start) - n_arm), rm.limits.lower[n_arm:] + cfg.limit_margin,
                        rm.limits.upper[n_arm:] - cfg.limit_margin)
    home = rm.home()
    home[len(ARM_JOINTS):] = hand_open
    q_above = ik(pre_center + np.array([0, 0, cfg.travel_height - cfg.palm_height]), home)
    q_pre = ik(pre_center, q_above)

    # Slow the push down until its fastest joint is within the safety's speed bound.
    for _ in range(4):
        t_prof, s_prof, z_prof, phases, q_push = _push_joints(profile, dt, pre_center, d, q_pre, ik)
        fraction = cfg.velocity_fraction or 1.0
        ratio = float(np.max(np.abs(np.diff(q_push[:, :len(ARM_JOINTS)], axis=0)) / dt
                             / (fraction * rm.limits.velocity[:len(ARM_JOINTS)])))
        if cfg.velocity_fraction is None or ratio <= 1.0:
            break
        profile = replace(profile, peak_speed=max(profile.creep_speed, profile.peak_speed / (1.02 * ratio)))
    else:
        raise ProbePlanError(f"the push needs joint speeds {ratio:.2f}x the safety bound even when slowed down")

    def move_time(qa: np.ndarray, qb: np.ndarray) -> float:
        return max(0.8, 1.875 * float(np.max(np.abs(qb - qa))) / cfg.move_speed)

    q_hand_open = q_start.copy()
    q_hand_open[len(ARM_JOINTS):] = hand_open
    segments = [q_start[None, :]]
    segments.append(_min_jerk(q_start, q_hand_open, 0.4, dt))
    segments.append(_min_jerk(q_hand_open, q_above, move_time(q_hand_open, q_above), dt))
    segments.append(_min_jerk(q_above, q_pre, move_time(q_above, q_pre), dt))
    segments.append(np.repeat(q_pre[None, :], int(round(cfg.settle_time / dt)), axis=0))
    push_start = sum(len(s) for s in segments) * dt
    segments.append(q_push[1:])
    push_end = sum(len(s) for s in segments) * dt
    q_end = q_push[-1]
    q_back = ik(pre_center + d * (s_prof[-1] - cfg.retreat), q_end)
    q_up = ik(pre_center + d * (s_prof[-1] - cfg.retreat) + np.array([0, 0, cfg.travel_height - cfg.palm_height]),
              q_back)
    segments.append(_min_jerk(q_end, q_back, 0.5, dt))
    segments.append(_min_jerk(q_back, q_up, move_time(q_back, q_up), dt))
    commands = np.concatenate(segments, axis=0)
    times = np.arange(len(commands)) * dt
    contact_time = push_start + profile.standoff / profile.creep_speed
    return ProbePlan(times, commands, push_start, contact_time, push_end, d)
