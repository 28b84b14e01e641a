"""Velocity, acceleration and jerk bounds on a stream of joint position outputs, over real time.

The stream is q_k at times t_k. Between two outputs dt_k = t_k - t_{k-1} is the real elapsed time
(never floored: a burst of 100 outputs in 10 ms moves a joint at most v_max * 10 ms in all). The
stream's mean velocity over an interval is u_k = (q_k - q_{k-1}) / dt_k, its acceleration
a_k = (u_k - u_{k-1}) / dt_k and its jerk (a_k - a_{k-1}) / dt_k. Every output keeps
|u_k| <= v_max, hence |q_j - q_i| <= v_max * (t_j - t_i) over any window, and, where finite,
|a_k| <= a_max and the jerk bound. When they conflict (jerk cannot always bring the acceleration
back in time) the order is: position limits, velocity, acceleration, jerk; a dropped bound is
counted in the reasons.

Each output is the point nearest a wanted target inside those bounds, and a joint closing on its
target brakes at `braking * a_max` so it stops there instead of overshooting. An output at the
same time as the previous one repeats it. A gap longer than `max_gap` (nothing was output: stale
state, a clock that jumped) restarts the stream at rest at its last point, which the robot's
controller held meanwhile: the first output after it repeats that point, motion resumes from the
next (the true duration of that first interval is unknown, so no motion is allowed over it).
"""

from __future__ import annotations

from collections import Counter

import numpy as np


class MotionBounds:
    """Per-joint bounds (np.inf where a joint has none) and the stream's last point, velocity and
    acceleration."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, v_max: np.ndarray, a_max: np.ndarray,
                 j_max: np.ndarray, max_gap: float, braking: float = 0.9) -> None:
        self.lower, self.upper = np.asarray(lower, float), np.asarray(upper, float)
        # A hair inside the bounds, so float rounding of q + u dt never crosses them.
        self.v_max, self.a_max, self.j_max = (np.asarray(x, float) * (1 - 1e-9) for x in (v_max, a_max, j_max))
        self.max_gap = float(max_gap)
        self.braking = float(braking)
        self.q: np.ndarray | None = None  # last output
        self.t = -np.inf
        self._u = np.zeros_like(self.lower)
        self._a = np.zeros_like(self.lower)

    def restart(self, q: np.ndarray, t: float) -> np.ndarray:
        """Start (again) at rest at `q`, clipped into the position limits; returns that point."""
        self.q = np.clip(np.where(np.isfinite(q), q, 0.5 * (self.lower + self.upper)), self.lower, self.upper)
        self.t = t
        self._u[:] = 0.0
        self._a[:] = 0.0
        return self.q.copy()

    @property
    def velocity(self) -> np.ndarray:
        """The stream's velocity over its last interval (zero at rest or after a restart)."""
        return self._u.copy()

    def forget(self) -> None:
        """No stream any more: the next output starts one (at the measured position)."""
        self.q, self.t = None, -np.inf

    def step(self, target: np.ndarray, t: float, reasons: Counter) -> np.ndarray:
        """The output at time t nearest `target` (finite, inside the limits) within the bounds."""
        if self.q is None:
            raise RuntimeError("MotionBounds.step before restart")
        dt = t - self.t
        if dt <= 0.0:
            return self.q.copy()  # no time has passed: no motion
        if dt > self.max_gap:  # the robot held the last point meanwhile: start again at rest there
            return self.restart(self.q, t)
        u = self._bounded_velocity(self._wanted_velocity(target, dt), dt, reasons)
        q = np.clip(self.q + u * dt, self.lower, self.upper)  # clip: float rounding only
        u = (q - self.q) / dt
        self._a = (u - self._u) / dt
        self.q, self._u, self.t = q, u, t
        return q.copy()

    def _wanted_velocity(self, target: np.ndarray, dt: float) -> np.ndarray:
        """Straight to the target, capped so the joint can still stop there at braking * a_max."""
        e = target - self.q
        a_b = self.braking * self.a_max
        with np.errstate(invalid="ignore"):
            # u <= sqrt(2 a_b (|e| - u dt)), solved for u; inf where the joint has no acceleration bound
            cap = np.where(np.isfinite(a_b), -a_b * dt + np.sqrt((a_b * dt) ** 2 + 2.0 * a_b * np.abs(e)), np.inf)
        return np.sign(e) * np.minimum(np.abs(e) / dt, cap)

    def _bounded_velocity(self, wanted: np.ndarray, dt: float, reasons: Counter) -> np.ndarray:
        lo, hi = (self.lower - self.q) / dt, (self.upper - self.q) / dt
        bounds = (("max_velocity", -self.v_max, self.v_max),
                  ("max_acceleration", self._u - self.a_max * dt, self._u + self.a_max * dt),
                  ("max_jerk", self._u + (self._a - self.j_max * dt) * dt, self._u + (self._a + self.j_max * dt) * dt))
        for name, b_lo, b_hi in bounds:
            n_lo, n_hi = np.maximum(lo, b_lo), np.minimum(hi, b_hi)
            ok = n_lo <= n_hi
            if not ok.all():
                reasons[f"{name}_dropped"] += int((~ok).sum())
            bound = ok & ((wanted < n_lo) | (wanted > n_hi)) & ((wanted >= lo) & (wanted <= hi))
            if bound.any():
                reasons[name] += int(bound.sum())
            lo, hi = np.where(ok, n_lo, lo), np.where(ok, n_hi, hi)
        return np.clip(wanted, lo, hi)
