"""The excitation motion that robot calibration (robot_calibration.py) is identified from.

The arm leaves its start pose for the home pose, high above the table, and there every arm joint
follows its own sum of sines (a finite Fourier series, the usual excitation for identifying a
manipulator's dynamics, e.g. Swevers, Ganseman, Tukel, De Schutter, Van Brussel, IEEE T-RA 13(5),
1997), faded in and out, then returns. Each joint gets harmonics of a common period that no
other joint uses, so their velocities are uncorrelated and each joint's friction separates from
the others'; every joint reverses often, so Coulomb friction (a step at each reversal) separates
from viscous friction (proportional to speed) and from a constant offset. The hand stays as it
started (open).

Safe by construction, and checked: every joint stays `limit_margin` inside its limits and under
`speed_share` of its velocity limit (safety_node allows 50 %), and the palm and the fingertips stay
`min_height` above the table top (the world's z = 0): amplitudes are scaled down until they do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drex_ros.core.massid.push_probe import ProbePlan, ProbePlanError
from drex_ros.core.robot.grasp_plan import min_jerk
from drex_ros.core.robot.model import N_ARM, robot_model


@dataclass(frozen=True)
class ExcitationConfig:
    duration: float = 40.0  # s of excitation (the budget: 60 s of motion in all)
    period: float = 20.0  # s: the series' fundamental
    harmonics: int = 3  # per joint
    amplitude: tuple[float, ...] = (0.35, 0.25, 0.35, 0.30, 0.45, 0.35, 0.60)  # rad, peak, per arm joint
    speed_share: float = 0.35  # of each joint's velocity limit
    limit_margin: float = 0.15  # rad inside each joint limit
    min_height: float = 0.15  # m: the palm and fingertips above the table top (objects there are lower)
    fade: float = 2.0  # s: the sines fade in and out
    transfer: float = 3.0  # s from the start pose to home and back
    seed: int = 0  # of the sines' phases

    def validate(self) -> None:
        if self.duration <= 2 * self.fade or self.period <= 0 or self.harmonics < 1:
            raise ValueError("excitation: duration must exceed twice the fade; period and harmonics positive")
        if len(self.amplitude) != N_ARM or min(self.amplitude) < 0:
            raise ValueError(f"excitation: {N_ARM} non-negative amplitudes needed")
        if not 0 < self.speed_share <= 0.5:
            raise ValueError("excitation: speed_share must be in (0, 0.5] (safety allows half the limit)")


def _sines(t: np.ndarray, cfg: ExcitationConfig) -> np.ndarray:
    """(len(t), 7) offsets in [-1, 1] per joint: joint j uses harmonics j + 1, j + 1 + 7, ... of the period."""
    rng = np.random.default_rng(cfg.seed)
    out = np.zeros((len(t), N_ARM))
    for j in range(N_ARM):
        for k in range(cfg.harmonics):
            n = j + 1 + N_ARM * k
            out[:, j] += np.sin(2 * np.pi * n * t / cfg.period + rng.uniform(0, 2 * np.pi)) / (k + 1)
        out[:, j] /= np.max(np.abs(out[:, j]))
    fade = np.clip(np.minimum(t, cfg.duration - t) / cfg.fade, 0.0, 1.0)
    return out * min_jerk(fade)[:, None]


def _unsafe(arm: np.ndarray, hand: np.ndarray, rate_hz: float, cfg: ExcitationConfig) -> str:
    """Why the arm path is not safe ("" when it is)."""
    rm = robot_model()
    lo, hi = rm.limits.lower[:N_ARM] + cfg.limit_margin, rm.limits.upper[:N_ARM] - cfg.limit_margin
    if np.any(arm < lo) or np.any(arm > hi):
        return "a joint limit"
    speed = np.abs(np.diff(arm, axis=0)).max(axis=0) * rate_hz
    if np.any(speed > cfg.speed_share * rm.limits.velocity[:N_ARM]):
        return "a velocity limit"
    for q in arm[:: max(1, int(rate_hz / 25))]:
        heights = [p[2] for p in rm.frame_positions(np.r_[q, hand]).values()]
        if min(heights) < cfg.min_height:
            return "the table"
    return ""


def plan_excitation(q_start: np.ndarray, rate_hz: float = 250.0, cfg: ExcitationConfig | None = None) -> ProbePlan:
    """Full-robot commands at `rate_hz`; push_start..push_end of the plan is the excitation."""
    cfg = cfg or ExcitationConfig()
    cfg.validate()
    q_start = np.asarray(q_start, dtype=float)
    home, hand = robot_model().home()[:N_ARM], q_start[N_ARM:]
    t = np.arange(0.0, cfg.duration, 1.0 / rate_hz)
    shape = _sines(t, cfg) * np.asarray(cfg.amplitude)
    # Each joint's amplitude within its speed bound first, then all together for the rest.
    speed = np.abs(np.diff(shape, axis=0)).max(axis=0) * rate_hz
    bound = 0.95 * cfg.speed_share * robot_model().limits.velocity[:N_ARM]
    shape = shape * np.minimum(1.0, bound / np.maximum(speed, 1e-12))
    scale = 1.0
    while (why := _unsafe(home + scale * shape, hand, rate_hz, cfg)) and scale > 0.2:
        scale *= 0.85
    if why:
        raise ProbePlanError(f"no safe excitation: even at 20 % of its amplitudes the arm reaches {why}")
    arm = home + scale * shape
    n_move = int(round(cfg.transfer * rate_hz))
    s = min_jerk(np.linspace(0.0, 1.0, n_move))[:, None]
    to_home = q_start[:N_ARM] + s * (home - q_start[:N_ARM])
    back = home + s * (q_start[:N_ARM] - home)
    arm_all = np.vstack([to_home, arm, back])
    commands = np.hstack([arm_all, np.repeat(hand[None], len(arm_all), axis=0)])
    times = np.arange(len(commands)) / rate_hz
    start = n_move / rate_hz
    return ProbePlan(times, commands, push_start=start, contact_time=start, push_end=start + cfg.duration,
                     direction=np.zeros(3))
