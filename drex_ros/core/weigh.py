"""Mass from a weighing probe (weigh_probe.py): the arm's joint efforts while it holds the object still.

When to weigh (`weighing_reason`): after a push that did not pin the mass down - no number, or a
relative std above `weigh_above_rel_std` - on an object the push does not read heavier than
`weigh_max_mass` (the full grip may drop it). Light objects are where the push is weakest: a
0.05-0.25 kg box or cylinder resists the palm by a few tenths of a newton, and the bench's
pushes left a third of them unidentified and read the rest to 4-12% (2-2.5 of their std).

A recording is a lift when the object's camera height rises `lift_threshold` above where it
rested. The hold is the longest run of joint states, while the object is up, in which every arm
joint is slower than `still_speed`; its first `settle` s are left out (the swing of the lift).
There the reading is the push's (force_regression.PushForceEstimator) along +z: the arm's
inverse dynamics in the MuJoCo robot model at the measured states, minus the measured efforts,
is the wrench the held object hangs on the palm, m g. No friction, no rolling, no contact chaos:
one sample per joint state, averaged over the hold.

Standard deviation: the scatter of 0.1 s block means, in quadrature with `weigh_model_error`
(measured in-process on four spheres of 0.1-1.5 kg: within 0.7%; on a real arm the joint torque
sensing and the hand's modelled mass set it). A reading whose two halves differ by more than
`weigh_max_drift` (the object slipped in the hand, or still swings) is "unidentifiable".
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from drex_ros.core.force_regression import PushForceEstimator
from drex_ros.core.massid import MassEstimate, MassIdConfig
from drex_ros.core.probe_recording import PushWindow, RecordingError, check_joint_coverage
from drex_ros.core.trajectory_match import Recording

GRAVITY = 9.81
UP = np.array([0.0, 0.0, 1.0])


def weighing_reason(push: MassEstimate | None, refusal: str, cfg: MassIdConfig) -> str:
    """Why the push's answer is to be bettered by weighing the object; "" when it stands.

    `push` is None when the push recording was refused, with `refusal` the reason.
    """
    if push is None:
        return f"the push recording was refused ({refusal})"
    guess = push.mass if push.identifiable else push.direct_mass
    if np.isfinite(guess) and guess > cfg.weigh_max_mass:
        return ""  # too heavy to lift at full grip without a known mass
    if not push.identifiable:
        return f"the push gave no number ({push.reason})"
    rel = push.std / push.mass
    if rel > cfg.weigh_above_rel_std:
        return f"the push read {push.mass:.3f} kg +/- {rel:.1%}, more than {cfg.weigh_above_rel_std:.0%}"
    return ""


def lifted_span(rec: Recording, cfg: MassIdConfig) -> tuple[float, float] | None:
    """(first, last) camera time the object is up, or None when it never left the table."""
    ok = np.all(np.isfinite(rec.pose_p), axis=1)
    t, z = rec.pose_t[ok], rec.pose_p[ok, 2]
    if len(z) < cfg.rest_frames + 5:
        return None
    rest = np.median(z[:cfg.rest_frames])
    smooth = np.array([np.median(z[max(0, i - 2):i + 3]) for i in range(len(z))])  # 3 of 5 frames up
    up = np.flatnonzero(smooth - rest > cfg.lift_threshold)
    return (float(t[up[0]]), float(t[up[-1]])) if len(up) else None


def _hold(rec: Recording, span: tuple[float, float], cfg: MassIdConfig) -> tuple[float, float]:
    """The longest still stretch of joint states inside the lifted span (camera clock margin left)."""
    margin = 0.3  # s: more than the camera's latency and clock offset
    t = rec.joint_t
    v = rec.joint_v if rec.joint_v is not None else np.gradient(rec.joint_q, t, axis=0)
    still = (np.max(np.abs(v[:, :7]), axis=1) < cfg.still_speed) & (t > span[0] + margin) & (t < span[1] - margin)
    edges = np.flatnonzero(np.diff(np.r_[0, still.astype(int), 0]))
    runs = list(zip(edges[::2], edges[1::2], strict=True))
    if not runs:
        raise RecordingError("the object was lifted but the arm never held still: nothing to weigh")
    i0, i1 = max(runs, key=lambda r: t[r[1] - 1] - t[r[0]])
    t0, t1 = float(t[i0]) + cfg.settle, float(t[i1 - 1])
    if t1 - t0 < cfg.min_hold:
        raise RecordingError(f"the arm held the lifted object still for {max(t1 - t0, 0.0):.2f} s after settling, "
                             f"need {cfg.min_hold:.1f} s")
    return t0, t1


def vertical_load(rec: Recording, t0: float, t1: float, cfg: MassIdConfig) -> tuple[np.ndarray, np.ndarray]:
    """(joint times, N): the load the held object hangs on the palm, along +z, over [t0, t1]."""
    sel = (rec.joint_t >= t0) & (rec.joint_t <= t1)
    pf = PushForceEstimator().estimate(rec.joint_t[sel], rec.joint_q[sel],
                                       None if rec.joint_v is None else rec.joint_v[sel], rec.joint_effort[sel],
                                       UP, cfg.weights.effort_cutoff_hz, stride=1)
    return pf.t, pf.force


def weigh(rec: Recording, cfg: MassIdConfig | None = None,
          progress: Callable[[str], None] | None = None) -> MassEstimate:
    """The mass of a lifted and held object from the arm's joint efforts."""
    cfg = cfg or MassIdConfig()
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    span = lifted_span(rec, cfg)
    if span is None:
        raise RecordingError("the object was never lifted: this is not a weighing probe")
    t0, t1 = _hold(rec, span, cfg)
    rest = rec.pose_t < span[0] - 0.5
    xy = np.median(rec.pose_p[rest, :2], axis=0) if rest.sum() else rec.pose_p[0, :2]
    win = PushWindow(span[0], t0, t1, xy, 0.0, UP)
    check_joint_coverage(rec, win, cfg)
    say(f"object lifted at t={span[0]:.2f} s; weighing the hold [{t0:.2f}, {t1:.2f}] s")
    _, force = vertical_load(rec, t0, t1, cfg)
    mass = float(np.mean(force)) / GRAVITY
    blocks = np.array([b.mean() for b in np.array_split(force, max(2, int((t1 - t0) / 0.1)))])
    rel_stat = float(np.std(blocks, ddof=1) / np.sqrt(len(blocks))) / max(abs(np.mean(force)), 1e-9)
    half = len(force) // 2
    drift = abs(float(np.mean(force[:half]) - np.mean(force[half:]))) / max(abs(np.mean(force)), 1e-9)
    rel_std = float(np.hypot(rel_stat, cfg.weigh_model_error))
    reason = "ok"
    if not cfg.mass_bounds[0] <= mass <= cfg.mass_bounds[1]:
        reason = f"weighed {mass:.3f} kg, outside {cfg.mass_bounds[0]}-{cfg.mass_bounds[1]} kg: not the object's weight"
    elif drift > cfg.weigh_max_drift:
        reason = (f"the reading drifts by {drift:.1%} over the hold (> {cfg.weigh_max_drift:.0%}): the object slipped "
                  "in the hand or still swings")
    ok = reason == "ok"
    est = MassEstimate(
        identifiable=ok, mass=mass if ok else None, std=mass * rel_std if ok else None, friction=None,
        friction_std=None, residual_rms=drift / max(rel_std, 1e-9), reason=reason, cmd_delay=0.0, pose_offset=0.0,
        window=win, curve_masses=np.array([]), curve_loss=np.array([]),
        best_x=np.array([np.log(max(mass, 1e-6)), np.log(max(mass, 1e-6) * 0.6)]), rollouts=0,
        wall_s=time.perf_counter() - start, direct_mass=mass, force_level=float(np.mean(force)), method="weigh")
    say(est.summary())
    return est
