"""What a person looks at after a weighing (weigh.py): the lift, and the weight read over the hold (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassEstimate, MassIdConfig
from drex_ros.core.massid.weigh import vertical_load
from drex_ros.core.robot.model import GRAVITY


def plot_weighing(rec: Recording, est: MassEstimate, path: str | Path, cfg: MassIdConfig | None = None,
                  title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = cfg or MassIdConfig()
    w = est.window  # t_motion: the lift seen by the camera; t0..t1: the hold weighed
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    ok = np.all(np.isfinite(rec.pose_p), axis=1)
    ax[0].plot(rec.pose_t[ok], rec.pose_p[ok, 2] * 1e3, "k.", ms=3, label="observed (camera)")
    ax[0].axvspan(w.t0, w.t1, color="tab:green", alpha=0.2, label="hold weighed")
    ax[0].set(xlabel="time [s]", ylabel="object height [mm]", title="lift")
    ax[0].legend()
    t, force = vertical_load(rec, w.t_motion - 0.5, w.t1 + 0.5, cfg)
    ax[1].plot(t, force / GRAVITY, "k-", lw=0.8, label="arm's efforts: palm load / g")
    ax[1].axvspan(w.t0, w.t1, color="tab:green", alpha=0.2)
    if est.identifiable:
        ax[1].axhline(est.mass, color="r", label=f"mass {est.mass:.4f} kg")
        ax[1].axhspan(est.mass - est.std, est.mass + est.std, color="r", alpha=0.15, label=f"+/- {est.std:.4f} kg")
        ax[1].set_ylim(0.0, 2.0 * est.mass)
    ax[1].set(xlabel="time [s]", ylabel="weight reading [kg]",
              title="weighed" if est.identifiable else f"unidentifiable: {est.reason}"[:80])
    ax[1].legend()
    fig.suptitle(title or "weighing")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
