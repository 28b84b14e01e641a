"""The recorder node writes what the stack publishes into an MCAP bag that reads back."""

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_helpers import spin_until

from drex_ros.core.bag import list_topics, read_topics
from drex_ros.node_process import NodeProcess
from drex_ros.nodes.recorder_node import RecorderNode


def test_records_sim_topics_readable_by_the_bag_reader(tmp_path):
    bag = tmp_path / "run.mcap"
    rclpy.init()
    sim = NodeProcess("sim_node", {"publish_camera": False})
    recorder = RecorderNode(parameter_overrides=[Parameter("path", value=str(bag))])
    executor = SingleThreadedExecutor()
    executor.add_node(recorder)
    try:
        assert spin_until(executor, lambda: recorder.writer.count > 600, 30), sim.output()
    finally:
        executor.remove_node(recorder)
        recorder.destroy_node()
        rclpy.shutdown()
        assert sim.stop() == 0
    topics = list_topics(bag)
    assert topics["/joint_states"][0] == "sensor_msgs/msg/JointState" and topics["/joint_states"][1] > 300
    series = read_topics(bag, ["/joint_states", "/drex/sim/object_pose_gt"])
    joints = series["/joint_states"]
    assert joints.fields["position"].shape[1] == 23 and np.all(np.isfinite(joints.fields["position"]))
    d = np.diff(joints.stamp)
    assert np.all(d > 0), (np.flatnonzero(d <= 0), d[d <= 0])
    assert series["/drex/sim/object_pose_gt"].fields["position"][0, 2] > 0.0
