"""What a person looks at after an identification: trajectories, forces, loss over mass (PNG)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drex_ros.core.massid.force_regression import PushForce, PushForceEstimator, contact_mask, fit_push
from drex_ros.core.massid.identify import SimCalibrator
from drex_ros.core.massid.trajectory_match import Recording, TrajectoryMatcher, mass_friction_of, object_parameters
from drex_ros.core.massid.types import MassEstimate, MassIdConfig

CURVE_FACTORS = (0.4, 0.55, 0.7, 0.85, 1.0, 1.2, 1.4, 1.8, 2.5)


@dataclass
class MassIdReport:
    est: MassEstimate
    sim_t: np.ndarray
    sim_pos: np.ndarray  # (n, 3) object position simulated at the fit
    obs_t: np.ndarray  # camera times mapped to the joint clock
    obs_pos: np.ndarray
    force_obs: PushForce
    force_sim: PushForce
    curve_masses: np.ndarray
    curve_loss: np.ndarray  # squared log-misfit of the replay's reading vs the recording's (friction at the fit)


def build_report(rec: Recording, est: MassEstimate, cfg: MassIdConfig | None = None) -> MassIdReport:
    """Re-simulates the fit and a curve of masses around it (a few batched rollouts)."""
    cfg = cfg or MassIdConfig()
    w = est.window
    params = object_parameters(rec.shape, rec.size, cfg.mass_bounds, cfg.friction_bounds)
    matcher = TrajectoryMatcher(rec, w.t0, w.t1, w.xy, w.yaw, cfg.weights, cmd_delay=est.cmd_delay,
                                pose_offset=est.pose_offset, params=params, nthread=cfg.nthread,
                                push_direction=w.direction)
    estimator = PushForceEstimator(matcher.timestep)
    sel = (rec.joint_t >= w.t0) & (rec.joint_t <= w.t1)
    f_obs = estimator.estimate(rec.joint_t[sel], rec.joint_q[sel], None if rec.joint_v is None else rec.joint_v[sel],
                               rec.joint_effort[sel], w.direction, cfg.weights.effort_cutoff_hz)
    sphere = rec.shape == "sphere"
    max_speed = float("inf") if sphere else cfg.reading_max_speed
    contact = contact_mask(f_obs, min_speed=cfg.reading_min_speed, max_speed=max_speed)
    obs = fit_push(f_obs, rec.shape, contact, cfg.weights.effort_cutoff_hz)
    target = np.log(np.maximum([obs.mass] + ([] if sphere else [obs.friction]), 1e-6))
    cal = SimCalibrator(matcher, estimator, w.direction, rec.shape, cfg.weights.effort_cutoff_hz, est.force_span,
                        1, 0.0, target, max_speed=max_speed, min_speed=cfg.reading_min_speed)
    mass, mu = mass_friction_of(est.best_x)
    masses = mass * np.array(CURVE_FACTORS)
    X = np.array([[np.log(m)] + ([] if sphere else [np.log(mu)]) for m in masses])
    loss = np.sum((cal.estimates(X) - target) ** 2, axis=1)
    sim = cal.last_sim
    i_fit = CURVE_FACTORS.index(1.0)
    tau = np.zeros((len(sim.times), sim.joint_q.shape[2]))
    tau[:, :sim.efforts.shape[2]] = sim.efforts[i_fit]
    f_sim = estimator.estimate(sim.times, sim.joint_q[i_fit], sim.joint_v[i_fit], tau, w.direction,
                               cfg.weights.effort_cutoff_hz)
    pt, pp, _ = matcher.pose_samples()
    return MassIdReport(est, sim.times, sim.obj_pos[i_fit], pt, pp, f_obs, f_sim, masses, loss)


def plot_report(report: MassIdReport, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    est = report.est
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.8))
    d = est.window.direction
    ax[0].plot(report.obs_t, (report.obs_pos[:, :2] - est.window.xy) @ d[:2] * 1e3, "k.", label="observed")
    ax[0].plot(report.sim_t, (report.sim_pos[:, :2] - est.window.xy) @ d[:2] * 1e3, "r-", label="simulated (fit)")
    ax[0].set(xlabel="time [s]", ylabel="object travel along the push [mm]", title="object trajectory")
    ax[0].legend()
    ax[1].plot(report.force_obs.t, report.force_obs.force, "k-", label="measured (joint efforts)")
    ax[1].plot(report.force_sim.t, report.force_sim.force, "r-", label="simulated (fit)")
    ax[1].set(xlabel="time [s]", ylabel="palm push force [N]", title="push force")
    ax[1].legend()
    ax[2].semilogx(report.curve_masses, report.curve_loss, "o-")
    if est.identifiable:
        ax[2].axvline(est.mass, color="r", label=f"{est.mass:.3f} kg")
        ax[2].legend()
    ax[2].set(xlabel="mass [kg] (friction at the fit)", ylabel="(log reading misfit)^2",
              title="loss over mass: replay vs recording")
    verdict = est.summary() if est.identifiable else f"UNIDENTIFIABLE: {est.reason}"
    fig.suptitle((title + "\n" if title else "") + verdict, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
