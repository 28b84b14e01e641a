"""Robot calibration through the running stack: task_node's /drex/calibrate_robot grants the
command stream to mass_id_node, whose excitation moves the simulated arm through smoother and
safety; the bag and robot_calibration.yaml land in its record_dir. Real nodes over DDS."""

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from ros_helpers import Collector, spin_until
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from drex_ros.core.massid.robot_calibration import RobotCalibration
from drex_ros.node_process import NodeProcess


def test_calibrate_robot_swings_the_arm_through_the_chain_and_writes_a_calibration(tmp_path):
    rclpy.init()
    node = rclpy.create_node("excite_test")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    procs = {
        "sim": NodeProcess("sim_node", {"publish_camera": False}),
        "smoother": NodeProcess("smoother_node"),
        "safety": NodeProcess("safety_node"),
        "mass_id": NodeProcess("mass_id_node", {"use_sim_time": True, "record_dir": str(tmp_path)}),
        "task": NodeProcess("task_node", {"use_sim_time": True}),
    }
    try:
        states = Collector(node, String, "/drex/task_state")
        applied = Collector(node, JointState, "/drex/joint_command", 20000)
        client = node.create_client(Trigger, "/drex/calibrate_robot")
        assert spin_until(executor, client.service_is_ready, 60), procs["task"].output()
        excite = node.create_client(Trigger, "/drex/excite_robot")  # mass_id_node's, which the task node calls
        assert spin_until(executor, excite.service_is_ready, 60), procs["mass_id"].output()
        assert spin_until(executor, lambda: node.count_publishers("/joint_states") > 0, 30)
        first = client.call_async(Trigger.Request())
        assert spin_until(executor, lambda: "calibrating" in [m.data for m in states.messages], 60), \
            (first.result() if first.done() else None, procs["task"].output())
        second = client.call_async(Trigger.Request())  # while the first runs
        assert spin_until(executor, second.done, 30)
        assert not second.result().success and "already running" in second.result().message
        assert spin_until(executor, first.done, 600), procs["mass_id"].output()[-3000:]
        res = first.result()
        assert res.success, res.message + "\n" + procs["mass_id"].output()[-3000:]
        assert [m.data for m in states.messages][-2:] == ["calibrating", "idle"]
        arm = np.array([m.position[:7] for m in applied.messages])
        assert len(arm) > 1000 and np.ptp(arm, axis=0).min() > 0.15  # every arm joint swung, through safety
        bags = sorted(tmp_path.glob("excite_*"))
        assert bags and str(bags[-1]) in res.message
        cal = RobotCalibration.load(tmp_path / "robot_calibration.yaml")
        assert cal.excited.all()
        assert np.max(np.abs(cal.coulomb)) < 0.02 and np.max(np.abs(cal.offset)) < 0.05  # the sim's arm is the model
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
        for name, proc in procs.items():
            assert proc.stop() == 0, f"{name}:\n{proc.output()[-3000:]}"
