"""smoother_node: EMA-smooths the policy's joint commands before the safety gate.

/drex/policy/joint_command (JointState) -> /drex/smoothed/joint_command (JointState).
Positions are filtered per joint (core.control.smoothing.CommandSmoother); names, efforts and
the header stamp and source (frame_id) pass through. The filter restarts on a rising
/drex/estop, on a gap longer than `max_gap`, when the joint set changes and when the source
changes (a probe's stream must not be blended into the policy's); restarts are counted on
/diagnostics.

Fused (nodes/chain_node.py, `downstream` given): the policy stage calls `submit` directly and
the smoothed command goes straight to the safety stage; the input topic still carries the
mass-ID probe's commands (a policy-sourced message there is this chain's own introspection copy
and is ignored), and the output topic gets a copy at `introspection_rate_hz` (0: none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from drex_ros.core.control.command_source import POLICY
from drex_ros.core.control.smoothing import CommandSmoother, SmootherConfig
from drex_ros.nodes.ros_io import Diagnostics, Downstream, RateLimit, make_joint_state, spin_node

PARAMETERS = {
    "alpha": 0.3,
    "time_constant": 0.0,  # s; > 0 replaces alpha with alpha = 1 - exp(-dt / time_constant)
    "max_gap": 0.2,  # s
    "input_topic": "/drex/policy/joint_command",
    "output_topic": "/drex/smoothed/joint_command",
    "estop_topic": "/drex/estop",
    "introspection_rate_hz": 0.0,  # fused chain only: copies of the smoothed stream on output_topic
}


class SmootherNode(Node):
    def __init__(self, *, downstream: Downstream | None = None, **kwargs) -> None:
        super().__init__("smoother_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = self.get_parameter
        config = SmootherConfig(alpha=float(p("alpha").value), time_constant=float(p("time_constant").value),
                                max_gap=float(p("max_gap").value))
        self.stage = CommandSmoother(config)  # raises ValueError naming a bad parameter
        self._diag = Diagnostics(self)
        self._count = self._malformed = self._own_echo = 0
        self._downstream = downstream
        self._pub = self.create_publisher(JointState, p("output_topic").value, 10)
        self._introspect = RateLimit(float(p("introspection_rate_hz").value) if downstream else float("inf"))
        self.create_subscription(JointState, p("input_topic").value, self._on_command, 10)
        self.create_subscription(Bool, p("estop_topic").value, self._on_estop, 10)
        self.create_timer(1.0, self._publish_diagnostics)
        how = (f"time constant {config.time_constant} s" if config.time_constant > 0 else f"alpha {config.alpha}")
        self.get_logger().info(f"EMA smoother: {how}, restart after a {config.max_gap} s gap"
                               + (", fused into the command chain" if downstream else ""))

    def _on_estop(self, msg: Bool) -> None:
        self.stage.set_estop(msg.data)

    def _on_command(self, msg: JointState) -> None:
        if self._downstream is not None and msg.header.frame_id == POLICY:
            self._own_echo += 1  # the fused policy stage calls submit(); this is its introspection copy
            return
        if len(msg.position) != len(msg.name):
            self._malformed += 1  # safety drops it too; forwarding keeps the count in one place
            if self._downstream is not None:
                self._downstream(msg.name, msg.position, msg.effort, msg.header.frame_id, msg.header.stamp)
            else:
                self._pub.publish(msg)
            return
        self.submit(msg.name, np.asarray(msg.position, dtype=float), msg.effort, msg.header.frame_id,
                    msg.header.stamp)

    def submit(self, names: Sequence[str], positions: np.ndarray, efforts: Sequence[float], source: str,
               stamp: Time) -> None:
        """Smooth one command and hand it on (downstream stage, else the output topic)."""
        now = self.get_clock().now().nanoseconds * 1e-9
        y, reason = self.stage.update(names, positions, source, now)
        if reason is not None:
            self.get_logger().info(f"filter restarted: {reason}")
        self._count += 1
        if self._downstream is not None:
            self._downstream(names, y, efforts, source, stamp)
        if self._introspect.due():
            self._pub.publish(make_joint_state(stamp, names, y, effort=efforts, frame_id=source))

    def _publish_diagnostics(self) -> None:
        values = {"commands": self._count, "malformed_forwarded": self._malformed,
                  **{f"restarts_{k}": v for k, v in self.stage.ema.resets.items()}}
        if self._downstream is not None:
            values["fused"], values["own_introspection_ignored"] = True, self._own_echo
        self._diag.publish("ok", "smoothing", values)


def main(args: list[str] | None = None) -> None:
    spin_node(SmootherNode, args)


if __name__ == "__main__":
    main()
