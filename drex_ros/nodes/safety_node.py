"""safety_node: the only node that publishes what moves the robot; the rclpy shell of SafetyGate
(core/control/safety.py documents every clamp, refusal, hold and the e-stop latch).

Subscribes /drex/smoothed/joint_command (header.frame_id = source), /joint_states, /drex/estop and
/drex/command_owner (latched String: the source granted; `command_owner` until it speaks); serves
/drex/reset_estop. The watchdog timer (steady clock, so a ROS clock jumping back cannot silence it)
is re-armed by accepted commands only and ticks at `watchdog_rate_hz` while holding; the gate
judges time on `watchdog_clock` (steady | ros). `state_freshness: stamp` judges stamped states by
header stamp against this node's ROS clock (driver and node must share a clock: use_sim_time with
a sim). An exception in a callback is logged once with its traceback, reported on /diagnostics
and survived: the node holds. `output_type`: joint_state (/drex/joint_command), float64_array
(forward_position_controller) or joint_trajectory (one point). `robot_profile` (a
config/robots/<name>/profile.yaml; empty for the simulator) adds one output per driver group in
that driver's names, order and message (core/control/output_routing.py), tightens the limits to
the profile's, refuses a bad joint map at start, and holds while a driver topic has no subscriber.

Fused (nodes/chain_node.py, `fused=True`): there is no command subscription; the smoothing stage
calls `submit` directly. Everything else stays this node's own: its /joint_states subscription,
e-stop, owner and reset, and the watchdog timer, spun by a thread of their own so that a stalled
policy stage cannot silence the hold. One lock serialises every use of the gate.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence

from builtin_interfaces.msg import Time
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from drex_ros.core.control.output_routing import OutputRouter
from drex_ros.core.control.safety import SafetyConfig, SafetyConfigError, SafetyGate, SafetyOutput
from drex_ros.core.robot.joint_map import JointMapError
from drex_ros.core.robot.joints import JointIndex
from drex_ros.core.robot.model import robot_model
from drex_ros.core.robot.profile import load_profile, tightened_limits
from drex_ros.nodes.driver_outputs import DriverOutputs, trajectory
from drex_ros.nodes.joint_state_cdr import JointStateReader, JointStateWriter
from drex_ros.nodes.ros_io import LATCHED_QOS, LATEST_STATE_QOS, Diagnostics, spin_node, to_sec

PARAMETERS = {**{name: getattr(SafetyConfig(), name) for name in SafetyConfig.__dataclass_fields__},
              "watchdog_rate_hz": 100.0, "watchdog_clock": "steady", "state_freshness": "arrival",
              "command_owner": "any", "output_type": "joint_state", "output_topic": "",
              "trajectory_time_from_start": 0.02, "command_topic": "/drex/smoothed/joint_command",
              "joint_states_topic": "/joint_states", "estop_topic": "/drex/estop",
              "reset_estop_service": "/drex/reset_estop", "owner_topic": "/drex/command_owner",
              "robot_profile": ""}
ADAPTERS = {"joint_state": (JointState, "/drex/joint_command"),
            "float64_array": (Float64MultiArray, "forward_position_controller/commands"),
            "joint_trajectory": (JointTrajectory, "joint_trajectory_controller/joint_trajectory")}
CHOICES = {"output_type": tuple(ADAPTERS), "watchdog_clock": ("steady", "ros"), "state_freshness": ("stamp", "arrival")}
LOG_PERIOD_S = 2.0


def guarded(callback):
    """Catch, log once per kind (with traceback), report and survive any exception: then hold.
    Runs under the node's lock: fused, the chain's thread and the safety thread share the gate."""
    @functools.wraps(callback)
    def run(self, *args):
        try:
            with self._lock:
                return callback(self, *args)
        except Exception as exc:  # noqa: BLE001 (the node must outlive any bug and keep holding)
            self.on_error(callback.__name__, exc)
            return args[-1] if callback.__name__ == "_on_reset" else None  # a service returns its response
    return run


class SafetyNode(Node):
    def __init__(self, *, fused: bool = False, **kwargs) -> None:
        super().__init__("safety_node", **kwargs)
        self._lock = threading.RLock()
        p = {name: self.declare_parameter(name, default).value for name, default in PARAMETERS.items()}
        for name, allowed in CHOICES.items():
            if p[name] not in allowed:
                raise SafetyConfigError(f"{name} must be one of {allowed}, got {p[name]!r}")
        config = SafetyConfig(**{name: type(getattr(SafetyConfig(), name))(p[name])
                                 for name in SafetyConfig.__dataclass_fields__})
        limits, self._drivers, self._router = robot_model().limits, None, None
        if p["robot_profile"]:
            try:
                profile = load_profile(p["robot_profile"], limits.names)
            except JointMapError as exc:
                raise SafetyConfigError(f"robot_profile {p['robot_profile']}: {exc}") from exc
            limits = tightened_limits(limits, profile)
            self._drivers, self._router = DriverOutputs(self, profile), OutputRouter(profile)
            self._joints, self._driver_efforts = JointIndex(limits.names), None
        self._deaf: list[str] = []
        self.gate = SafetyGate(limits, config)  # SafetyConfigError names a bad parameter
        self.gate.set_owner(p["command_owner"])
        self.names, self._p = self.gate.names, p
        msg_type, default_topic = ADAPTERS[p["output_type"]]
        self._pub = self.create_publisher(msg_type, p["output_topic"] or default_topic, 10)
        self._steady = p["watchdog_clock"] == "steady"
        self._diag = Diagnostics(self)
        self._published, self._reported, self._errors = Counter(), Counter(), set()
        self._last_log: dict[str, float] = {}
        self._last_error = ""
        self._states = JointStateReader()  # raw: bytes to arrays once (nodes/joint_state_cdr.py)
        self._writer = JointStateWriter(self.names)
        self.create_subscription(JointState, p["joint_states_topic"], self._on_state, LATEST_STATE_QOS, raw=True)
        if not fused:
            self.create_subscription(JointState, p["command_topic"], self._on_command, 10)
        self.create_subscription(Bool, p["estop_topic"], self._on_estop, 10)
        self.create_subscription(String, p["owner_topic"], self._on_owner, LATCHED_QOS)
        self.create_service(Trigger, p["reset_estop_service"], self._on_reset)
        # Timers on the steady clock: a ROS clock that jumps back must not silence the watchdog.
        # While commands flow the watchdog is re-armed by each and fires only just past
        # command_timeout; while holding it ticks at watchdog_rate_hz.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._quiet_ns = int(1.02 * config.command_timeout * 1e9)
        self._hold_ns = int(1e9 / float(p["watchdog_rate_hz"]))
        self._watchdog = self.create_timer(self._hold_ns * 1e-9, self._on_tick, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self.get_logger().info(f"safety gate: {p['output_type']}, command timeout {config.command_timeout} s, "
                               f"e-stop {'latched' if config.start_latched else 'clear'} at start, "
                               f"owner {p['command_owner']!r}, freshness by {p['state_freshness']}"
                               + (", fused: commands come from the smoothing stage" if fused else ""))

    def _now(self) -> float:
        return time.monotonic() if self._steady else self.get_clock().now().nanoseconds * 1e-9

    # ---- inputs -------------------------------------------------------------------------
    @guarded
    def _on_state(self, data: bytes) -> None:
        msg = self._states.decode(data)
        stamp = msg.stamp_seconds
        age = None
        if stamp > 0 and self._p["state_freshness"] == "stamp":
            age = self.get_clock().now().nanoseconds * 1e-9 - stamp
        self.gate.on_state(msg.name, msg.position, self._now(), msg.velocity, age)
        if self._router is not None:  # a position-only hand's reported torque closes its grip loop
            self._driver_efforts = self._joints.gather(msg.name, msg.effort)

    def _on_command(self, msg: JointState) -> None:
        self.submit(msg.name, msg.position, msg.effort, msg.header.frame_id, msg.header.stamp)

    @guarded
    def submit(self, names: Sequence[str], positions: Sequence[float], efforts: Sequence[float], source: str,
               stamp: Time) -> None:
        """Clamp one command from `source` and publish it (or refuse it); re-arms the watchdog."""
        if self._drivers_missing():
            return
        out = self.gate.on_command(names, positions, efforts, self._now(), source, to_sec(stamp))
        if out is not None:
            self._publish(out, stamp)
            if self._watchdog.timer_period_ns != self._quiet_ns:
                self._watchdog.timer_period_ns = self._quiet_ns
            self._watchdog.reset()
        self._log_new_reasons()

    @guarded
    def _on_tick(self) -> None:
        out = self.gate.on_tick(self._now())
        if out is not None:
            self._publish(out, self.get_clock().now().to_msg())
            if self._watchdog.timer_period_ns != self._hold_ns:
                self._watchdog.timer_period_ns = self._hold_ns
        elif self._watchdog.timer_period_ns == self._quiet_ns:
            self._watchdog.timer_period_ns = self._hold_ns  # fired early (a slow sim clock): check again soon
        self._log_new_reasons()

    @guarded
    def _on_estop(self, msg: Bool) -> None:
        was = self.gate.estop_latched
        self.gate.set_estop(msg.data, self._now())
        if self.gate.estop_latched and not was:
            self.get_logger().error("E-STOP latched: holding position until /drex/reset_estop")
            self._on_tick()
            self._publish_diagnostics()

    @guarded
    def _on_owner(self, msg: String) -> None:
        self.gate.set_owner(msg.data)
        self.get_logger().info(f"command owner: {msg.data!r}")

    @guarded
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.gate.reset_estop()
        if response.success:  # one call site per severity: rclpy fixes a call site's severity
            self.get_logger().warning(f"reset_estop: {response.message}")
        else:
            self.get_logger().error(f"reset_estop refused: {response.message}")
        self._publish_diagnostics()
        return response

    def _drivers_missing(self) -> bool:
        """A driver topic nobody listens on: hold the rest of the robot and say which (once)."""
        deaf = self._drivers.deaf() if self._drivers else []
        if deaf and deaf != self._deaf:
            self.get_logger().error(f"no driver subscribes to {', '.join(deaf)}: holding, commands dropped")
            self.hold(f"no driver on {', '.join(deaf)}")
        self._deaf = deaf
        return bool(deaf)

    def hold(self, reason: str) -> None:
        """Hold the measured position now (used by bringup before shutting the stack down)."""
        with self._lock:
            self.gate.force_hold(reason)
            self.get_logger().warning(f"holding: {reason}")
            self._on_tick()

    def on_error(self, where: str, exc: Exception) -> None:
        self.gate.counters["callback_error"] += 1
        self._last_error = f"{where}: {type(exc).__name__}: {exc}"
        if (where, type(exc).__name__) not in self._errors:
            self._errors.add((where, type(exc).__name__))
            self.get_logger().error(f"{self._last_error} (holding)\n{traceback.format_exc()}")
        try:
            with self._lock:
                self.gate.force_hold(f"error in {where}")
                self._watchdog.timer_period_ns = self._hold_ns  # the hold starts at the next tick
                self._report()
        except Exception:  # noqa: BLE001 (reporting must not take the node down either)
            pass

    # ---- output adapters ----------------------------------------------------------------
    def _publish(self, out: SafetyOutput, stamp) -> None:
        kind = self._p["output_type"]
        if kind == "joint_state":  # serialized here, once (nodes/joint_state_cdr.py)
            msg = self._writer.encode(stamp.sec, stamp.nanosec, out.positions, effort=out.efforts)
        elif kind == "float64_array":
            msg = Float64MultiArray(data=out.positions.tolist())
        else:
            msg = trajectory(self.names, out.positions, float(self._p["trajectory_time_from_start"]))
        self._pub.publish(msg)
        if self._router is not None:
            self._drivers.publish(self._router.route(out.positions, out.velocities, out.efforts, self.gate.measured(),
                                                     self._driver_efforts))
        self._published[out.mode] += 1

    # ---- reporting ----------------------------------------------------------------------
    def _log_new_reasons(self) -> None:
        now = time.monotonic()
        for reason, count in list(self.gate.counters.items()):  # a snapshot: other threads count on (bringup)
            if count != self._reported[reason] and now - self._last_log.get(reason, -1e9) > LOG_PERIOD_S:
                self.get_logger().warning(f"{reason}: {count} in total")
                self._reported[reason], self._last_log[reason] = count, now

    @guarded
    def _publish_diagnostics(self) -> None:
        self._report()

    def _report(self) -> None:
        t = self._now()
        if self._last_error:
            level, text = "error", f"callback error, holding: {self._last_error}"
            self._last_error = ""
        elif not self.gate.state_fresh(t):
            level, text = "error", f"joint state stale ({self.gate.state_age(t):.3f} s): publishing nothing"
        elif self._deaf:
            level, text = "error", f"no driver subscribes to {', '.join(self._deaf)}: holding"
        elif self.gate.estop_latched:
            level, text = "error", "e-stop latched: holding"
        elif self.gate.hold_reason:
            level, text = "warn", f"holding ({self.gate.hold_reason})"
        else:
            level, text = "ok", "commanding"
        values = {**{f"published_{k}": v for k, v in self._published.items()}, **dict(list(self.gate.counters.items())),
                  "command_owner": self.gate.owner}
        self._diag.publish(level, text, values)


def main(args: list[str] | None = None) -> None:
    try:
        spin_node(SafetyNode, args)
    except SafetyConfigError as exc:  # a refused parameter: one clear line, not a traceback
        print(f"safety_node: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
