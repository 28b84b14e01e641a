"""Robot calibration: what the arm's reported efforts hold beyond drex's model of the arm.

From an excitation recording (excitation.py: the arm in free space, every joint reversing often),
the difference between the reported arm efforts and the model's inverse dynamics at the measured
states (force_regression.PushForceEstimator, the identifier's own) is regressed per joint on

    d_j = offset_j + coulomb_j sign(qd_j) + viscous_j qd_j + armature_j qdd_j + Y_j(q, qd, qdd) dpi

- offset: the torque sensor's zero (Franka's tau_J drifts with temperature between zeroings);
- coulomb, viscous: the joint friction the efforts contain (all of it when the torque is taken
  on the motor side, the share a link-side sensor still sees otherwise);
- armature: a per-joint inertia the model lacks (rotors; and the discrete inverse dynamics'
  PD-damping term when the real controller steps at another rate);
- dpi: errors of the arm's link inertial parameters, 10 per link (pinocchio's joint torque
  regressor; the hand, held still, is a rigid payload of link 7). Only their identifiable
  combinations are estimated (truncated SVD): they are reported as a count, not one by one.

Samples are those where the joint slides (|qd_j| > min_speed: at rest the friction is anything
within +-coulomb), low-passed alike on both sides of the regression. Standard deviations come
from a block bootstrap over the excitation (2 s blocks: the residuals are correlated in time),
in quadrature with how far the fit moves when only samples above twice that speed are kept (the
friction law's own error near reversals, and what the slow samples alone pin down);
a parameter the motion does not excite (a joint that barely slid) is "unidentifiable", with no
number. `correction()` gives what to subtract from a recording's efforts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pinocchio as pin

from drex_ros.core.massid.force_regression import PushForceEstimator, consecutive_steps, lowpass
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.robot.model import N_ARM, robot_model

PER_JOINT = ("offset", "coulomb", "viscous")
K = len(PER_JOINT)
N_INERTIAL = 10 * N_ARM + N_ARM  # the links' 10 each, then an armature per joint


@dataclass(frozen=True)
class CalibrationConfig:
    min_speed: float = 0.05  # rad/s: a joint slower than this may stick
    cutoff_hz: float = 8.0  # low-pass of both sides of the regression
    decimate: int = 4  # after the low-pass
    rcond: float = 1e-6  # relative singular value below which an inertial combination is unidentifiable
    block_s: float = 2.0  # bootstrap block length
    bootstrap: int = 40
    min_sliding_share: float = 0.3  # of the excitation: a joint that slid less is not excited
    seed: int = 0


@dataclass
class RobotCalibration:
    """Per arm joint (7 values each, N*m, N*m*s/rad, kg*m^2); nan where unidentifiable."""

    offset: np.ndarray
    coulomb: np.ndarray
    viscous: np.ndarray
    std: dict[str, np.ndarray]
    inertial: np.ndarray  # (77,) link inertial errors and armatures (minimum-norm among the identifiable)
    inertial_rank: int
    residual_rms: np.ndarray  # (7,) N*m left per joint
    excited: np.ndarray  # (7,) bool
    samples: int
    notes: list[str] = field(default_factory=list)

    def correction(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray, inertial: bool = True) -> np.ndarray:
        """(n, 7) N*m the arm's efforts hold beyond the model at these states: subtract it.
        `inertial=False` leaves out the inertial part (a pinocchio regressor per sample)."""
        out = inertial_regressor(q, qd, qdd) @ self.inertial if inertial else np.zeros((len(qd), N_ARM))
        for name, column in zip(PER_JOINT, _per_joint_columns(qd), strict=True):
            out += column * np.nan_to_num(getattr(self, name))
        return out

    def applied(self, rec: Recording) -> Recording:
        """`rec` with its arm efforts less the offsets and joint friction. The inertial part is
        left out: the identifier zeroes the efforts at rest before a push (tare.zeroed_before),
        which takes the gravity error there, and a weighing's tares cancel it."""
        qd = rec.joint_v if rec.joint_v is not None else np.gradient(rec.joint_q, rec.joint_t, axis=0)
        effort = rec.joint_effort.copy()
        effort[:, :N_ARM] -= self.correction(rec.joint_q, qd, np.zeros_like(qd), inertial=False)
        return replace(rec, joint_effort=effort)

    def to_dict(self) -> dict:
        per = {n: [None if not np.isfinite(v) else float(v) for v in getattr(self, n)] for n in PER_JOINT}
        std = {n: [None if not np.isfinite(v) else float(v) for v in self.std[n]] for n in PER_JOINT}
        return {"per_joint": per, "std": std, "inertial": [float(v) for v in self.inertial],
                "inertial_rank": self.inertial_rank, "residual_rms": [float(v) for v in self.residual_rms],
                "excited": [bool(v) for v in self.excited], "samples": self.samples, "notes": self.notes}

    @classmethod
    def from_dict(cls, d: dict) -> RobotCalibration:
        def arr(values: list) -> np.ndarray:
            return np.array([np.nan if v is None else float(v) for v in values])

        per, std = d["per_joint"], d["std"]
        if any(len(per[n]) != N_ARM for n in PER_JOINT) or len(d["inertial"]) != N_INERTIAL:
            raise ValueError(f"a robot calibration has {N_ARM} values per joint parameter and {N_INERTIAL} inertial")
        return cls(*(arr(per[n]) for n in PER_JOINT), {n: arr(std[n]) for n in PER_JOINT},
                   np.array(d["inertial"], dtype=float), int(d["inertial_rank"]), arr(d["residual_rms"]),
                   np.array(d["excited"], dtype=bool), int(d["samples"]), list(d.get("notes", [])))

    def save(self, path: str | Path) -> Path:
        import yaml

        path = Path(path)
        path.write_text("# drex calibrate-robot: the arm efforts beyond the model (core/massid/robot_calibration.py)\n"
                        + yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> RobotCalibration:
        import yaml

        try:
            return cls.from_dict(yaml.safe_load(Path(path).read_text()))
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"{path}: not a robot calibration ({exc})") from exc


