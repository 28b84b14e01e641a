"""Publishers for a profile's driver groups: each GroupCommand (core/control/output_routing.py)
as the message its driver takes, and a check that some driver listens on every topic."""

from __future__ import annotations

from builtin_interfaces.msg import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from drex_ros.core.control.output_routing import GroupCommand
from drex_ros.core.robot.profile import Profile

MESSAGE = {"joint_trajectory": JointTrajectory, "float64_array": Float64MultiArray, "joint_state": JointState}


class DriverOutputs:
    def __init__(self, node: Node, profile: Profile) -> None:
        self._node = node
        self._pubs = {g.command_topic: node.create_publisher(MESSAGE[g.command_type], g.command_topic, 10)
                      for g in profile.groups.values()}

    def deaf(self) -> list[str]:
        """Command topics no driver subscribes to (a controller not loaded, a wrong name)."""
        return [topic for topic, pub in self._pubs.items() if pub.get_subscription_count() == 0]

    def publish(self, commands: list[GroupCommand]) -> None:
        for c in commands:
            self._pubs[c.topic].publish(to_message(c, self._node.get_clock().now().to_msg()))


def to_message(c: GroupCommand, stamp):
    if c.kind == "float64_array":
        return Float64MultiArray(data=c.positions.tolist())
    if c.kind == "joint_state":  # positions only: an effort field would switch the legacy node to torque
        msg = JointState(name=list(c.names), position=c.positions.tolist())
        msg.header.stamp = stamp
        return msg
    return trajectory(c.names, c.positions, c.time_from_start, c.velocities)


def trajectory(names, positions, seconds: float, velocities=None) -> JointTrajectory:
    """One point `seconds` ahead, as ros2_controllers' JTC takes it: no effort field, header
    stamp 0 = start now (joint_trajectory_controller_parameters.yaml)."""
    point = JointTrajectoryPoint(positions=list(map(float, positions)),
                                 time_from_start=Duration(sec=int(seconds), nanosec=int(round((seconds % 1) * 1e9))))
    if velocities is not None:
        point.velocities = list(map(float, velocities))
    return JointTrajectory(joint_names=list(names), points=[point])
