"""Exponential moving average (EMA) of joint position commands.

    y_k = alpha * x_k + (1 - alpha) * y_{k-1}        (per joint)

alpha is given directly (0 < alpha <= 1; 1 = no smoothing) or through a time constant
tau, alpha = 1 - exp(-dt / tau), so the smoothing does not change with the command rate.

The filter restarts from the next input (y = x) when its history no longer describes the
command stream: on an explicit reset (e-stop), when the gap since the previous input is
longer than `max_gap`, or when the set or order of joint names changes. A non-finite input
for a joint is passed through unchanged for the safety layer to reject and count, and that
joint's history is left as it was, so one bad value cannot poison later outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SmootherConfig:
    alpha: float = 0.3
    time_constant: float = 0.0  # s; > 0 overrides alpha with a rate-independent filter
    max_gap: float = 0.2  # s; a longer silence restarts the filter

    def validate(self) -> None:
        if self.time_constant < 0 or not math.isfinite(self.time_constant):
            raise ValueError(f"time_constant must be >= 0 s, got {self.time_constant}")
        if self.time_constant == 0 and not (0.0 < self.alpha <= 1.0):
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not (self.max_gap > 0):
            raise ValueError(f"max_gap must be positive, got {self.max_gap}")


class EmaSmoother:
    """Per-joint EMA over a stream of (names, positions, time) commands."""

    def __init__(self, config: SmootherConfig | None = None) -> None:
        self.config = config or SmootherConfig()
        self.config.validate()
        self._names: tuple[str, ...] | None = None
        self._y: np.ndarray | None = None
        self._t: float | None = None
        self.resets: dict[str, int] = {"estop": 0, "gap": 0, "joint_set": 0, "clock": 0, "manual": 0}

    def alpha(self, dt: float) -> float:
        """The blend weight of the new input for a step of `dt` seconds."""
        tau = self.config.time_constant
        if tau <= 0:
            return self.config.alpha
        if not (dt > 0):
            return 1.0 if dt != dt else 0.0  # NaN -> no history; dt == 0 -> keep the previous output
        return 1.0 - math.exp(-dt / tau)

    def reset(self, reason: str = "manual") -> None:
        """Forget the history; the next input is passed through unchanged."""
        if self._y is not None:
            self.resets[reason] = self.resets.get(reason, 0) + 1
        self._names = self._y = self._t = None

    def update(self, names: Sequence[str], positions: np.ndarray, t: float) -> tuple[np.ndarray, str | None]:
        """Filter one command; returns (smoothed positions, reason the filter restarted or None)."""
        x = np.asarray(positions, dtype=float)
        names = tuple(names)
        if x.shape != (len(names),):
            raise ValueError(f"{len(names)} joint names but positions of shape {x.shape}")
        reason = None
        if self._y is not None:
            if names != self._names:
                reason = "joint_set"
            elif t < self._t:
                reason = "clock"  # time went backwards (sim reset, bag loop)
            elif t - self._t > self.config.max_gap:
                reason = "gap"
            if reason:
                self.reset(reason)
        finite = np.isfinite(x)
        if self._y is None:
            y = x.copy()
            # A joint whose first value is bad has no history yet: NaN keeps it marked as such.
            self._y = np.where(finite, x, np.nan)
        else:
            a = self.alpha(t - self._t)
            prev = self._y
            blended = np.where(np.isfinite(prev), a * x + (1.0 - a) * prev, x)
            y = np.where(finite, blended, x)
            self._y = np.where(finite, blended, prev)
        self._names, self._t = names, t
        return y, reason


class CommandSmoother:
    """The smoothing stage of the command chain, whether it runs as smoother_node or fused.

    Owns the per-source rule: a command from another source than the last one (header.frame_id:
    policy, mass_id) restarts the filter, so a probe's stream is never blended into the policy's.
    A rising e-stop restarts it too. The caller forwards malformed commands unfiltered (the
    safety gate refuses and counts them, in one place)."""

    def __init__(self, config: SmootherConfig | None = None) -> None:
        self.ema = EmaSmoother(config)
        self.source: str | None = None
        self._estop = False

    def set_estop(self, engaged: bool) -> None:
        if engaged and not self._estop:
            self.ema.reset("estop")
        self._estop = bool(engaged)

    def update(self, names: Sequence[str], positions: np.ndarray, source: str,
               t: float) -> tuple[np.ndarray, str | None]:
        """Smoothed positions of one command from `source`, and why the filter restarted (or None)."""
        if source != self.source:
            if self.source is not None:
                self.ema.reset("source")
            self.source = source
        return self.ema.update(names, positions, t)