def _per_joint_columns(qd: np.ndarray) -> tuple[np.ndarray, ...]:
    return np.ones_like(qd[:, :N_ARM]), np.sign(qd[:, :N_ARM]), qd[:, :N_ARM]


def inertial_regressor(q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
    """(n, 7, 77): d tau_arm / d (the arm links' 10 inertial parameters, then each joint's
    armature) at each state."""
    rm = robot_model()
    data = rm.model.createData()
    arm_v = rm.pin_index[:N_ARM]
    cols = np.concatenate([np.arange(10 * (rm.model.joints[rm.model.getJointId(n)].id - 1),
                                     10 * rm.model.joints[rm.model.getJointId(n)].id)
                           for n in rm.joint_names[:N_ARM]])
    out = np.empty((len(q), N_ARM, N_INERTIAL))
    for i in range(len(q)):
        y = pin.computeJointTorqueRegressor(rm.model, data, rm.to_pin(q[i]), rm.to_pin(qd[i]), rm.to_pin(qdd[i]))
        out[i, :, :10 * N_ARM] = y[np.ix_(arm_v, cols)]
    out[:, :, 10 * N_ARM:] = qdd[:, :N_ARM, None] * np.eye(N_ARM)[None]
    return out


def _states(rec: Recording, estimator: PushForceEstimator, t0: float, t1: float):
    """(t, q, qd, qdd, d) at consecutive joint samples in [t0, t1]: d = reported - modelled (7)."""
    sel = (rec.joint_t >= t0) & (rec.joint_t <= t1)
    t, q, e = rec.joint_t[sel], rec.joint_q[sel], rec.joint_effort[sel]
    qd = rec.joint_v[sel] if rec.joint_v is not None else np.gradient(q, t, axis=0)
    steps = consecutive_steps(t)  # the steps residual_torques inverts
    d = -estimator.residual_torques(t, q, qd, e)
    qdd = (qd[steps + 1] - qd[steps]) / (t[steps + 1] - t[steps])[:, None]
    return t[steps + 1], q[steps], qd[steps], qdd, d


def _design(t: np.ndarray, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray, cfg: CalibrationConfig):
    """Low-passed, decimated regressors: per-joint columns (n, 7, 3) and the inertial (n, 7, 77)."""
    per = np.stack(_per_joint_columns(qd), axis=2)
    y = inertial_regressor(q, qd, qdd)
    n = len(t)
    per = lowpass(t, per.reshape(n, -1), cfg.cutoff_hz).reshape(per.shape)
    y = lowpass(t, y.reshape(n, -1), cfg.cutoff_hz).reshape(y.shape)
    return per[:: cfg.decimate], y[:: cfg.decimate]


def _solve(per: np.ndarray, y: np.ndarray, d: np.ndarray, mask: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Least squares over the masked (sample, joint) rows: 3 per joint, then the inertial basis."""
    rows, cols = [], []
    for j in range(N_ARM):
        sel = mask[:, j]
        block = np.zeros((sel.sum(), K * N_ARM))
        block[:, K * j:K * j + K] = per[sel, j]
        rows.append(np.hstack([block, y[sel, j] @ basis]))
        cols.append(d[sel, j])
    a, b = np.vstack(rows), np.concatenate(cols)
    scale = np.maximum(np.linalg.norm(a, axis=0), 1e-12)
    x = np.linalg.lstsq(a / scale, b, rcond=None)[0] / scale
    return x


def calibrate(rec: Recording, span: tuple[float, float], cfg: CalibrationConfig | None = None) -> RobotCalibration:
    """The calibration from the excitation over `span` (s) of `rec`."""
    cfg = cfg or CalibrationConfig()
    estimator = PushForceEstimator()
    t, q, qd, qdd, d = _states(rec, estimator, *span)
    if len(t) < 500:
        raise ValueError(f"the excitation has {len(t)} joint samples: too few to calibrate from")
    per, y = _design(t, q, qd, qdd, cfg)
    d = lowpass(t, d, cfg.cutoff_hz)[:: cfg.decimate]
    speed = np.abs(lowpass(t, qd[:, :N_ARM], cfg.cutoff_hz))[:: cfg.decimate]
    mask = speed > cfg.min_speed
    excited = mask.mean(axis=0) >= cfg.min_sliding_share
    # The identifiable inertial combinations: right singular vectors of the stacked inertial
    # regressor above rcond of the largest singular value.
    stacked = np.vstack([y[mask[:, j], j] for j in range(N_ARM)])
    colscale = np.maximum(np.linalg.norm(stacked, axis=0), 1e-12)
    _, sv, vt = np.linalg.svd(stacked / colscale, full_matrices=False)
    keep = sv > cfg.rcond * sv[0]
    basis = (vt[keep].T / colscale[:, None])
    x = _solve(per, y, d, mask, basis)
    boots = _bootstrap(per, y, d, mask, basis, cfg, float(np.median(np.diff(t))) * cfg.decimate)
    # The friction law is a model: near a reversal real friction is not yet a step. How far the
    # fit moves when the slowest sliding samples are left out is its error, beyond the noise's.
    x_fast = _solve(per, y, d, mask & (speed > 2 * cfg.min_speed), basis)
    sd = np.hypot(np.std(boots, axis=0, ddof=1), np.abs(x_fast - x)[:K * N_ARM])
    fitted = np.stack([per[:, j] @ x[K * j:K * j + K] + y[:, j] @ (basis @ x[K * N_ARM:]) for j in range(N_ARM)],
                      axis=1)
    resid = np.array([np.sqrt(np.mean((d[mask[:, j], j] - fitted[mask[:, j], j]) ** 2)) if mask[:, j].any()
                      else np.nan for j in range(N_ARM)])
    values = {n: np.where(excited, x[k:K * N_ARM:K], np.nan) for k, n in enumerate(PER_JOINT)}
    stds = {n: np.where(excited, sd[k:K * N_ARM:K], np.nan) for k, n in enumerate(PER_JOINT)}
    notes = [f"{j + 1}: unidentifiable: joint {j + 1} slid in {mask[:, j].mean():.0%} of the excitation"
             for j in range(N_ARM) if not excited[j]]
    return RobotCalibration(**values, std=stds, inertial=basis @ x[K * N_ARM:], inertial_rank=int(keep.sum()),
                            residual_rms=resid, excited=excited, samples=int(mask.sum()), notes=notes)


def _bootstrap(per, y, d, mask, basis, cfg: CalibrationConfig, dt: float) -> np.ndarray:
    """Per-joint parameters refitted on resampled blocks of the excitation (`dt` s per sample)."""
    rng = np.random.default_rng(cfg.seed)
    n = len(d)
    block = max(1, int(cfg.block_s / dt))
    starts = np.arange(0, n - block + 1, block)
    out = []
    for _ in range(cfg.bootstrap):
        idx = np.concatenate([np.arange(s, s + block) for s in rng.choice(starts, len(starts))])
        out.append(_solve(per[idx], y[idx], d[idx], mask[idx], basis)[:K * N_ARM])
    return np.array(out)
