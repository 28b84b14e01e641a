"""Push force from the arm's joint efforts by inverse dynamics, and mass by linear regression.

While the palm pushes the object, the arm's measured motor torques satisfy

    tau_motor + J^T w_ext = M(q) qdd + c(q, qd) - tau_passive      (MuJoCo's mj_inverse, no contacts)

so the wrench the object exerts on the palm is w_ext = (J J^T)^-1 J (qfrc_inverse - tau_motor)
(7 arm joints, 6 wrench components). Its component along the push is the push force F(t), and
the palm's acceleration a(t) along the push is the object's acceleration while they touch. Then

    F(t) = k m a(t) + c g,   c = m mu        (k = 1 sliding; k = 7/5 for a sphere rolling)

is nearly linear in (m, c) (see fit_push for the palm's vertical force term that separates them).

Why this and not only trajectory matching: the replayed push and the recorded one are two
realisations of a chaotic contact (the box's stick-slip on the table and at the palm face).
Measured here: changing the mass by 1% changes the replay's force trace by as much as changing
it by 3-10%, so the replay loss is a noisy floor with a shallow valley along m (a + mu g) =
const, and any optimizer on it lands anywhere in that valley. The regression compares one
realisation to a smooth model instead of two chaotic realisations to each other, and its
noise averages out over the samples.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import mujoco
import numpy as np
from scipy import signal

from drex_ros.core.robot.model import GRAVITY, JOINT_NAMES, N_ARM
from drex_ros.core.sim.scene_build import ObjectConfig, SceneConfig, build_spec

SPHERE_MIN_ACCEL = 0.15  # m/s^2
ROLLING_FACTOR = {"box": 1.0, "cylinder": 1.0, "sphere": 1.4}  # F = k m a; solid sphere: 1 + 2/5


@dataclass
class PushForce:
    """Push force and palm kinematics along the push direction at the joint-state times."""

    t: np.ndarray
    force: np.ndarray  # N, exerted by the palm on the object along the push (low-passed)
    vertical: np.ndarray  # N, exerted by the palm on the object upwards (+z; friction at the face)
    accel: np.ndarray  # m/s^2, palm acceleration along the push (low-passed)
    speed: np.ndarray  # m/s
    position: np.ndarray  # m, palm position along the push


@dataclass
class ForceFit:
    """Direct estimate from one push: mass, friction (NaN for a rolling sphere), covariance."""

    mass: float
    friction: float
    cov_log: np.ndarray  # covariance of (log m, log mu) (1x1 for a sphere: log m)
    n_samples: int
    residual_rms: float  # N


@functools.lru_cache(maxsize=64)
def butter2(wn: float) -> tuple[np.ndarray, np.ndarray]:
    """Second-order Butterworth low-pass (cached: an identification designs the same few hundreds of times)."""
    return signal.butter(2, wn)


def lowpass(t: np.ndarray, x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    dt = float(np.median(np.diff(t)))
    b, a = butter2(min(0.9, 2.0 * cutoff_hz * dt))
    return signal.filtfilt(b, a, x, axis=0, padlen=min(len(x) - 1, 30))


def lowpass_across_gaps(t: np.ndarray, x: np.ndarray, cutoff_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """`x` (sampled at `t`, along axis 0) low-passed in time and read back at `t`, and which samples
    lie a quarter cutoff period clear of every gap. The filter counts samples, not seconds: states
    a busy recorder lost would squeeze time together, so the gaps are bridged on a uniform grid
    first; the bridge's error spreads about that far."""
    gaps = np.setdiff1d(np.arange(len(t) - 1), consecutive_steps(t))
    if not gaps.size:
        return lowpass(t, x, cutoff_hz), np.ones(len(t), bool)
    step = float(np.median(np.diff(t)))
    grid = np.arange(t[0], t[-1] + 0.5 * step, step)
    smooth = lowpass(grid, resample(grid, t, x.reshape(len(t), -1)), cutoff_hz)
    out = resample(t, grid, smooth).reshape(x.shape)
    guard = 0.25 / cutoff_hz
    clear = np.ones(len(t), bool)
    for g in gaps:
        clear &= (t <= t[g] - guard) | (t >= t[g + 1] + guard)
    return out, clear


