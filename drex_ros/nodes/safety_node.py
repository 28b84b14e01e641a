"""safety_node: the only node that publishes what moves the robot.

Input: /drex/smoothed/joint_command (JointState) and /joint_states. Every command goes
through core.safety.SafetyGate (limits with margin, step from measured, velocity, effort,
NaN/inf, unknown or duplicated joints, canonical order). A watchdog timer, re-armed by
every accepted command, fires just past `command_timeout` of silence and then publishes a
hold at `watchdog_rate_hz`, as it does while the e-stop is latched; nothing at all is
published while /joint_states is stale.
/drex/estop (std_msgs/Bool) true latches the e-stop; /drex/reset_estop (std_srvs/Trigger)
clears it (refused while the e-stop input still reads true).

`output_type` picks the adapter: "joint_state" (sensor_msgs/JointState on /drex/joint_command,
effort = effort limit), "float64_array" (std_msgs/Float64MultiArray of positions in canonical
order, for ros2_control's forward_position_controller) or "joint_trajectory"
(trajectory_msgs/JointTrajectory with one point, for a joint_trajectory_controller).
Watchdog and staleness run on the steady clock by default (`watchdog_clock`: steady | ros).
"""

from __future__ import annotations

import time
from collections import Counter

from builtin_interfaces.msg import Duration
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from drex_ros.core.control.safety import SafetyConfig, SafetyGate, SafetyOutput
from drex_ros.core.robot.model import robot_model
from drex_ros.nodes.ros_io import Diagnostics, make_joint_state, spin_node

PARAMETERS = {
    **{name: getattr(SafetyConfig(), name) for name in SafetyConfig.__dataclass_fields__},
    "watchdog_rate_hz": 100.0,
    "watchdog_clock": "steady",
    "output_type": "joint_state",
    "output_topic": "",  # empty = the adapter's default topic
    "trajectory_time_from_start": 0.02,  # s, for joint_trajectory output
    "command_topic": "/drex/smoothed/joint_command",
    "joint_states_topic": "/joint_states",
    "estop_topic": "/drex/estop",
    "reset_estop_service": "/drex/reset_estop",
}
DEFAULT_TOPICS = {
    "joint_state": "/drex/joint_command",
    "float64_array": "forward_position_controller/commands",
    "joint_trajectory": "joint_trajectory_controller/joint_trajectory",
}
LOG_PERIOD_S = 2.0


class SafetyNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("safety_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        config = SafetyConfig(**{name: type(getattr(SafetyConfig(), name))(self._param(name))
                                 for name in SafetyConfig.__dataclass_fields__})
        self.gate = SafetyGate(robot_model().limits, config)  # ValueError names a bad parameter
        self.names = self.gate.names
        kind = self._param("output_type")
        if kind not in DEFAULT_TOPICS:
            raise ValueError(f"output_type must be one of {sorted(DEFAULT_TOPICS)}, got {kind!r}")
        self._kind = kind
        topic = self._param("output_topic") or DEFAULT_TOPICS[kind]
        msg_type = {"joint_state": JointState, "float64_array": Float64MultiArray,
                    "joint_trajectory": JointTrajectory}[kind]
        self._pub = self.create_publisher(msg_type, topic, 10)
        self._time_from_start = float(self._param("trajectory_time_from_start"))
        clock_kind = self._param("watchdog_clock")
        if clock_kind not in ("steady", "ros"):
            raise ValueError(f"watchdog_clock must be 'steady' or 'ros', got {clock_kind!r}")
        self._steady = clock_kind == "steady"
        self._diag = Diagnostics(self)
        self._published: Counter = Counter()
        self._last_log: dict[str, float] = {}
        self._reported = Counter()
        self.create_subscription(JointState, self._param("joint_states_topic"), self._on_state, 10)
        self.create_subscription(JointState, self._param("command_topic"), self._on_command, 10)
        self.create_subscription(Bool, self._param("estop_topic"), self._on_estop, 10)
        self.create_service(Trigger, self._param("reset_estop_service"), self._on_reset)
        timer_clock = Clock(clock_type=ClockType.STEADY_TIME) if self._steady else None
        # While commands flow, the watchdog timer is re-armed by each one and fires only just past
        # command_timeout (no wake-up per cycle); while holding it ticks at watchdog_rate_hz.
        self._quiet_ns = int(1.02 * config.command_timeout * 1e9)
        self._hold_ns = int(1e9 / float(self._param("watchdog_rate_hz")))
        self._watchdog = self.create_timer(self._hold_ns * 1e-9, self._on_tick, clock=timer_clock)
        self.create_timer(1.0, self._publish_diagnostics, clock=timer_clock)
        self.get_logger().info(f"safety gate: {kind} on {topic}, command timeout {config.command_timeout} s, "
                               f"state timeout {config.state_timeout} s, margin {config.position_margin} rad")

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _now(self) -> float:
        return time.monotonic() if self._steady else self.get_clock().now().nanoseconds * 1e-9

    # ---- inputs -------------------------------------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        self.gate.on_state(msg.name, msg.position, self._now())

    def _on_command(self, msg: JointState) -> None:
        out = self.gate.on_command(msg.name, msg.position, msg.effort, self._now())
        if out is not None:
            self._publish(out, msg.header.stamp)
            if self._watchdog.timer_period_ns != self._quiet_ns:
                self._watchdog.timer_period_ns = self._quiet_ns
            self._watchdog.reset()
        self._log_new_reasons()

    def _on_tick(self) -> None:
        out = self.gate.on_tick(self._now())
        if out is not None:
            self._publish(out, self.get_clock().now().to_msg())
            if self._watchdog.timer_period_ns != self._hold_ns:
                self._watchdog.timer_period_ns = self._hold_ns
        elif self._watchdog.timer_period_ns == self._quiet_ns:
            self._watchdog.timer_period_ns = self._hold_ns  # fired early (clock jitter): check again soon
        self._log_new_reasons()

    def _on_estop(self, msg: Bool) -> None:
        was = self.gate.estop_latched
        self.gate.set_estop(msg.data, self._now())
        if self.gate.estop_latched and not was:
            self.get_logger().error("E-STOP latched: holding position until /drex/reset_estop")
            self._on_tick()
            self._publish_diagnostics()

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.gate.reset_estop()
        (self.get_logger().warning if response.success else self.get_logger().error)(f"reset_estop: {response.message}")
        self._publish_diagnostics()
        return response

    def hold(self, reason: str) -> None:
        """Hold the measured position now (used by bringup before shutting the stack down)."""
        self.gate.force_hold(reason)
        self.get_logger().warning(f"holding: {reason}")
        self._on_tick()

    # ---- output adapters ----------------------------------------------------------------
    def _publish(self, out: SafetyOutput, stamp) -> None:
        if self._kind == "joint_state":
            msg = make_joint_state(stamp, self.names, out.positions, effort=out.efforts)
        elif self._kind == "float64_array":
            msg = Float64MultiArray(data=out.positions.tolist())
        else:
            msg = JointTrajectory(joint_names=list(self.names))
            msg.header.stamp = stamp
            sec = int(self._time_from_start)
            point = JointTrajectoryPoint(positions=out.positions.tolist(), effort=out.efforts.tolist(),
                                         time_from_start=Duration(sec=sec, nanosec=int((self._time_from_start - sec)
                                                                                        * 1e9)))
            msg.points = [point]
        self._pub.publish(msg)
        self._published[out.mode] += 1

    # ---- reporting ----------------------------------------------------------------------
    def _log_new_reasons(self) -> None:
        now = time.monotonic()
        for reason, count in self.gate.counters.items():
            if count != self._reported[reason] and now - self._last_log.get(reason, -1e9) > LOG_PERIOD_S:
                self.get_logger().warning(f"{reason}: {count} in total")
                self._reported[reason], self._last_log[reason] = count, now

    def _publish_diagnostics(self) -> None:
        t = self._now()
        if not self.gate.state_fresh(t):
            level, text = "error", f"joint state stale ({self.gate.state_age(t):.3f} s): publishing nothing"
        elif self.gate.estop_latched:
            level, text = "error", "e-stop latched: holding"
        elif self.gate.hold_reason:
            level, text = "warn", f"holding ({self.gate.hold_reason})"
        else:
            level, text = "ok", "commanding"
        values = {**{f"published_{k}": v for k, v in self._published.items()}, **self.gate.counters}
        self._diag.publish(level, text, values)


def main(args: list[str] | None = None) -> None:
    spin_node(SafetyNode, args)


if __name__ == "__main__":
    main()
