"""smoother_node: EMA-smooths the policy's joint commands before the safety gate.

/drex/policy/joint_command (JointState) -> /drex/smoothed/joint_command (JointState).
Positions are filtered per joint (core.smoothing.EmaSmoother); names, efforts and the header
stamp and source (frame_id) pass through. The filter restarts on a rising /drex/estop, on a gap
longer than `max_gap`, when the joint set changes and when the source changes (a probe's
stream must not be blended into the policy's); restarts are counted on /diagnostics.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from drex_ros.core.control.smoothing import EmaSmoother, SmootherConfig
from drex_ros.nodes.ros_io import Diagnostics, spin_node

PARAMETERS = {
    "alpha": 0.3,
    "time_constant": 0.0,  # s; > 0 replaces alpha with alpha = 1 - exp(-dt / time_constant)
    "max_gap": 0.2,  # s
    "input_topic": "/drex/policy/joint_command",
    "output_topic": "/drex/smoothed/joint_command",
    "estop_topic": "/drex/estop",
}


class SmootherNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("smoother_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = self.get_parameter
        config = SmootherConfig(alpha=float(p("alpha").value), time_constant=float(p("time_constant").value),
                                max_gap=float(p("max_gap").value))
        self.smoother = EmaSmoother(config)  # raises ValueError naming a bad parameter
        self._diag = Diagnostics(self)
        self._count = self._malformed = 0
        self._estop = False
        self._source: str | None = None  # header.frame_id of the commands: who is commanding
        self._pub = self.create_publisher(JointState, p("output_topic").value, 10)
        self.create_subscription(JointState, p("input_topic").value, self._on_command, 10)
        self.create_subscription(Bool, p("estop_topic").value, self._on_estop, 10)
        self.create_timer(1.0, self._publish_diagnostics)
        how = (f"time constant {config.time_constant} s" if config.time_constant > 0 else f"alpha {config.alpha}")
        self.get_logger().info(f"EMA smoother: {how}, restart after a {config.max_gap} s gap")

    def _on_estop(self, msg: Bool) -> None:
        if msg.data and not self._estop:
            self.smoother.reset("estop")
        self._estop = bool(msg.data)

    def _on_command(self, msg: JointState) -> None:
        if len(msg.position) != len(msg.name):
            self._malformed += 1  # safety would drop it too; forwarding keeps the count in one place
            self._pub.publish(msg)
            return
        if msg.header.frame_id != self._source:  # another source took the stream: no blending across
            if self._source is not None:
                self.smoother.reset("source")
            self._source = msg.header.frame_id
        now = self.get_clock().now().nanoseconds * 1e-9
        y, reason = self.smoother.update(msg.name, np.asarray(msg.position, dtype=float), now)
        if reason is not None:
            self.get_logger().info(f"filter restarted: {reason}")
        out = JointState(header=msg.header, name=msg.name, effort=msg.effort)
        out.position = y.tolist()
        self._pub.publish(out)
        self._count += 1

    def _publish_diagnostics(self) -> None:
        values = {"commands": self._count, "malformed_forwarded": self._malformed,
                  **{f"restarts_{k}": v for k, v in self.smoother.resets.items()}}
        self._diag.publish("ok", "smoothing", values)


def main(args: list[str] | None = None) -> None:
    spin_node(SmootherNode, args)


if __name__ == "__main__":
    main()
