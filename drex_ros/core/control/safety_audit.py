"""Checks SafetyGate's promises on event sequences: what the tests' property runs and `drex bench
safety` share.

An event sequence mixes commands (bursts, no-ops, foreign sources, old stamps), measured states
(clean, or glitched: NaN, huge, beyond the limits, a jump, an absurd velocity, duplicated names,
old or future stamps), watchdog ticks, e-stop and reset, and clock jumps (backwards too). The
robot follows the outputs' straight-line path `ROBOT_LAG` s late, so it never moves faster
than the outputs do. `GateAudit` keeps its own model
of what the gate must do and records every broken promise, stated over the outputs' times:
  - no joint moves faster than its velocity bound over any window (checked per interval, which
    bounds every window); no arm joint's acceleration exceeds its bound (u_k = dq/dt per interval,
    a_k = du/dt; after a gap longer than max_dt the stream restarts at rest where it was);
  - nothing is output while a joint's latest sample was implausible or is older than state_timeout;
  - a command is taken exactly when it is well formed, from the owner, not older than the last
    one taken, moves a known joint to a finite target, on fresh state, e-stop clear;
  - a tick holds when no command was taken for command_timeout (or e-stop), and only then;
  - while the e-stop is latched nothing but holds comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drex_ros.core.control.safety import SafetyGate

STATE_KINDS = ("clean", "nan", "huge", "beyond_limit", "jump", "velocity", "duplicate", "old_stamp", "future_stamp")
COMMAND_KINDS = ("full", "partial", "empty", "unknown", "all_nan", "foreign", "old_stamp", "nan_effort")
GLITCHES = {"nan", "huge", "beyond_limit", "jump", "velocity", "old_stamp", "future_stamp"}
OWNER = "policy"
ROBOT_LAG = 0.1  # s the robot trails the outputs
REL = 1e-9  # relative tolerance for float rounding in the checks


@dataclass
class Event:
    kind: str  # state | command | burst | tick | estop | reset | clock_back
    dt: float  # clock advance before the event (clock_back: how far back)
    sub: str = ""  # state or command kind
    values: tuple[float, ...] = ()  # 23 numbers in [-1, 1]: where a target lies within the limits
    joint: int = 0  # which joint a glitch hits
    flag: bool = False  # estop engaged; burst length > 1
    count: int = 1  # burst length


@dataclass
class AuditResult:
    violations: list[str] = field(default_factory=list)
    outputs: int = 0
    worst_velocity_ratio: float = 0.0
    worst_acceleration_ratio: float = 0.0


class GateAudit:
    """Runs events through a SafetyGate and records every promise it breaks."""

    def __init__(self, gate: SafetyGate, start_q: np.ndarray) -> None:
        self.gate, self.c = gate, gate.config
        gate.set_owner(OWNER)
        n = len(gate.names)
        self.t = self.seen = 0.0
        self._rest = np.asarray(start_q, float).copy()  # where the robot is before the outputs' path
        self.sampled = np.full(n, -np.inf)  # each joint's last good sample time
        self.last_command_t = -np.inf
        self.last_stamp = -np.inf
        self.stamp_clock = 1000.0  # the command stamps' clock (the upstream's)
        self.latched = bool(self.c.start_latched)
        self.estop_input = False
        self.holding = False
        self.result = AuditResult()
        self._out: list[tuple[float, np.ndarray]] = []  # (t, q) of outputs since the last restart
        self._u = np.zeros(n)

    # ---- events -------------------------------------------------------------------------
    def apply(self, e: Event) -> None:
        if e.kind == "clock_back":
            self.t -= e.dt
            if self.t < self.seen:  # backwards from a time the gate was given
                self._clock_back()
        else:
            self.t += e.dt
        if e.kind == "state":
            self._state(e)
        elif e.kind in ("command", "burst"):
            for k in range(e.count if e.kind == "burst" else 1):
                self.t += 2e-4 if k else 0.0  # a 5 kHz burst
                self._command(e)
        elif e.kind == "tick" or e.kind == "clock_back":
            self._tick()
        elif e.kind == "estop":
            self.gate.set_estop(e.flag, self.t)
            self.estop_input = e.flag
            self.latched |= e.flag
        elif e.kind == "reset":
            ok, _ = self.gate.reset_estop()
            self._expect(ok == (not self.estop_input), "reset_estop refused/accepted wrongly")
            if ok and self.latched:
                self.latched, self.holding = False, False
        if e.kind != "reset":  # the only event that gives the gate no time
            self.seen = self.t

    def _clock_back(self) -> None:
        self.sampled[:] = -np.inf
        self.last_command_t = self.last_stamp = -np.inf
        self._rest = self.robot()
        self._out.clear()

    def _state(self, e: Event) -> None:
        names, q = list(self.gate.names), self.robot()
        vel: list[float] = []
        age = None
        sub, j = e.sub, e.joint % len(names)
        if sub == "nan":
            q[j] = np.nan
        elif sub == "huge":
            q[j] = 1e308 * (1 if e.values and e.values[0] > 0 else -1)
        elif sub == "beyond_limit":
            q[j] = self.gate.upper[j] + self.c.position_margin + self.c.state_limit_tolerance + 0.5
        elif sub == "jump":  # 0.3 rad within 1 ms of a clean sample: faster than any joint moves
            self._state(Event("state", 0.0, "clean"))
            self.t += 1e-3
            room_up = self.gate.upper[j] - q[j] > q[j] - self.gate.lower[j]
            q[j] += 0.3 if room_up else -0.3
        elif sub == "velocity":
            vel = [0.0] * len(names)
            vel[j] = 1e3
        elif sub == "duplicate":
            names.append(names[j])
            q = np.append(q, q[j])
        elif sub == "old_stamp":
            age = self.c.state_timeout + self.c.stamp_tolerance + 0.5
        elif sub == "future_stamp":
            age = -(self.c.stamp_tolerance + 0.5)
        elif e.values:  # clean, sometimes stamped within the clock offset tolerance
            age = e.values[0] * self.c.stamp_tolerance if e.values[1] > 0 else None
        self.gate.on_state(names, q.tolist(), self.t, vel, age)
        if sub == "clean":
            self.sampled[:] = self.t - max(0.0, (age or 0.0) - self.c.stamp_tolerance)
        elif sub in ("old_stamp", "future_stamp"):
            self.sampled[:] = -np.inf
        elif sub in GLITCHES:
            self.sampled[j] = -np.inf
        # duplicate: refused whole, changes nothing

    def _command(self, e: Event) -> None:
        g, sub = self.gate, e.sub
        vals = np.asarray(e.values or (0.0,) * len(g.names), float)
        target = g.lower + 0.5 * (vals + 1.0) * (g.upper - g.lower)
        names, pos, eff = list(g.names), target.tolist(), []
        source, self.stamp_clock = OWNER, self.stamp_clock + max(e.dt, 1e-6)
        stamp = self.stamp_clock
        if sub == "partial":
            names, pos = names[: 7], pos[: 7]
        elif sub == "empty":
            names, pos = [], []
        elif sub == "unknown":
            names, pos = ["bogus", "panda_joint8"], [0.1, 0.2]
        elif sub == "all_nan":
            pos = [np.nan] * len(names)
        elif sub == "foreign":
            source = "mass_id"
        elif sub == "old_stamp":
            stamp = self.stamp_clock - 10.0
        elif sub == "nan_effort":
            eff = [np.nan] * len(names)
        out = g.on_command(names, pos, eff, self.t, source, stamp)
        expected = (sub in ("full", "partial", "nan_effort") or (sub == "old_stamp" and stamp >= self.last_stamp)) \
            and self._fresh() and not self.latched
        self._expect((out is not None) == expected, f"command '{sub}' taken={out is not None}, expected {expected}")
        if out is None:
            return
        self.last_command_t, self.last_stamp, self.holding = self.t, stamp, False
        self._expect(out.mode == "command", "a command output is not in command mode")
        if sub == "nan_effort":
            self._expect(bool(np.all(out.efforts == 0.0)), "a NaN effort did not become 0")
        self._output(out.positions, out.efforts)

    def _tick(self) -> None:
        out = self.gate.on_tick(self.t)
        should_hold = self._fresh() and (self.latched or self.t - self.last_command_t > self.c.command_timeout)
        self._expect((out is not None) == should_hold, f"tick output={out is not None}, expected {should_hold}")
        if out is None:
            return
        self._expect(out.mode == "hold", "a tick output is not a hold")
        if not self.holding:
            self.last_stamp, self.holding = -np.inf, True
        self._output(out.positions, out.efforts)

    # ---- checks -------------------------------------------------------------------------
    def _fresh(self) -> bool:
        return bool(np.all(self.t - self.sampled <= self.c.state_timeout))

    def _expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.result.violations.append(f"t={self.t:.6f}: {what}")

    def _output(self, q: np.ndarray, effort: np.ndarray) -> None:
        g, r = self.gate, self.result
        r.outputs += 1
        self._expect(self._fresh(), "output from stale or implausible state")
        self._expect(bool(np.all(np.isfinite(q)) and np.all(q >= g.lower) and np.all(q <= g.upper)),
                     "output outside the position limits")
        self._expect(bool(np.all(effort >= 0) and np.all(effort <= g.max_effort)), "effort outside [0, limit]")
        if self._out:
            self._check_motion(q)
        else:
            self._u[:] = 0.0
        self._out.append((self.t, q.copy()))
        if len(self._out) > 64 and self._out[-64][0] < self.t - 2 * ROBOT_LAG:
            self._rest, self._out = self._out[-64][1], self._out[-64:]

    def robot(self) -> np.ndarray:
        """The outputs' path (ROBOT_LAG s ago), linear between outputs."""
        t = self.t - ROBOT_LAG
        if not self._out or t <= self._out[0][0]:
            return self._rest.copy()
        k = next(i for i in range(len(self._out) - 1, -1, -1) if self._out[i][0] <= t)
        if k == len(self._out) - 1:
            return self._out[k][1].copy()
        (t0, q0), (t1, q1) = self._out[k], self._out[k + 1]
        return q0 + (t - t0) / (t1 - t0) * (q1 - q0) if t1 > t0 else q1.copy()

    def _check_motion(self, q: np.ndarray) -> None:
        g, r = self.gate, self.result
        t0, q0 = self._out[-1]
        dt = self.t - t0
        if dt <= 0:
            self._expect(bool(np.all(q == q0)), "moved in zero time")
            return
        if dt > self.c.max_dt:  # a gap: the stream restarts at rest where it was
            self._expect(bool(np.all(q == q0)), "moved across a gap")
            self._u[:] = 0.0
            return
        u = (q - q0) / dt
        v_ratio = float(np.max(np.abs(u) / g.max_velocity))
        r.worst_velocity_ratio = max(r.worst_velocity_ratio, v_ratio)
        self._expect(v_ratio <= 1 + REL, f"velocity {v_ratio:.6f} x its bound")
        arm = np.isfinite(g.max_acceleration)
        a_ratio = float(np.max(np.abs(u - self._u)[arm] / (g.max_acceleration[arm] * dt)))
        r.worst_acceleration_ratio = max(r.worst_acceleration_ratio, a_ratio)
        self._expect(a_ratio <= 1 + 1e-6, f"acceleration {a_ratio:.6f} x its bound")
        self._u = u


def random_events(rng: np.random.Generator, n: int, n_joints: int) -> list[Event]:
    """A random event sequence for the bench (the tests draw theirs with hypothesis)."""
    kinds = ["state", "state", "state", "command", "command", "burst", "tick", "tick", "estop", "reset",
             "clock_back"]
    weights = np.array([8, 8, 8, 8, 8, 3, 6, 6, 0.5, 0.7, 0.3])
    out = []
    for kind in rng.choice(kinds, size=n, p=weights / weights.sum()):
        dt = float(rng.choice([0.0, 2e-4, 1e-3, 5e-3, 1e-2, 3e-2, 0.12, 0.3]))
        values = tuple(rng.uniform(-1, 1, n_joints))
        sub = ""
        if kind == "state":
            sub = "clean" if rng.random() < 0.8 else str(rng.choice(STATE_KINDS[1:]))
        elif kind in ("command", "burst"):
            sub = "full" if rng.random() < 0.6 else str(rng.choice(COMMAND_KINDS))
        if kind == "clock_back":
            dt = float(rng.uniform(1e-3, 5.0))
        out.append(Event(kind, dt, sub, values, int(rng.integers(n_joints)), bool(rng.random() < 0.5),
                         int(rng.integers(2, 60))))
    return out
