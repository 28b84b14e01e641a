"""Differential weighing: the loaded hold less the empty hand at the same arm configuration.

The weighing probe (weigh_probe.py) stops the empty arm at the hold's configuration before the
grasp and after the set-down, each time by the same upward move as the lift. At a still arm the
residual torques - the model's inverse dynamics minus the measured efforts - are the held load's
J^T w plus whatever the arm's model and sensing miss: torque offsets, arm and hand inertials that
differ from the model (the hand is 0.955 kg: 5 % is 48 g). The second part is the same with and
without the object, so the difference is the object's weight alone.

Done in joint space and mapped to the palm with one row at the hold's configuration: a constant
offset then cancels exactly, though the load bends the arm by a few mrad. Each stop is read over
the same time since the arm stopped, so a slow settling common to all stops (joint friction a
link-side sensor still sees, creeping out) cancels too. The tare at the hold is interpolated in
time between the one before and the one after; their difference - how far the arm's zero moved
over the probe - enters the std in full, and so does how much the empty stops still settle while
read (the loaded stop settles alike, not identically).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from drex_ros.core.massid.force_regression import PushForceEstimator, consecutive_steps, resample
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassIdConfig, RecordingError
from drex_ros.core.robot.model import robot_model

UP = np.array([0.0, 0.0, 1.0])


@functools.lru_cache(maxsize=1)
def _estimator() -> PushForceEstimator:
    return PushForceEstimator()  # one model for every reading (weighing runs on one thread)


def arm_speed(rec: Recording) -> np.ndarray:
    v = rec.joint_v if rec.joint_v is not None else np.gradient(rec.joint_q, rec.joint_t, axis=0)
    return np.max(np.abs(v[:, :7]), axis=1)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs of `mask`."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    return list(zip(edges[::2], edges[1::2], strict=True))


def tare_spans(rec: Recording, span: tuple[float, float], cfg: MassIdConfig) -> list[tuple[float, float]]:
    """Still stretches besides the hold `span` at its arm configuration (within
    `tare_max_joint_offset` rad), long enough to weigh: the empty hand's stops."""
    hold = (rec.joint_t >= span[0]) & (rec.joint_t <= span[1])
    q_hold = np.median(rec.joint_q[hold, :7], axis=0)
    out = []
    for i0, i1 in runs(arm_speed(rec) < cfg.still_speed):
        t0, t1 = float(rec.joint_t[i0]), float(rec.joint_t[i1 - 1])
        if t1 - t0 < cfg.settle + cfg.min_hold or (t0 <= span[1] and t1 >= span[0]):
            continue
        if np.max(np.abs(np.median(rec.joint_q[i0:i1, :7], axis=0) - q_hold)) <= cfg.tare_max_joint_offset:
            out.append((t0, t1))
    return out


@dataclass(frozen=True)
class Stop:
    """One still stretch read along +z: time since it began (s), N per sample, its mid-time (s)."""

    since: np.ndarray
    force: np.ndarray
    t: float


def read_stop(rec: Recording, t0: float, t1: float, row: np.ndarray, settle: float) -> Stop:
    sel = (rec.joint_t >= t0) & (rec.joint_t <= t1)
    t = rec.joint_t[sel]
    v = None if rec.joint_v is None else rec.joint_v[sel]
    r = _estimator().residual_torques(t, rec.joint_q[sel], v, rec.joint_effort[sel])
    ts = t[consecutive_steps(t) + 1]  # the samples residual_torques read
    keep = ts >= t0 + settle
    return Stop(ts[keep] - t0, r[keep] @ row, 0.5 * (t0 + settle + t1))


def block_sem(x: np.ndarray, duration: float) -> float:
    """Standard error of the mean from 0.1 s block means (the samples are correlated)."""
    blocks = np.array([b.mean() for b in np.array_split(x, max(2, int(duration / 0.1)))])
    return float(np.std(blocks, ddof=1) / np.sqrt(len(blocks)))


@dataclass(frozen=True)
class TaredLoad:
    load: float  # N, the object's weight as read
    std: float  # N
    diff: np.ndarray  # N per sample: hold less tare, over the common time since stopping
    tares: tuple[float, ...]  # N, each tare's mean (for the log)
    seconds: float  # what `diff` spans


