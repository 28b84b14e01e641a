"""Replay a recorded push in MuJoCo with candidate object parameters and score the match.

The replay is D-REX's real-to-sim step: the same robot model, gains and timestep as the scene,
driven open-loop by the joint commands the robot actually received (zero-order hold, shifted by
an estimated command delay), started from the measured joint state and the object's observed
resting pose. Candidate parameters are applied through `mujoco.sysid` Parameters whose modifiers
edit the MjSpec (mass with inertia scaled, friction); recompiling recomputes the derived
constants. All candidates of one call are rolled out together, in threads, by `mujoco.rollout`.

The residuals here (used for the command-delay fit and the pose channel: camera clock offset,
pose misfit; the mass itself comes from massid's force reading, see there why) are ours rather
than sysid's default `model_residual`, because the signals are multi-rate and irregular: joint
efforts at the driver's rate, object poses at camera times with dropped frames and an unknown
clock offset, orientation compared by geodesic angle (not quaternion components, which have a
sign ambiguity). Each channel is divided by its noise level, so the sum of squares is a negative
log-likelihood and J^T J is the Fisher information.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import mujoco.rollout as mj_rollout
import numpy as np
from mujoco import sysid

from drex_ros.core.massid.force_regression import lowpass, lowpass_across_gaps
from drex_ros.core.robot.model import ARM_JOINTS, JOINT_NAMES, N_ARM
from drex_ros.core.robot.objects import half_extents
from drex_ros.core.sim.scene_build import ObjectConfig, SceneConfig, build_spec, object_inertia


@dataclass
class Recording:
    """What a probe recorded (times in seconds on one clock; joint arrays in JOINT_NAMES order)."""

    shape: str
    size: tuple[float, ...]
    joint_t: np.ndarray  # (N,)
    joint_q: np.ndarray  # (N, 23)
    joint_v: np.ndarray | None  # (N, 23) or None (then differentiated)
    joint_effort: np.ndarray  # (N, 23)
    cmd_t: np.ndarray  # (M,)
    cmd_q: np.ndarray  # (M, 23)
    pose_t: np.ndarray  # (K,)
    pose_p: np.ndarray  # (K, 3)
    pose_q: np.ndarray  # (K, 4) wxyz


@dataclass
class MatchWeights:
    """Noise levels that normalise each residual channel."""

    effort_sigma: float = 0.05  # N*m, arm joint efforts (used when no push direction is given)
    force_sigma: float = 0.1  # N, push force estimated from the arm efforts
    position_sigma: float = 0.002  # m, object position
    rotation_sigma: float = float(np.deg2rad(1.0))  # rad, object orientation
    effort_stride: int = 4  # compare every n-th joint sample after low-pass filtering
    effort_cutoff_hz: float = 6.0  # low-pass on both measured and simulated efforts (see below)


@dataclass
class SimBatch:
    """Simulated signals for a batch of candidates on the matcher's time grid."""

    times: np.ndarray  # (n,)
    obj_pos: np.ndarray  # (k, n, 3)
    obj_quat: np.ndarray  # (k, n, 4)
    efforts: np.ndarray  # (k, n, 7)
    joint_q: np.ndarray  # (k, n, 23)
    joint_v: np.ndarray  # (k, n, 23)


