"""joint_state_merger_node: the drivers' state streams -> one JointState in URDF names.

Reads each driver group's state topic of `robot_profile` (core/robot/profile.py), publishes the
merged state (core/control/state_merge.py) on the profile's state_topic with each sample of the
fastest group, and nothing while any group is stale: safety_node then has no fresh state and
commands nothing. A stale group is logged and reported on /diagnostics naming its topic. Refuses
to start on a bad joint map (exit 2, one line naming the joint).
"""

from __future__ import annotations

import sys
import time

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState

from drex_ros.core.control.state_merge import StateMerger
from drex_ros.core.robot.gravity import GravityModel
from drex_ros.core.robot.joint_map import JointMapError
from drex_ros.core.robot.model import JOINT_NAMES
from drex_ros.core.robot.profile import load_profile
from drex_ros.nodes.joint_state_cdr import JointStateReader, JointStateWriter
from drex_ros.nodes.ros_io import Diagnostics, spin_node, to_stamp

CHECK_PERIOD_S = 0.05
MERGED_HISTORY = 1000  # samples


class JointStateMergerNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("joint_state_merger_node", **kwargs)
        path = self.declare_parameter("robot_profile", "").value
        # >1 only in simulation, where the drivers are Python processes sharing a loaded host
        scale = float(self.declare_parameter("state_timeout_scale", 1.0).value)
        if not path:
            raise JointMapError("robot_profile is not set (the sim profile needs no merger)")
        profile = load_profile(path, JOINT_NAMES)
        self.merger = StateMerger(profile, len(JOINT_NAMES), GravityModel().torques, max(scale, 1.0))
        # 1 s of Franka's 1 kHz kept for re-sending: the mass-ID recorder wants every sample, and a
        # reliable writer re-sends only what it still holds (10 samples, 10 ms, lost states).
        self._pub = self.create_publisher(JointState, profile.state_topic, MERGED_HISTORY)
        # Raw bytes in and out (nodes/joint_state_cdr.py): Franka's states come at 1 kHz, and
        # JointStates as Python objects both ways cost this node most of its time per sample.
        self._writer = JointStateWriter(JOINT_NAMES)
        self._readers: dict[str, JointStateReader] = {}
        for topic in sorted({g.state_topic for g in profile.groups.values()}):
            self._readers[topic] = JointStateReader()
            self.create_subscription(JointState, topic, lambda m, t=topic: self._on_state(t, m), MERGED_HISTORY,
                                     raw=True)  # as deep as the writer: a late reader loses nothing
        self._diag = Diagnostics(self)
        self._stale: list[str] = []
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(CHECK_PERIOD_S, self._check, clock=steady)
        self.create_timer(1.0, self._report, clock=steady)
        self.get_logger().info(f"merging {', '.join(f'{g}: {s.state_topic}' for g, s in profile.groups.items())} "
                               f"-> {profile.state_topic}")

    def _now(self) -> float:
        """Freshness by arrival (the drivers' clocks are not ours), in the robot's seconds: wall time,
        or sim time under use_sim_time, where a sim slower than real time is not silence."""
        if self.get_parameter("use_sim_time").value:
            return self.get_clock().now().nanoseconds * 1e-9
        return time.monotonic()

    def _on_state(self, topic: str, data: bytes) -> None:
        now = self._now()
        msg = self._readers[topic].decode(data)
        updated = self.merger.on_message(topic, msg.name, msg.position, msg.velocity, msg.effort,
                                         msg.stamp_seconds, now)
        if self.merger.primary in updated:
            merged = self.merger.merged(now)
            if merged is not None:
                stamp = to_stamp(merged.stamp)
                self._pub.publish(self._writer.encode(stamp.sec, stamp.nanosec, merged.position, merged.effort,
                                                      merged.velocity))

    def _check(self) -> None:
        stale = self.merger.stale(self._now())
        if stale and stale != self._stale:
            self.get_logger().error(f"{'; '.join(stale)}: no merged joint state, the robot stops")
        elif self._stale and not stale:
            self.get_logger().info("all driver states fresh again")
        self._stale = stale

    def _report(self) -> None:
        text = "; ".join(self._stale) + ": robot stopped" if self._stale else "merging"
        self._diag.publish("error" if self._stale else "ok", text, dict(self.merger.ignored))


def main(args: list[str] | None = None) -> None:
    try:
        spin_node(JointStateMergerNode, args)
    except JointMapError as exc:
        print(f"joint_state_merger_node: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
