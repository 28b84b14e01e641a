"""Is a measured joint sample plausible? One glitch must not pass for the robot's position.

A sample of one joint is implausible when its position is non-finite, outside the URDF limits
by more than `limit_tolerance`, or farther from the joint's last plausible sample than
`rate_scale` times its velocity limit allows over the time between them (plus `jump_tolerance`
for noise); and, where the driver gives a velocity, when that velocity is beyond `rate_scale`
times the limit (plus `velocity_tolerance`) or disagrees with the position change (trapezoid
of the two velocities, within `velocity_tolerance * dt + jump_tolerance`). The velocity test
compares consecutive samples only: both plausible and at most `velocity_check_dt` apart. Over
a longer gap (lost samples on a busy host) or after a rejected sample the trapezoid says
nothing about a joint that sped up or stopped meanwhile, and judging against an old reference
would keep a finger that closed fast and then stalled stale for ever. The caller treats an
implausible joint as stale until a plausible sample comes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StateCheckConfig:
    limit_tolerance: float = 0.05  # rad beyond the URDF limits
    rate_scale: float = 1.5  # x URDF velocity limit between two samples
    jump_tolerance: float = 0.02  # rad of noise on top
    velocity_tolerance: float = 0.5  # rad/s
    velocity_check_dt: float = 0.02  # s: longest gap over which velocities must explain the position change


class StateCheck:
    """Keeps each joint's last plausible sample (position, velocity, time) to judge the next one."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, velocity_limit: np.ndarray,
                 config: StateCheckConfig) -> None:
        c = config
        self.config = c
        self.lower = np.asarray(lower, float) - c.limit_tolerance
        self.upper = np.asarray(upper, float) + c.limit_tolerance
        self.max_rate = c.rate_scale * np.asarray(velocity_limit, float)
        n = len(self.lower)
        self.q = np.full(n, np.nan)
        self.v = np.full(n, np.nan)
        self.t = np.full(n, np.nan)
        self.last_ok = np.zeros(n, dtype=bool)  # the joint's previous sample was plausible

    def forget(self) -> None:
        """After a clock jump the sample times mean nothing: judge the next ones by the limits only."""
        self.t[:] = np.nan

    def check(self, dst: np.ndarray, q: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
        """Plausible mask for joints `dst` sampled at time t; remembers the plausible ones."""
        c = self.config
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(q) & (q >= self.lower[dst]) & (q <= self.upper[dst])
            dt = t - self.t[dst]
            known = np.isfinite(dt) & (dt >= 0)
            dq = q - self.q[dst]
            ok &= ~known | (np.abs(dq) <= self.max_rate[dst] * dt + c.jump_tolerance)
            has_v = np.isfinite(v)
            ok &= ~has_v | (np.abs(v) <= self.max_rate[dst] + c.velocity_tolerance)
            both = has_v & known & np.isfinite(self.v[dst]) & self.last_ok[dst] & (dt <= c.velocity_check_dt)
            mismatch = np.abs(dq - 0.5 * (v + self.v[dst]) * dt)
            ok &= ~both | (mismatch <= c.velocity_tolerance * dt + c.jump_tolerance)
        keep = dst[ok]
        self.q[keep], self.v[keep], self.t[keep] = q[ok], v[ok], t
        self.last_ok[dst] = ok
        return ok