def quat_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Geodesic angle between unit quaternions (any leading shape), sign-invariant."""
    dot = np.abs(np.sum(q1 * q2, axis=-1))
    return 2.0 * np.arccos(np.clip(dot, 0.0, 1.0))


def object_parameters(shape: str, size: tuple[float, ...], mass_bounds: tuple[float, float],
                      friction_bounds: tuple[float, float]) -> sysid.ParameterDict:
    """One sysid parameter theta = (log m, log(m * mu)), applied by a spec modifier.

    Why not (m, mu): the push force is F = m a(t) + (m mu) g, linear in m and in m * mu with two
    different time profiles (a(t) and a constant). In (m, mu) the loss is a long curved valley
    m (a + mu g) = const that Levenberg-Marquardt crawls along; in (log m, log m mu) it is a
    round bowl and Gauss-Newton lands in one or two steps. Logs keep both positive and make
    steps relative.
    """
    mu_lo, mu_hi = friction_bounds

    def apply(spec: mujoco.MjSpec, param: sysid.Parameter) -> None:
        log_m, log_c = (float(v) for v in param.value)
        mass = float(np.exp(log_m))
        body = spec.body("object")
        body.mass = mass
        body.inertia = object_inertia(shape, tuple(size), mass)  # a uniform solid of the known shape
        geom = spec.geom("object_geom")
        mu = float(np.clip(np.exp(log_c - log_m), 0.5 * mu_lo, 1.5 * mu_hi))
        geom.friction = [mu, geom.friction[1], geom.friction[2]]

    lo = np.array([np.log(mass_bounds[0]), np.log(mass_bounds[0] * mu_lo)])
    hi = np.array([np.log(mass_bounds[1]), np.log(mass_bounds[1] * mu_hi)])
    theta = sysid.Parameter("theta", 0.5 * (lo + hi), lo, hi, modifier=apply)
    return sysid.ParameterDict({"theta": theta})


def mass_friction_of(theta: np.ndarray) -> tuple[float, float]:
    return float(np.exp(theta[0])), float(np.exp(theta[1] - theta[0]))


class TrajectoryMatcher:
    """Rolls out the recorded commands over [t0, t1] for candidate parameters and scores them."""

    def __init__(self, rec: Recording, t0: float, t1: float, object_xy: np.ndarray, object_yaw: float,
                 weights: MatchWeights | None = None, cmd_delay: float = 0.0, pose_offset: float = 0.0,
                 params: sysid.ParameterDict | None = None, nthread: int = 2, timestep: float = 0.002,
                 push_direction: np.ndarray | None = None, use_applied_targets: bool = True) -> None:
        self.rec, self.t0, self.t1 = rec, float(t0), float(t1)
        self.object_xy = np.asarray(object_xy, dtype=float)[:2]
        self.use_applied_targets = use_applied_targets
        self.push_direction = None if push_direction is None else np.asarray(push_direction, dtype=float)
        self.weights = weights or MatchWeights()
        self.cmd_delay, self.pose_offset = float(cmd_delay), float(pose_offset)
        self.params = params or object_parameters(rec.shape, rec.size, (0.02, 3.0), (0.1, 1.5))
        cfg = SceneConfig(object=ObjectConfig(shape=rec.shape, size=tuple(rec.size),
                                              position=(float(object_xy[0]), float(object_xy[1])),
                                              yaw=float(object_yaw)), timestep=timestep)
        spec = sysid.remove_visuals(build_spec(cfg))
        for name in ARM_JOINTS:  # joint efforts as the model's sensors
            spec.add_sensor(name=f"effort_{name}", type=mujoco.mjtSensor.mjSENS_ACTUATORFRC,
                            objtype=mujoco.mjtObj.mjOBJ_ACTUATOR, objname=name)
        self.spec = spec
        model = spec.compile()
        self.timestep = model.opt.timestep
        self.nstep = int(np.floor((self.t1 - self.t0) / self.timestep))
        if self.nstep < 10:
            raise ValueError(f"match window [{t0:.3f}, {t1:.3f}] s is shorter than 10 simulation steps")
        self.times = self.t0 + self.timestep * np.arange(1, self.nstep + 1)
        self._qpos_adr = np.array([model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._dof_adr = np.array([model.joint(n).dofadr[0] for n in JOINT_NAMES])
        self._act = np.array([model.actuator(n).id for n in JOINT_NAMES])
        self._obj_adr = model.joint("object_free").qposadr[0]
        self._datas = [mujoco.MjData(model) for _ in range(max(1, nthread))]
        self.rollouts = 0  # how many trajectories this matcher has simulated
        self.initial_state = self._initial_state(model, object_xy, object_yaw)
        self._set_control(model)
        self._set_measurements(model)

    # --- set-up ------------------------------------------------------------------------
    def _initial_state(self, model: mujoco.MjModel, object_xy: np.ndarray, object_yaw: float) -> np.ndarray:
        rec = self.rec
        qpos = model.qpos0.copy()
        qvel = np.zeros(model.nv)
        q = np.array([np.interp(self.t0, rec.joint_t, rec.joint_q[:, j]) for j in range(len(JOINT_NAMES))])
        if rec.joint_v is not None and np.all(np.isfinite(rec.joint_v)):
            v = np.array([np.interp(self.t0, rec.joint_t, rec.joint_v[:, j]) for j in range(len(JOINT_NAMES))])
        else:
            v = np.array([np.interp(self.t0, rec.joint_t, np.gradient(rec.joint_q[:, j], rec.joint_t))
                          for j in range(len(JOINT_NAMES))])
        qpos[self._qpos_adr], qvel[self._dof_adr] = q, v
        z = half_extents(rec.shape, rec.size)[2] - 1e-4  # resting on the table
        qpos[self._obj_adr:self._obj_adr + 7] = [object_xy[0], object_xy[1], z, np.cos(object_yaw / 2), 0, 0,
                                                 np.sin(object_yaw / 2)]
        return sysid.create_initial_state(model, qpos, qvel)

    def _set_control(self, model: mujoco.MjModel) -> None:
        self._commands = sysid.TimeSeries(self.rec.cmd_t, self.rec.cmd_q)
        self._nu = model.nu
        self._gains = (model.actuator_gainprm[self._act, 0], -model.actuator_biasprm[self._act, 2],
                       model.actuator_forcerange[self._act, 1])
        self.control = self.control_for_delay(self.cmd_delay)
        if self.use_applied_targets:
            applied = self.applied_targets()
            if applied is not None:
                self.control = applied

    def applied_targets(self) -> np.ndarray | None:
        """(nstep, nu) the position targets the drivers actually applied, from the joint states.

        A position actuator reports tau = kp (target - q) - kd qd at the start of each step, and the
        semi-implicit integrator gives q_k = q_(k-1) + h qd_k, so the target in force during the last
        step into sample k is (q_k - h qd_k) + (tau_k + kd qd_(k-1)) / kp: exact for the sim's
        drivers at one sample per step, and free of the command path's timing (smoother, safety,
        DDS latency and jitter, which a replay of the command stamps only approximates with one
        constant delay). Samples n steps apart (a slower joint-state rate, messages a busy
        recorder lost) give the target of their last step only, with the velocity at its start
        interpolated; the steps between take the targets interpolated in time: approximate, but far
        closer than the commands (holding the last target over a 90 ms gap pushed differently).
        Joints whose effort hit its limit cannot be inverted; they keep the replayed command.
        Returns None when the joint states lack velocities or efforts.
        """
        rec = self.rec
        if rec.joint_v is None:
            return None
        kp, kd, limit = self._gains
        t, q, v, tau = rec.joint_t, rec.joint_q, rec.joint_v, rec.joint_effort
        h = self.timestep
        n = np.maximum(1.0, np.round(np.diff(t) / h))[:, None]  # steps per sample interval
        v_start = v[1:] - (v[1:] - v[:-1]) / n  # velocity at the last step's start
        target = (q[1:] - h * v[1:]) + (tau[1:] + kd * v_start) / kp  # in force over (t_(k-1), t_k]
        saturated = np.abs(tau[1:]) >= 0.999 * limit
        commands = self.control[:, self._act]
        start = self.times - self.timestep  # step k runs from start[k]
        knots = t[1:] - h  # where each sample's last step started
        inside = (start >= knots[0] - 1e-9) & (start <= knots[-1] + 1e-9)
        out = commands.copy()
        for j in range(out.shape[1]):
            # A step next to a saturated sample keeps its command (its target cannot be read).
            near_saturated = np.interp(start, knots, saturated[:, j].astype(float)) > 1e-6
            use = inside & ~near_saturated
            out[use, j] = np.interp(start[use], knots, target[:, j])
        control = np.zeros((self.nstep, self._nu))
        control[:, self._act] = out
        return control

    def control_for_delay(self, delay: float) -> np.ndarray:
        """(nstep, nu) controls: the command in force when step k starts, `delay` s after its stamp."""
        # A quarter step of slack so a command stamped exactly at a step boundary counts as in force.
        held = self._commands.interpolate(self.times - 0.75 * self.timestep - delay, method="zoh")
        control = np.zeros((self.nstep, self._nu))
        control[:, self._act] = held
        return control

    def _set_measurements(self, model: mujoco.MjModel) -> None:
        rec, w = self.rec, self.weights
        sel = np.flatnonzero((rec.joint_t > self.times[0]) & (rec.joint_t <= self.times[-1]))
        if len(sel) < 20:
            raise ValueError(f"only {len(sel)} joint states inside the match window")
        filtered, clear = lowpass_across_gaps(rec.joint_t[sel], rec.joint_effort[sel, :N_ARM], w.effort_cutoff_hz)
        idx = np.arange(0, len(sel), max(1, w.effort_stride))
        idx = idx[clear[idx]]  # compared only where measured, clear of lost states
        self.effort_t = rec.joint_t[sel][idx]
        self.effort_obs = filtered[idx]
        self._force_rows = None
        if self.push_direction is not None:
            self._force_rows = self._push_force_rows(model, rec.joint_q[sel][idx])
            self.effort_obs = np.sum(self._force_rows * self.effort_obs, axis=1, keepdims=True)

    def _push_force_rows(self, model: mujoco.MjModel, q: np.ndarray) -> np.ndarray:
        """Rows p_k with F_push = p_k . tau_arm: the palm force along the push from the joint efforts.

        tau = J^T w for a wrench w at the palm, so w = (J J^T)^-1 J tau (7 joints, 6 wrench
        components). Only the force along the push is kept: it carries m (a + mu g). The lateral
        force and the moments come from friction at the palm face, which sticks and slips
        chaotically (a 1% parameter change flips it), and would only add that chaos to the loss.
        """
        data = mujoco.MjData(model)
        body = model.body("palm_link").id
        arm_dofs = self._dof_adr[:N_ARM]
        sel = np.zeros(6)
        sel[:3] = self.push_direction
        jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        rows = np.empty((len(q), N_ARM))
        for k, qk in enumerate(q):
            data.qpos[self._qpos_adr] = qk
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            mujoco.mj_jacBody(model, data, jacp, jacr, body)
            jac = np.vstack([jacp[:, arm_dofs], jacr[:, arm_dofs]])
            rows[k] = sel @ np.linalg.solve(jac @ jac.T + 1e-9 * np.eye(6), jac)
        return rows

    def _lowpass(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Zero-phase low-pass along time.

        The contact between palm, object and table chatters at hundreds of hertz, and that chatter
        is chaotic: a 1% change of any parameter changes it completely. The mass shows in the
        force profile over the push phases (tens of milliseconds and longer), so both measured
        and simulated efforts are compared below `effort_cutoff_hz`.
        """
        return lowpass(t, x, self.weights.effort_cutoff_hz)

    def effort_residuals(self, sim: SimBatch, t_max: float | None = None) -> np.ndarray:
        """(k, n) normalised residuals of the push force (or of the raw arm efforts without a direction)."""
        sel = slice(None) if t_max is None else self.effort_t <= t_max
        t, obs = self.effort_t[sel], self.effort_obs[sel]
        sigma = self.weights.effort_sigma if self._force_rows is None else self.weights.force_sigma
        out = []
        for i in range(sim.efforts.shape[0]):
            smooth = self._lowpass(sim.times, sim.efforts[i])
            eff = np.stack([np.interp(t, sim.times, smooth[:, j]) for j in range(N_ARM)], axis=1)
            if self._force_rows is not None:
                eff = np.sum(self._force_rows[sel] * eff, axis=1, keepdims=True)
            out.append(((eff - obs) / sigma).ravel())
        return np.array(out)

    def pose_samples(self, pose_offset: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observed poses inside the window, their times mapped to the joint clock."""
        off = self.pose_offset if pose_offset is None else pose_offset
        t = self.rec.pose_t + off
        sel = (t > self.times[0]) & (t <= self.times[-1]) & np.all(np.isfinite(self.rec.pose_p), axis=1)
        return t[sel], self.rec.pose_p[sel], self.rec.pose_q[sel]

    # --- simulation --------------------------------------------------------------------
    def models(self, X: np.ndarray) -> list[mujoco.MjModel]:
        out = []
        for x in np.atleast_2d(X):
            self.params.update_from_vector(x)
            out.append(sysid.apply_param_modifiers(self.params, self.spec))
        return out

    def simulate(self, X: np.ndarray, controls: np.ndarray | None = None) -> SimBatch:
        """Roll out every row of X = [[log m, log m mu], ...] in parallel threads (optionally own controls)."""
        X = np.atleast_2d(X)
        models = self.models(X)
        k = len(models)
        control = np.tile(self.control[None], (k, 1, 1)) if controls is None else controls
        self.rollouts += k
        # Zero warm start for every candidate: results must not depend on batch order.
        state, sensordata = mj_rollout.rollout(models, self._datas, np.tile(self.initial_state, (k, 1)), control,
                                               initial_warmstart=np.zeros((k, models[0].nv)))
        nq = models[0].nq
        qpos = state[:, :, 1:1 + nq]  # FULLPHYSICS state: time, qpos, qvel, ...
        qvel = state[:, :, 1 + nq:1 + nq + models[0].nv]
        obj = qpos[:, :, self._obj_adr:self._obj_adr + 7]
        return SimBatch(self.times, obj[:, :, :3], obj[:, :, 3:], sensordata[:, :, :N_ARM],
                        qpos[:, :, self._qpos_adr], qvel[:, :, self._dof_adr])

    # --- residuals ---------------------------------------------------------------------
    def residuals(self, sim: SimBatch, pose_offset: float | None = None) -> np.ndarray:
        """(k, n_res) normalised residuals: arm efforts, object position, object rotation angle."""
        w = self.weights
        r_effort = self.effort_residuals(sim)
        pt, pp, pq = self.pose_samples(pose_offset)
        out = []
        for i in range(sim.obj_pos.shape[0]):
            pos = np.stack([np.interp(pt, sim.times, sim.obj_pos[i, :, j]) for j in range(3)], axis=1)
            quat = np.stack([np.interp(pt, sim.times, sim.obj_quat[i, :, j]) for j in range(4)], axis=1)
            quat /= np.linalg.norm(quat, axis=1, keepdims=True)
            r_pos = ((pos - pp) / w.position_sigma).ravel()
            r_rot = quat_angle(quat, pq) / w.rotation_sigma
            out.append(np.concatenate([r_effort[i], r_pos, r_rot]))
        return np.array(out)