def tared_load(rec: Recording, span: tuple[float, float], cfg: MassIdConfig) -> TaredLoad:
    """The hold over `span` less the empty hand's stops, over the same time since stopping."""
    sel = (rec.joint_t >= span[0]) & (rec.joint_t <= span[1])
    row = _estimator().force_row(np.median(rec.joint_q[sel], axis=0), UP)
    hold = read_stop(rec, span[0], span[1], row, cfg.settle)
    stops = [read_stop(rec, a, b, row, cfg.settle) for a, b in tare_spans(rec, span, cfg)]
    if not stops:
        std = np.hypot(block_sem(hold.force, hold.since[-1] - hold.since[0]), cfg.weigh_untared_force)
        return TaredLoad(float(hold.force.mean()), float(std), hold.force, (), float(hold.since[-1] - hold.since[0]))
    before = [s for s in stops if s.t < hold.t][-1:]
    after = [s for s in stops if s.t > hold.t][:1]
    pair = before + after
    end = min(s.since[-1] for s in [hold, *pair])
    grid = hold.since[hold.since <= end]
    w = (hold.t - pair[0].t) / (pair[1].t - pair[0].t) if len(pair) == 2 else 0.0
    tares = [np.interp(grid, s.since, s.force) for s in pair]
    diff = np.interp(grid, hold.since, hold.force) - ((1 - w) * tares[0] + w * tares[-1])
    spread = abs(float(np.mean(tares[-1] - tares[0])))  # 0 with one tare: nothing shows its drift
    # How much each empty stop still settles while read (friction the sensors see, creeping out):
    # the loaded stop settles alike but not identically, so this much is left uncancelled.
    half = len(grid) // 2
    settling = float(np.sqrt(np.mean([(t[half:].mean() - t[:half].mean()) ** 2 for t in tares])))
    std = float(np.sqrt(block_sem(diff, grid[-1] - grid[0]) ** 2 + spread ** 2 + settling ** 2))
    means = tuple(float(s.force.mean()) for s in stops)
    return TaredLoad(float(diff.mean()), std, diff, means, float(grid[-1] - grid[0]))


def sweep_after(rec: Recording, span: tuple[float, float], cfg: MassIdConfig) -> tuple[float, float] | None:
    """(start, end) of the arm's sweep right after the still stretch `span` (weigh_probe.py: raised
    and lowered back), or None: within `max_sweep` s the palm rises `min_sweep_height` above where
    it was and comes back to within a quarter of that; the sweep ends where the arm is still again.
    (Not found from still stretches alone: through the node chain the top turn rested 0.23 s.)"""
    t, speed = rec.joint_t, arm_speed(rec)
    i0 = int(np.searchsorted(t, span[1], side="right"))
    idx = np.arange(i0, int(np.searchsorted(t, span[1] + cfg.max_sweep)), 5)
    if len(idx) < 10:
        return None
    model = robot_model()
    rise = np.array([model.palm_pose(rec.joint_q[i]).translation[2] for i in idx])
    rise -= rise[0]
    up = np.flatnonzero(rise >= cfg.min_sweep_height)
    back = np.flatnonzero((rise <= 0.25 * cfg.min_sweep_height) & (np.arange(len(idx)) > (up[0] if up.size else 0)))
    if not up.size or not back.size:
        return None
    still = np.flatnonzero(speed[idx[back[0]]:idx[-1]] < cfg.still_speed)
    return (float(t[i0]), float(t[idx[back[0]] + still[0]])) if still.size else None


@dataclass(frozen=True)
class Sweep:
    """One sweep: time since it began (s), residual torques (n, 7) N*m, the force row at each
    sample's arm configuration (n, 7), its mid-time (s)."""

    since: np.ndarray
    torques: np.ndarray
    rows: np.ndarray
    t: float


