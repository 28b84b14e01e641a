"""recorder_node: records the stack's topics to a rosbag2 MCAP bag (core.bag, rosbags library).

The bag is readable by `ros2 bag info/play` and by `drex identify` / `drex replay`.
Messages are stored at their arrival time on the node's clock (sim time under
use_sim_time), the way `ros2 bag record --use-sim-time` does.
"""

from __future__ import annotations

import threading

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String

from drex_ros.core.bag import BagWriter
from drex_ros.nodes.ros_io import LATCHED_QOS, spin_node

# topic -> (message class, ROS type name, QoS)
STACK_TOPICS = {
    "/joint_states": (JointState, "sensor_msgs/msg/JointState", 500),  # 1 s at 500 Hz
    "/drex/joint_command": (JointState, "sensor_msgs/msg/JointState", 50),
    "/drex/policy/joint_command": (JointState, "sensor_msgs/msg/JointState", 50),
    "/drex/smoothed/joint_command": (JointState, "sensor_msgs/msg/JointState", 50),
    "/drex/policy/arm_reference": (JointState, "sensor_msgs/msg/JointState", 50),
    "/drex/policy/plan_time": (Float64, "std_msgs/msg/Float64", 50),
    "/drex/object_pose": (PoseStamped, "geometry_msgs/msg/PoseStamped", 50),
    "/drex/sim/object_pose_gt": (PoseStamped, "geometry_msgs/msg/PoseStamped", 50),
    "/drex/object_mass": (Float64MultiArray, "std_msgs/msg/Float64MultiArray", LATCHED_QOS),
    "/drex/task_state": (String, "std_msgs/msg/String", LATCHED_QOS),
    "/drex/estop": (Bool, "std_msgs/msg/Bool", 10),
    "/diagnostics": (DiagnosticArray, "diagnostic_msgs/msg/DiagnosticArray", 50),
    "/camera/color/camera_info": (CameraInfo, "sensor_msgs/msg/CameraInfo", 10),
}
IMAGE_TOPICS = {
    "/camera/color/image_raw": (Image, "sensor_msgs/msg/Image", 5),
    "/camera/depth/image_rect_raw": (Image, "sensor_msgs/msg/Image", 5),
}


class RecorderNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("recorder", **kwargs)
        self.declare_parameter("path", "drex_record.mcap")
        self.declare_parameter("images", False)
        self.declare_parameter("topics", [""])  # empty entry = the stack's default set
        self.path = self.get_parameter("path").value
        self.writer = BagWriter(self.path)
        # close() may come from another thread than the executor's (drex bringup's shutdown).
        self._lock = threading.Lock()
        wanted = dict(STACK_TOPICS)
        if self.get_parameter("images").value:
            wanted.update(IMAGE_TOPICS)
        only = [t for t in self.get_parameter("topics").value if t]
        if only:
            wanted = {t: v for t, v in {**STACK_TOPICS, **IMAGE_TOPICS}.items() if t in only}
        # Raw: the CDR bytes go into the bag as received (rosbag2 stores CDR); converting every
        # 500 Hz joint state to Python and back cost this node the samples it then lost.
        for topic, (cls, type_name, qos) in wanted.items():
            self.create_subscription(cls, topic, lambda data, t=topic, n=type_name: self._write(t, n, data), qos,
                                     raw=True)
        self.get_logger().info(f"recording {len(wanted)} topics to {self.path}")

    def _write(self, topic: str, type_name: str, data: bytes) -> None:
        with self._lock:
            if self.writer is not None:
                self.writer.write_serialized(topic, type_name, data, self.get_clock().now().nanoseconds * 1e-9)

    def close(self) -> int:
        """Finish the bag (idempotent); returns the number of messages written."""
        with self._lock:
            if self.writer is None:
                return 0
            count = self.writer.count
            self.writer.close()
            self.writer = None
        self.get_logger().info(f"wrote {count} messages to {self.path}")
        return count

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(RecorderNode, args)


if __name__ == "__main__":
    main()
