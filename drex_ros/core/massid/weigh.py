"""Mass from a weighing probe (weigh_probe.py): the arm's joint efforts while it holds the object still.

When to weigh (`weighing_reason`): after a push that did not pin the mass down - no number, or a
relative std above `weigh_above_rel_std` - on an object the push does not read heavier than
`weigh_max_mass` (the full grip may drop it). Light objects are where the push is weakest: a
0.05-0.25 kg box or cylinder resists the palm by a few tenths of a newton, and the bench's
pushes left a third of them unidentified and read the rest to 4-12% (2-2.5 of their std).

A recording is a lift when the palm rises `lift_threshold` above where it closed on the object
and comes back down (lifted_span, from the joint states: the hand hides a held object from the
camera). The hold is the longest run of joint states, while the palm is up, in which every arm
joint is slower than `still_speed`; its first `settle` s are left out (the swing of the lift).
There the reading is the push's (force_regression.PushForceEstimator) along +z: the arm's
inverse dynamics in the MuJoCo robot model at the measured states, minus the measured efforts,
is the wrench the held object hangs on the palm, m g. No friction, no rolling, no contact chaos:
one sample per joint state, averaged over the hold.

Tare (tare.py): the empty hand at the hold's arm configuration before the grasp and after the
set-down, each stop followed by the same slow vertical sweep as the hold. What the arm reads
beyond its model - torque offsets, arm and hand inertials that differ from the model, and during
the sweeps the joints' sliding friction - is there in the hold's sweep too, so the weight is the
hold's sweep minus the tares', sample by sample (interpolated in time between the two). Still
stops are weighed the same way where a recording has no sweeps (probes recorded before them),
but there the friction a link-side sensor sees is stuck wherever the arm came to rest: in drawn
cells through the node chain, 4-16 % low on light objects, with stds of 8-22 %. A recording without a tare is
weighed absolutely, with `weigh_untared_force` added to its std (the hand's mass alone is known to
about 5 %, 0.47 N).

Standard deviation, from what was measured: the scatter of 0.1 s block means of hold less tare;
the difference between the two tares (how far the arm's zero moved over the
probe: drift, friction held differently at each stop), counted in full; and a relative floor
`weigh_model_error` (the sensors' relative accuracy). A relative std above `max_rel_std` (as for
a push), or a reading whose two halves differ by more than `weigh_max_drift` (the object slipped
in the hand, or still swings), is "unidentifiable".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from drex_ros.core.massid.force_regression import PushForceEstimator
from drex_ros.core.massid.recording import check_joint_coverage
from drex_ros.core.massid.tare import UP, arm_speed, block_sem, runs, tared_load, tared_sweep_load
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassEstimate, MassIdConfig, PushWindow, RecordingError
from drex_ros.core.robot.model import GRAVITY, robot_model


def weighing_reason(push: MassEstimate | None, cfg: MassIdConfig, refusal: str = "") -> str:
    """Why the push's answer is to be bettered by weighing the object; "" when it stands.

    `push` is None when the push recording was refused (`refusal` says why: under load the
    recorder can lose joint states): weighed all the same, though with nothing read of the object
    the full grip may meet one too heavy for it. The weighing reads no friction; mass_id_node then
    publishes its `unread_friction` with the mass.
    """
    if push is None:
        return f"the push recording was refused ({refusal})" if refusal else ""
    guess = push.mass if push.identifiable else push.direct_mass
    if np.isfinite(guess) and guess > cfg.weigh_max_mass:
        return ""  # too heavy to lift at full grip without a known mass
    if not push.identifiable:
        return f"the push gave no number ({push.reason})"
    rel = push.std / push.mass
    if rel > cfg.weigh_above_rel_std:
        return f"the push read {push.mass:.3f} kg +/- {rel:.1%}, more than {cfg.weigh_above_rel_std:.0%}"
    return ""


def with_push_friction(weighed: MassEstimate, push: MassEstimate | None, cfg: MassIdConfig) -> MassEstimate:
    """The weighed mass with the friction the push read: a push reads mu * m well even where it
    cannot split the two (probe.py), so mu = (mu * m of the push's fit) / weighed mass. Only from
    a push that gave a number: a refused fit's mu * m is no reading (in perturbed cells it was 2-5
    times the truth on light objects), so the weighed mass comes without a friction (None)."""
    if push is None or not push.identifiable:
        return replace(weighed, friction=None)
    mu = float(np.clip(np.exp(push.best_x[1]) / weighed.mass, *cfg.friction_bounds))
    return replace(weighed, friction=mu)


def lifted_span(rec: Recording, cfg: MassIdConfig) -> tuple[float, float] | None:
    """(first, last) joint time of the still stretch in which the palm holds the object up, or None.

    Read off the arm's own joint states, not the camera: in the demo the hand hid the lifted
    box from the camera for the whole lift and hold. The hold is a stretch of `min_hold` +
    `settle` s with the arm still, the palm `lift_threshold` higher than somewhere in the 4 s
    before it (the grasp) and in the 4 s after it (the set-down), the one of those that carries
    the most, and at least the lightest mass's weight beyond the tare. A push rests only at its
    start and end, empty-handed.
    """
    stride = 5
    t, q, speed = rec.joint_t[::stride], rec.joint_q[::stride], arm_speed(rec)[::stride]
    if len(t) < 10:
        return None
    model = robot_model()
    z = np.array([model.palm_pose(qi).translation[2] for qi in q])
    window = np.searchsorted(t, t[0] + 4.0)
    lifted = []
    for i0, i1 in runs(speed < cfg.still_speed):
        if t[i1 - 1] - t[i0] < cfg.min_hold + cfg.settle or i0 == 0 or i1 == len(t):
            continue
        up = np.median(z[i0:i1]) - cfg.lift_threshold
        if z[max(0, i0 - window):i0].min() > up or z[i1:i1 + window].min() > up:
            continue
        lifted.append((float(t[i0]), float(t[i1 - 1])))
    if not lifted:
        return None
    # The empty hand's stops at the hold's configuration (the tares) can look lifted too (the first
    # rises from the pre-grasp pose): the hold is the stop that carries the most.
    span = max(lifted, key=lambda s: float(np.mean(vertical_load(rec, s[0] + cfg.settle, s[1], cfg)[1])))
    return span if tared_load(rec, span, cfg).load > cfg.mass_bounds[0] * GRAVITY else None


def vertical_load(rec: Recording, t0: float, t1: float, cfg: MassIdConfig) -> tuple[np.ndarray, np.ndarray]:
    """(joint times, N): the load the held object hangs on the palm, along +z, over [t0, t1]."""
    sel = (rec.joint_t >= t0) & (rec.joint_t <= t1)
    pf = PushForceEstimator().estimate(rec.joint_t[sel], rec.joint_q[sel],
                                       None if rec.joint_v is None else rec.joint_v[sel], rec.joint_effort[sel],
                                       UP, cfg.weights.effort_cutoff_hz, stride=1)
    return pf.t, pf.force


def weigh(rec: Recording, cfg: MassIdConfig | None = None, progress: Callable[[str], None] | None = None,
          span: tuple[float, float] | None = None) -> MassEstimate:
    """The mass of a lifted and held object from the arm's joint efforts (`span`: its lifted_span,
    when the caller has it already)."""
    cfg = cfg or MassIdConfig()
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    span = span or lifted_span(rec, cfg)
    if span is None:
        raise RecordingError("the arm never held the object up and still: this is not a weighing probe, or the "
                             "grasp failed")
    t0, t1 = span[0] + cfg.settle, span[1]  # the lift's swing left out
    rest = rec.pose_t < span[0] - 0.5
    xy = np.median(rec.pose_p[rest, :2], axis=0) if rest.sum() else rec.pose_p[0, :2]
    win = PushWindow(span[0], t0, t1, xy, 0.0, UP)
    check_joint_coverage(rec, win, cfg, during="the hold")
    say(f"object lifted at t={span[0]:.2f} s; weighing the hold [{t0:.2f}, {t1:.2f}] s")
    tared = tared_sweep_load(rec, span, cfg) or tared_load(rec, span, cfg)
    if tared.tares:
        say("tares: " + ", ".join(f"{f:+.3f} N" for f in tared.tares))
    else:
        say(f"no tare in the recording: weighed absolutely, +/- {cfg.weigh_untared_force} N for the arm's model")
    load, diff = tared.load, tared.diff
    mass = load / GRAVITY
    half = len(diff) // 2
    drift = abs(float(np.mean(diff[:half]) - np.mean(diff[half:]))) / max(abs(load), 1e-9)
    # ... beyond what the halves' own scatter explains (through the node chain the commands' jitter
    # puts 1-3 N spikes in a sweep: a 0.05 kg box held still read 4.4 % apart).
    halves = (block_sem(diff[:half], tared.seconds / 2), block_sem(diff[half:], tared.seconds / 2))
    noise = float(np.hypot(*halves)) / max(abs(load), 1e-9)
    rel_std = float(np.hypot(tared.std / max(abs(load), 1e-9), cfg.weigh_model_error))
    reason = "ok"
    if mass < cfg.mass_bounds[0]:
        reason = f"weighed {mass:.3f} kg, under {cfg.mass_bounds[0]} kg: the hand did not hold the object"
    elif mass > cfg.mass_bounds[1]:
        reason = f"weighed {mass:.3f} kg, outside {cfg.mass_bounds[0]}-{cfg.mass_bounds[1]} kg: not the object's weight"
    elif rel_std > cfg.max_rel_std:
        reason = (f"weighed {mass:.3f} kg +/- {rel_std:.0%}, more than {cfg.max_rel_std:.1%}: the arm's zero moved "
                  "between the tares, or its stops still settled")
    elif drift > max(cfg.weigh_max_drift, 3.0 * noise):
        reason = (f"the reading drifts by {drift:.1%} over the hold (> {cfg.weigh_max_drift:.0%}): the object slipped "
                  "in the hand or still swings")
    ok = reason == "ok"
    est = MassEstimate(
        identifiable=ok, mass=mass if ok else None, std=mass * rel_std if ok else None, friction=None,
        friction_std=None, residual_rms=drift / max(rel_std, 1e-9), reason=reason, cmd_delay=0.0, pose_offset=0.0,
        window=win, curve_masses=np.array([]), curve_loss=np.array([]),
        best_x=np.array([np.log(max(mass, 1e-6)), np.log(max(mass, 1e-6) * 0.6)]), rollouts=0,
        wall_s=time.perf_counter() - start, direct_mass=mass, force_level=load, method="weigh")
    say(est.summary())
    return est
