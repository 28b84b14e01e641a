"""Safety clamp: promises kept on random event sequences, speed under a burst, watchdog over DDS.

1. Event sequences: `--examples` random sequences (commands incl. 5 kHz bursts, glitched and
   stale states, ticks, e-stop and reset, clock jumps) through SafetyGate, every promise checked
   by core/control/safety_audit.py; `violations` must be 0.
2. Burst: commands to far targets at 5 kHz for `--burst-seconds`; `worst_velocity_ratio` is the
   fastest any joint moves over any 20 ms window, over its bound (must be <= 1).
3. Watchdog over DDS: safety_node as its own process; this process plays the driver
   (/joint_states at 100 Hz) and an upstream streaming commands at 100 Hz that dies `--trials`
   times; `watchdog_hold_p99_ms` is the time from its last command to the first hold arriving
   (bound: command_timeout + 2 watchdog periods on an idle machine; the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from drex_ros.node_process import use_private_domain

COMMAND_TIMEOUT = 0.1
WATCHDOG_HZ = 100.0
WINDOW_S = 0.02


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", type=int, default=20_000, help="random event sequences")
    parser.add_argument("--events", type=int, default=40, help="events per sequence")
    parser.add_argument("--burst-seconds", type=float, default=2.0, help="length of the 5 kHz burst")
    parser.add_argument("--trials", type=int, default=30, help="upstream deaths over DDS")
    parser.add_argument("--skip-dds", action="store_true", help="only the in-process parts")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID for the run (default: 150 + pid %% 80, away from the tests' 1-101)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _home():
    from drex_ros.core.robot.model import robot_model

    limits = robot_model().limits
    return limits, np.clip(robot_model().home(), limits.lower + 0.05, limits.upper - 0.05)


def bench_sequences(n: int, events: int, seed: int) -> dict:
    from tqdm import tqdm

    from drex_ros.core.control.safety import SafetyConfig, SafetyGate
    from drex_ros.core.control.safety_audit import GateAudit, random_events

    limits, home = _home()
    rng = np.random.default_rng(seed)
    violations, outputs, worst_v, worst_a, dropped = [], 0, 0.0, 0.0, 0
    t0 = time.perf_counter()
    for _ in tqdm(range(n), desc="event sequences", disable=None, leave=False):
        audit = GateAudit(SafetyGate(limits, SafetyConfig(start_latched=bool(rng.random() < 0.2))), home)
        for e in random_events(rng, events, len(limits.names)):
            audit.apply(e)
        r = audit.result
        violations += r.violations
        outputs += r.outputs
        worst_v, worst_a = max(worst_v, r.worst_velocity_ratio), max(worst_a, r.worst_acceleration_ratio)
        dropped += audit.gate.counters["max_jerk_dropped"]
    return {"examples": n, "events_per_example": events, "outputs_checked": outputs, "violations": len(violations),
            "first_violations": violations[:5], "sequence_worst_velocity_ratio": worst_v,
            "worst_acceleration_ratio": worst_a, "jerk_bound_dropped": dropped,
            "sequences_wall_s": time.perf_counter() - t0}


def bench_burst(seconds: float, seed: int) -> float:
    """Worst joint speed over any 20 ms window under 5 kHz commands, over its bound."""
    from drex_ros.core.control.safety import SafetyGate

    limits, home = _home()
    gate = SafetyGate(limits)
    rng = np.random.default_rng(seed)
    times, qs = [], []
    target = home
    for k in range(int(seconds * 5000)):
        t = k * 2e-4
        if k % 500 == 0:  # a new far target every 0.1 s
            target = rng.uniform(gate.lower, gate.upper)
        gate.on_state(limits.names, qs[-1] if qs else home, t)
        out = gate.on_command(limits.names, target, [], t)
        times.append(t)
        qs.append(out.positions)
    times, qs = np.array(times), np.array(qs)
    ends = np.searchsorted(times, times + WINDOW_S, side="right") - 1
    speed = np.abs(qs[ends] - qs) / WINDOW_S
    return float(np.max(speed / gate.max_velocity))


def bench_watchdog(trials: int) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from drex_ros.node_process import NodeProcess
    from drex_ros.nodes.ros_io import make_joint_state, to_stamp

    limits, home = _home()
    names = limits.names
    proc = NodeProcess("safety_node", {"start_latched": False, "command_timeout": COMMAND_TIMEOUT,
                                       "watchdog_rate_hz": WATCHDOG_HZ})
    rclpy.init()
    node = rclpy.create_node("bench_safety")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    arrivals: list[tuple[float, bool]] = []  # (arrival, is a hold)
    node.create_subscription(JointState, "/drex/joint_command",
                             lambda m: arrivals.append((time.monotonic(), m.header.stamp.sec > 1000)), 10)
    states = node.create_publisher(JointState, "/joint_states", 10)
    commands = node.create_publisher(JointState, "/drex/smoothed/joint_command", 10)
    node.create_timer(0.01, lambda: states.publish(make_joint_state(node.get_clock().now().to_msg(), names, home)))

    def spin_for(seconds: float, until=lambda: False) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            executor.spin_once(timeout_sec=0.002)
        return until()

    delays, k = [], 0
    try:
        if not spin_for(60, lambda: commands.get_subscription_count() > 0):
            raise RuntimeError(f"safety_node did not come up:\n{proc.output()}")
        for _ in range(trials):
            end = time.monotonic() + 0.3
            while time.monotonic() < end:  # the upstream streams at 100 Hz (stamps < 1000 s), then dies
                k += 1
                commands.publish(make_joint_state(to_stamp(1.0 + 1e-5 * k), names, home))
                last = time.monotonic()
                spin_for(0.01)
            n = len(arrivals)
            if spin_for(2.0, lambda n=n: any(hold for _, hold in arrivals[n:])):
                delays.append(next(t for t, hold in arrivals[n:] if hold) - last)
            spin_for(0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
        proc.stop()
    d = np.array(delays) * 1e3
    bound = (COMMAND_TIMEOUT + 2 / WATCHDOG_HZ) * 1e3
    return {"watchdog_trials": trials, "watchdog_holds_seen": len(delays),
            "watchdog_hold_p50_ms": float(np.percentile(d, 50)) if d.size else None,
            "watchdog_hold_p99_ms": float(np.percentile(d, 99)) if d.size else None,
            "watchdog_hold_max_ms": float(d.max()) if d.size else None, "watchdog_bound_ms": bound}


def run(args: argparse.Namespace) -> int:
    use_private_domain(args.domain_id)
    report = bench_sequences(args.examples, args.events, args.seed)
    report["worst_velocity_ratio"] = bench_burst(args.burst_seconds, args.seed)
    if not args.skip_dds:
        report.update(bench_watchdog(args.trials))
    report["load_average_1min"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"  {key:<32} {shown}")
    ok = report["violations"] == 0 and report["worst_velocity_ratio"] <= 1.0
    return 0 if ok else 1
