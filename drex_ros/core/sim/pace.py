"""How far the simulator may advance on each tick: its real-time factor, kept or adapted.

A fixed factor f runs the sim clock at f times the wall clock. A host too busy for that leaves
the sim behind its schedule; once it is MAX_LAG behind, rather than catch up in one burst of
joint states (which subscribers on that same busy host would have to swallow at once), the
schedule restarts from where the sim is, and the window's report says it fell behind. `auto`
goes further: after a window in which the sim fell behind, the factor drops below the rate it
achieved, so the sim clock slows and every node on the host gets time to keep up; after
`recover_windows` windows on schedule it creeps back up, never above `auto_max`.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LAG = 0.1  # s of sim time behind the schedule before it restarts
TICK_ADVANCE = 0.01  # s of sim time a tick advances when not on a schedule


def parse_factor(value: object) -> float | None:
    """The real_time_factor parameter: a number (0 or less: as fast as possible) or 'auto' (None)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"real_time_factor must be a number or 'auto', got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PaceWindow:
    """One report window: the factor asked for, the rate the sim achieved, how often it fell behind."""

    factor: float
    achieved: float
    fell_behind: int
    new_factor: float  # auto: the factor from now on (equal to factor otherwise)

    @property
    def behind(self) -> bool:
        return self.fell_behind > 0


class SimPace:
    def __init__(self, factor: float | None, wall: float, sim: float, window: float = 2.0,
                 auto_min: float = 0.05, auto_max: float = 1.0, recover_windows: int = 3) -> None:
        """factor: fixed real-time factor (<= 0: as fast as possible), or None for auto."""
        self.auto = factor is None
        self.factor = auto_max if factor is None else factor
        self.window, self.auto_min, self.auto_max, self.recover_windows = window, auto_min, auto_max, recover_windows
        self._anchor = (wall, sim)
        self._window_start = (wall, sim)
        self._fell_behind = 0
        self._on_schedule = 0

    def target(self, wall: float, sim: float) -> float:
        """The sim time to advance to now."""
        if self.factor <= 0:
            return sim + TICK_ADVANCE
        target = self._anchor[1] + (wall - self._anchor[0]) * self.factor
        if target - sim > MAX_LAG:
            self._fell_behind += 1
            self._anchor = (wall, sim)
            return sim + min(TICK_ADVANCE, target - sim)
        return target

    def report(self, wall: float, sim: float) -> PaceWindow | None:
        """At the end of each window (None before): what it achieved; auto adapts the factor here."""
        wall0, sim0 = self._window_start
        if wall - wall0 < self.window:
            return None
        achieved = (sim - sim0) / (wall - wall0)
        out = PaceWindow(self.factor, achieved, self._fell_behind, self._adapted(achieved))
        if out.new_factor != self.factor:
            self.factor, self._anchor = out.new_factor, (wall, sim)
        self._window_start, self._fell_behind = (wall, sim), 0
        return out

    def _adapted(self, achieved: float) -> float:
        if not self.auto:
            return self.factor
        if self._fell_behind:
            self._on_schedule = 0
            return max(self.auto_min, min(self.factor, 0.8 * achieved))
        self._on_schedule += 1
        if self._on_schedule >= self.recover_windows and self.factor < self.auto_max:
            self._on_schedule = 0
            return min(self.auto_max, 1.25 * self.factor)
        return self.factor