def read_sweep(rec: Recording, t0: float, t1: float) -> Sweep:
    sel = np.flatnonzero((rec.joint_t >= t0) & (rec.joint_t <= t1))
    t = rec.joint_t[sel]
    v = None if rec.joint_v is None else rec.joint_v[sel]
    r = _estimator().residual_torques(t, rec.joint_q[sel], v, rec.joint_effort[sel])
    kept = consecutive_steps(t) + 1  # the samples r reads
    knots = kept[::10] if kept[-1] in kept[::10] else np.r_[kept[::10], kept[-1]]
    rows = np.array([_estimator().force_row(rec.joint_q[sel[k]], UP) for k in knots])
    return Sweep(t[kept] - t0, r, resample(t[kept], t[knots], rows), 0.5 * (t0 + t1))


def tared_sweep_load(rec: Recording, span: tuple[float, float], cfg: MassIdConfig) -> TaredLoad | None:
    """The hold's sweep less the empty hand's sweeps, sample by sample over the time since each
    began, or None where the recording has no such sweeps (a probe from before them). Both are
    read along +z with the hold's force rows, so a constant torque offset cancels exactly. Over a
    sweep that starts and ends at rest the object's mean acceleration is nil: the mean is m g."""
    hold_sweep = sweep_after(rec, span, cfg)
    tares = [s for s in (sweep_after(rec, a, cfg) for a in tare_spans(rec, span, cfg)) if s is not None]
    if hold_sweep is None or not tares:
        return None
    hold = read_sweep(rec, *hold_sweep)
    before = [s for s in tares if s[0] < hold_sweep[0]][-1:]
    after = [s for s in tares if s[0] > hold_sweep[0]][:1]
    pair = [read_sweep(rec, *s) for s in before + after]
    gap = max(float(np.diff(s.since).max()) for s in [hold, *pair])
    if gap > cfg.max_joint_gap:
        raise RecordingError(f"joint states were lost during a sweep (longest gap {gap * 1e3:.0f} ms): the "
                             "recorder could not keep up with the driver's rate")
    end = min(s.since[-1] for s in [hold, *pair])
    # A uniform grid: the mean is over time, so states a busy recorder lost weigh nothing less.
    grid = np.arange(0.0, end, float(np.median(np.diff(hold.since))))
    rows = resample(grid, hold.since, hold.rows)
    w = (hold.t - pair[0].t) / (pair[1].t - pair[0].t) if len(pair) == 2 else 0.0
    tare = [np.einsum("ij,ij->i", resample(grid, s.since, s.torques), rows) for s in pair]
    diff = np.einsum("ij,ij->i", resample(grid, hold.since, hold.torques), rows) - ((1 - w) * tare[0] + w * tare[-1])
    spread = abs(float(np.mean(tare[-1] - tare[0])))  # how far the arm's zero moved over the probe
    std = float(np.hypot(block_sem(diff, grid[-1] - grid[0]), spread))
    return TaredLoad(float(diff.mean()), std, diff, tuple(float(t.mean()) for t in tare), float(grid[-1] - grid[0]))


def zeroed_before(rec: Recording, t_end: float, cfg: MassIdConfig) -> tuple[Recording, np.ndarray | None]:
    """The recording with its arm efforts zeroed on the last still, contact-free stretch before
    `t_end` (a push's start): a constant torque offset and the arm's gravity-model error there leave
    the push force and the applied-target inversion (trajectory_match). (7,) N*m removed, or None
    when the arm never rested long enough before the push."""
    n_end = int(np.searchsorted(rec.joint_t, t_end))
    still = [(i0, min(i1, n_end)) for i0, i1 in runs(arm_speed(rec)[:n_end] < cfg.still_speed)]
    still = [(i0, i1) for i0, i1 in still if rec.joint_t[i1 - 1] - rec.joint_t[i0] >= cfg.settle + cfg.min_hold]
    if not still:
        return rec, None
    i0, i1 = still[-1]
    sel = slice(i0, i1)
    v = None if rec.joint_v is None else rec.joint_v[sel]
    r = _estimator().residual_torques(rec.joint_t[sel], rec.joint_q[sel], v, rec.joint_effort[sel])
    t = rec.joint_t[sel][consecutive_steps(rec.joint_t[sel]) + 1]
    zero = r[t >= rec.joint_t[i0] + cfg.settle].mean(axis=0)
    effort = rec.joint_effort.copy()
    effort[:, :7] += zero  # residual = model - measured: adding it to the measured zeroes the residual
    return replace(rec, joint_effort=effort), zero