def resample(grid: np.ndarray, t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(len(grid), k): each column of `values` (sampled at `t`) linearly interpolated at `grid`."""
    return np.column_stack([np.interp(grid, t, values[:, j]) for j in range(values.shape[1])])


def consecutive_steps(t: np.ndarray) -> np.ndarray:
    """Indices k whose step k -> k+1 is one driver period (not a gap of dropped samples): the steps
    residual_torques inverts, each read at sample k + 1."""
    h = np.diff(t)
    return np.flatnonzero(h < 1.5 * float(np.median(h)))


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (numpy assigns through it several times faster)."""
    if len(index) and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


class PushForceEstimator:
    """Inverse dynamics of the robot model (object far away: no contacts) at measured states."""

    def __init__(self, timestep: float = 0.002) -> None:
        cfg = SceneConfig(object=ObjectConfig(position=(5.0, 5.0)), timestep=timestep)
        self.model = build_spec(cfg).compile()
        # The scene integrates implicitly (implicitfast): the PD damping acts like extra inertia
        # h * kd. Discrete inverse dynamics inverts exactly that integrator.
        self.model.opt.enableflags |= mujoco.mjtEnableBit.mjENBL_INVDISCRETE
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._qpos = _as_slice(np.array([m.joint(n).qposadr[0] for n in JOINT_NAMES]))
        self._dof = _as_slice(np.array([m.joint(n).dofadr[0] for n in JOINT_NAMES]))
        self._arm_dofs = np.arange(m.nv)[self._dof][:N_ARM]
        self._palm = m.body("palm_link").id
        # The pushing face's centre (palm box, local -x face): where the object is touched. Its
        # motion differs from the palm frame's when the compliant wrist turns under load.
        self._palm_geom = next(i for i in range(m.ngeom) if m.geom_bodyid[i] == self._palm and m.geom_contype[i])

    def fork(self) -> PushForceEstimator:
        """The same model with its own MjData, for another thread."""
        twin = copy.copy(self)
        twin.data = mujoco.MjData(self.model)
        return twin

    def residual_torques(self, t: np.ndarray, q: np.ndarray, qd: np.ndarray | None, tau: np.ndarray) -> np.ndarray:
        """(n, 7) N*m: the model's inverse dynamics minus the measured arm efforts, per step between
        consecutive samples: J^T w_ext, plus whatever the arm's model and sensing miss (a still
        empty arm's tare, weigh.py)."""
        m, d = self.model, self.data
        if qd is None or not np.all(np.isfinite(qd)):
            qd = np.gradient(q, t, axis=0)
        h = np.diff(t)
        steps = consecutive_steps(t)
        out = np.empty((len(steps), N_ARM))
        for i, k in enumerate(steps):
            d.qpos[self._qpos] = q[k]
            d.qvel[self._dof] = qd[k]
            d.qacc[self._dof] = (qd[k + 1] - qd[k]) / h[k]
            mujoco.mj_inverse(m, d)
            out[i] = d.qfrc_inverse[self._arm_dofs] - tau[k + 1, :N_ARM]
        return out

    def force_row(self, q: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """(7,) p with F = p . (J^T w_ext): the palm face's force on the object along `direction`."""
        m, d = self.model, self.data
        d.qpos[self._qpos] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        g = self._palm_geom
        face = d.geom_xpos[g] - d.geom_xmat[g, 0::3] * m.geom_size[g][0]
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jac(m, d, jacp, jacr, face, self._palm)
        jac = np.vstack([jacp[:, self._arm_dofs], jacr[:, self._arm_dofs]])
        sel = np.zeros(6)
        sel[:3] = direction
        return -sel @ np.linalg.solve(jac @ jac.T + 1e-9 * np.eye(6), jac)

    def estimate(self, t: np.ndarray, q: np.ndarray, qd: np.ndarray | None, tau: np.ndarray,
                 direction: np.ndarray, cutoff_hz: float = 8.0, stride: int = 2) -> PushForce:
        """F and a along `direction` at every `stride`-th joint sample (arrays in JOINT_NAMES order)."""
        m, d = self.model, self.data
        if qd is None or not np.all(np.isfinite(qd)):
            qd = np.gradient(q, t, axis=0)
        # A driver sample at time t_k holds q, qd at t_k and the torque that produced the step
        # from t_(k-1): invert each step exactly (raw data), then low-pass force and acceleration.
        h = np.diff(t)
        qdd = np.diff(qd, axis=0) / h[:, None]
        # Only consecutive driver samples invert one step exactly; dropped messages leave gaps.
        step = float(np.median(h))
        consecutive = consecutive_steps(t)
        arm = self._arm_dofs
        g = self._palm_geom
        sel = np.zeros(6)
        sel[:3] = direction
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        steps = consecutive[::max(1, stride)]
        n = len(steps)
        jacs = np.empty((n, 6, N_ARM))
        ext = np.empty((n, N_ARM))
        faces = np.empty((n, 3))
        half_thickness = m.geom_size[g][0]
        d.qvel[:] = 0.0
        d.qacc[:] = 0.0
        for i, k in enumerate(steps):  # the hot loop of every identification: plain slices only
            d.qpos[self._qpos] = q[k]
            d.qvel[self._dof] = qd[k]
            d.qacc[self._dof] = qdd[k]
            mujoco.mj_inverse(m, d)
            faces[i] = d.geom_xpos[g] - d.geom_xmat[g, 0::3] * half_thickness  # the face's centre
            mujoco.mj_jac(m, d, jacp, jacr, faces[i], self._palm)
            jacs[i, :3], jacs[i, 3:] = jacp[:, arm], jacr[:, arm]
            ext[i] = d.qfrc_inverse[arm] - tau[k + 1, :N_ARM]  # J^T w_ext
        # w_ext = (J J^T)^-1 J (J^T w_ext), all samples at once.
        jjt = jacs @ jacs.transpose(0, 2, 1) + 1e-9 * np.eye(6)
        wrench = np.linalg.solve(jjt, (jacs @ ext[:, :, None]))[:, :, 0]
        force = -wrench @ sel  # the object pushes back on the palm
        vertical = -wrench[:, 2]
        pos = faces @ direction
        speed = np.einsum("nij,nj->ni", jacs[:, :3], qd[steps, :N_ARM]) @ direction
        # Onto a uniform grid (gaps interpolated) before the zero-phase low-pass.
        ts = t[steps]
        t = np.arange(ts[0], ts[-1] + 1e-9, step * max(1, stride))
        force = lowpass(t, np.interp(t, ts, force), cutoff_hz)
        vertical = lowpass(t, np.interp(t, ts, vertical), cutoff_hz)
        speed_f = lowpass(t, np.interp(t, ts, speed), cutoff_hz)
        accel = np.gradient(speed_f, t)
        return PushForce(t, force, vertical, accel, speed_f, np.interp(t, ts, pos))


def release_speed(t_obj: np.ndarray, p_obj: np.ndarray, xy: np.ndarray, direction: np.ndarray, t_release: float,
                  after: float = 0.1, span: float = 0.5) -> float:
    """Speed along the push at which the object leaves the palm: a line through its positions
    from `after` to `after + span` s past the last contact (a rolling sphere keeps its speed)."""
    w = (t_obj > t_release + after) & (t_obj < t_release + after + span) & np.all(np.isfinite(p_obj), axis=1)
    if w.sum() < 4:
        return float("nan")
    s = (p_obj[w, :2] - np.asarray(xy)[:2]) @ np.asarray(direction)[:2]
    return float(np.polyfit(t_obj[w], s, 1)[0])


def fit_push(pf: PushForce, shape: str, contact: np.ndarray, noise_cutoff_hz: float = 8.0,
             rolled_off: float | None = None) -> ForceFit:
    """Mass and friction from the push force over the contact samples (linear least squares).

    Sliding (box, cylinder):  F = m a + mu (m g - F_z), i.e. F = b_a a + b_0 + b_z (-F_z) with
    b_z = mu and b_0 = mu m g. F_z, the palm's vertical force on the object, is what separates mu
    from m: the probe slides the palm face up and down while pushing, so friction at the face
    alternately presses the object into the table and lifts it, and the table's friction
    force follows mu times that load. m comes from b_0 / (mu g), which is far better determined
    than the inertial b_a (the arm cannot accelerate the palm much).
    Rolling sphere: F + F_z = (7/5) m a + b (torque balance with the face's vertical friction);
    friction does no work and is not identified. With `rolled_off` (the speed the sphere rolls
    away at, from the camera) the momentum it took instead: m = integral (F + F_z) dt / (7/5 v).
    The palm's friction on the rolling sphere sticks and slips chaotically and the force trace
    with it (replays differ by +-30%), but the momentum delivered does not: the regression read
    2-4x more scatter than the impulse on the same pushes.
    Covariance: sysid.calculate_intervals on the linear model, the residual variance scaled
    for the correlation of low-passed samples; then the delta method to (log m, log mu).
    """
    from mujoco import sysid

    if shape == "sphere" and rolled_off is not None:
        F, Fz = pf.force[contact], pf.vertical[contact]
        if len(F) < 10:
            raise ValueError(f"only {len(F)} samples with the palm pushing the object")
        if not rolled_off > 0.02:
            raise ValueError(f"the sphere did not roll away from the palm (speed {rolled_off:.3f} m/s)")
        impulse = float(np.sum(F + Fz) * np.median(np.diff(pf.t)))
        m = impulse / (ROLLING_FACTOR[shape] * rolled_off)
        return ForceFit(m, float("nan"), np.array([[float("nan")]]), len(F), 0.0)
    if shape == "sphere":  # a sphere stays on the palm only while the palm speeds up (no impact spikes)
        contact = contact & (pf.accel > SPHERE_MIN_ACCEL)
    a, F, Fz = pf.accel[contact], pf.force[contact], pf.vertical[contact]
    if len(F) < 10:
        raise ValueError(f"only {len(F)} samples with the palm pushing the object")
    dt = float(np.median(np.diff(pf.t)))
    inflate = 1.0 / min(1.0, 2.0 * noise_cutoff_hz * dt)
    if shape == "sphere":
        A = np.column_stack([ROLLING_FACTOR[shape] * a, np.ones_like(a)])
        y = F + Fz
    else:
        A = np.column_stack([a, np.ones_like(a), -Fz])
        y = F
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = y - A @ coef
    cov, _ = sysid.calculate_intervals([r], -A)
    cov = cov * inflate
    if shape == "sphere":
        m = float(coef[0])
        cov_log = np.array([[cov[0, 0] / max(m, 1e-9) ** 2]])
        return ForceFit(m, float("nan"), cov_log, len(F), float(np.sqrt(np.mean(r * r))))
    b0, mu = float(coef[1]), float(coef[2])
    m = b0 / (max(mu, 1e-9) * GRAVITY)
    # log m = log b0 - log mu - log g; log mu = log b_z
    g = np.array([[0.0, 1.0 / max(b0, 1e-9), -1.0 / max(mu, 1e-9)], [0.0, 0.0, 1.0 / max(mu, 1e-9)]])
    cov_log = g @ cov @ g.T
    return ForceFit(m, mu, cov_log, len(F), float(np.sqrt(np.mean(r * r))))


def contact_mask(pf: PushForce, min_force: float = 0.05, min_speed: float = 0.02, edge: float = 0.15,
                 max_speed: float = float("inf")) -> np.ndarray:
    """Samples where the palm is moving forward (below `max_speed`) and pressing on the object.

    The first and last `edge` seconds are left out: the zero-phase filter's start-up transients.
    """
    inner = (pf.t > pf.t[0] + edge) & (pf.t < pf.t[-1] - edge)
    return (pf.force > min_force) & (pf.speed > min_speed) & (pf.speed < max_speed) & inner
