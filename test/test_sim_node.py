"""The sim node as its own process, spoken to over real DDS."""

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from ros_helpers import Collector, spin_until
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.node_process import NodeProcess
from drex_ros.nodes.ros_io import joint_state_arrays, make_joint_state, to_sec

ARM = JOINT_NAMES.index("panda_joint1")
FINGER = JOINT_NAMES.index("joint_1.0")


@pytest.fixture(scope="module")
def sim(ros):
    proc = NodeProcess("sim_node", {"camera_rate_hz": 10.0, "joint_state_rate_hz": 500.0})
    yield proc
    assert proc.stop() == 0, proc.output()


def _latest_positions(collector: Collector) -> np.ndarray:
    return joint_state_arrays(collector.last, JOINT_NAMES)["position"]


def _stream(node, pub, *msgs, period: float = 0.05):
    """Publish msgs every period, as a controller streams its commands. A single message sent as soon
    as the publisher sees the subscriber can still be dropped by a subscriber that has not yet
    matched the publisher in turn (volatile reliable delivery), which made these tests flaky."""
    return node.create_timer(period, lambda: [pub.publish(msg) for msg in msgs])


def test_joint_states_arrive_at_the_configured_rate(ros, sim):
    node, executor = ros
    states = Collector(node, JointState, "/joint_states", qos=1000)
    assert spin_until(executor, lambda: len(states.messages) >= 600, 30), sim.output()
    stamps = np.array([to_sec(m.header.stamp) for m in states.messages])
    # The publisher's rate from its own stamps; a busy test process may drop samples, which
    # says nothing about the driver's rate (and is bounded separately below).
    rate = 1.0 / np.median(np.diff(stamps))
    assert rate == pytest.approx(500.0, rel=0.10)
    assert len(stamps) / ((stamps[-1] - stamps[0]) * 500.0) > 0.5
    assert list(states.last.name) == list(JOINT_NAMES)
    assert len(states.last.position) == len(states.last.velocity) == len(states.last.effort) == 23


def test_camera_streams_have_declared_encodings_and_sizes(ros, sim):
    node, executor = ros
    rgb = Collector(node, Image, "/camera/color/image_raw")
    depth = Collector(node, Image, "/camera/depth/image_rect_raw")
    info = Collector(node, CameraInfo, "/camera/color/camera_info")
    gt = Collector(node, PoseStamped, "/drex/sim/object_pose_gt")
    assert spin_until(executor, lambda: rgb.messages and depth.messages and info.messages and gt.messages, 30)
    assert (rgb.last.encoding, rgb.last.width, rgb.last.height, len(rgb.last.data)) == ("rgb8", 640, 480, 640 * 480 * 3)
    assert (depth.last.encoding, len(depth.last.data)) == ("32FC1", 640 * 480 * 4)
    assert info.last.k[0] > 0 and info.last.width == 640
    assert gt.last.header.frame_id == "world" and gt.last.pose.position.z > 0


def test_joint_command_moves_the_joints(ros, sim):
    node, executor = ros
    states = Collector(node, JointState, "/joint_states")
    pub = node.create_publisher(JointState, "/drex/joint_command", 10)
    assert spin_until(executor, lambda: states.last is not None and pub.get_subscription_count() > 0, 20)
    target = _latest_positions(states)
    target[ARM] += 0.15
    target[FINGER] += 0.4
    stamp = node.get_clock().now().to_msg()
    timer = _stream(node, pub, make_joint_state(stamp, JOINT_NAMES, target, effort=robot_model().limits.effort))
    reached = spin_until(executor, lambda: np.allclose(_latest_positions(states)[[ARM, FINGER]],
                                                       target[[ARM, FINGER]], atol=0.02), 20)
    node.destroy_timer(timer)
    assert reached, _latest_positions(states)[[ARM, FINGER]] - target[[ARM, FINGER]]


def test_array_command_is_accepted_too(ros, sim):
    node, executor = ros
    states = Collector(node, JointState, "/joint_states")
    pub = node.create_publisher(Float64MultiArray, "/forward_position_controller/commands", 10)
    assert spin_until(executor, lambda: states.last is not None and pub.get_subscription_count() > 0, 20)
    target = _latest_positions(states)
    target[ARM] -= 0.1
    timer = _stream(node, pub, Float64MultiArray(data=target.tolist()))
    reached = spin_until(executor, lambda: abs(_latest_positions(states)[ARM] - target[ARM]) < 0.02, 20)
    node.destroy_timer(timer)
    assert reached


def test_bad_commands_are_rejected_and_the_node_stays_up(ros, sim):
    node, executor = ros
    states = Collector(node, JointState, "/joint_states")
    diags = Collector(node, DiagnosticArray, "/diagnostics")
    pub = node.create_publisher(JointState, "/drex/joint_command", 10)
    settled = lambda: states.last is not None and abs(states.last.velocity[ARM]) < 1e-3  # noqa: E731
    assert spin_until(executor, lambda: settled() and pub.get_subscription_count() > 0, 20)
    before = _latest_positions(states)
    stamp = node.get_clock().now().to_msg()
    bad = [
        make_joint_state(stamp, ["panda_joint1"], [float("nan")]),
        make_joint_state(stamp, ["panda_joint1", "panda_joint2"], [0.1]),
        make_joint_state(stamp, ["not_a_joint"], [0.0]),
        make_joint_state(stamp, ["panda_joint1"], [50.0]),
        make_joint_state(stamp, ["panda_joint1"], [float("inf")]),
    ]
    timer = _stream(node, pub, *bad)

    def warned() -> bool:
        return any(s.level == DiagnosticStatus.WARN and "rejected" in s.message and "sim_node" in s.name
                   for m in diags.messages for s in m.status)

    assert spin_until(executor, warned, 10), sim.output()
    node.destroy_timer(timer)
    count = len(states.messages)
    assert spin_until(executor, lambda: len(states.messages) > count + 100, 10)
    assert sim.alive()
    assert abs(_latest_positions(states)[ARM] - before[ARM]) < 0.01
    assert "dropped joints" in sim.output()


def test_joints_hold_their_last_target_when_commands_stop(ros, sim):
    node, executor = ros
    states = Collector(node, JointState, "/joint_states")
    assert spin_until(executor, lambda: len(states.messages) > 10, 10)
    first = _latest_positions(states)
    n = len(states.messages)
    assert spin_until(executor, lambda: len(states.messages) > n + 250, 10)
    np.testing.assert_allclose(_latest_positions(states), first, atol=5e-3)


def test_a_second_clock_in_the_domain_is_reported_as_an_error(ros, sim):
    from rosgraph_msgs.msg import Clock

    node, executor = ros
    diags = Collector(node, DiagnosticArray, "/diagnostics")

    def sim_levels() -> list[int]:
        return [s.level for m in diags.messages for s in m.status if "sim_node" in s.name]

    other = node.create_publisher(Clock, "/clock", 10)  # as a second simulator would
    crosstalk = lambda: DiagnosticStatus.ERROR in sim_levels()  # noqa: E731
    assert spin_until(executor, crosstalk, 15), sim.output()
    assert "other /clock publisher" in sim.output()
    node.destroy_publisher(other)
    diags.messages.clear()
    assert spin_until(executor, lambda: len(sim_levels()) >= 3, 15)
    assert DiagnosticStatus.ERROR not in sim_levels()[-1:], "the error clears once the other clock is gone"


def test_reset_rebuilds_the_world_from_parameters(ros):
    node, executor = ros
    proc = NodeProcess("sim_node", {"publish_camera": False, "object_shape": "cylinder",
                                    "object_size": [0.03, 0.1], "object_position": [0.5, 0.1]},
                       remaps={"__node": "sim_reset_test", "/drex/sim/object_pose_gt": "/reset_test/gt"})
    try:
        gt = Collector(node, PoseStamped, "/reset_test/gt")
        client = node.create_client(Trigger, "/sim_reset_test/reset")
        assert spin_until(executor, lambda: client.service_is_ready() and gt.last is not None, 30), proc.output()
        assert gt.last.pose.position.z == pytest.approx(0.05, abs=3e-3)
        future = client.call_async(Trigger.Request())
        assert spin_until(executor, future.done, 30)
        assert future.result().success
        # the reset restarts sim time at zero
        assert spin_until(executor, lambda: to_sec(gt.last.header.stamp) < 0.5, 10)
    finally:
        assert proc.stop() == 0


def test_a_reality_file_reaches_the_simulated_drivers(ros, tmp_path):
    """The reality layer through the node's parameters: a +0.3 N*m offset on joint 2 at rest."""
    from drex_ros.core.sim.reality import Reality

    path = Reality(effort_offset=(0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0)).save(tmp_path / "reality.yaml")
    node, executor = ros
    proc = NodeProcess("sim_node", {"publish_camera": False, "reality_file": str(path)},
                       remaps={"__node": "sim_reality_test", "/joint_states": "/reality_test/joint_states",
                               "/clock": "/reality_test/clock"})
    try:
        states = Collector(node, JointState, "/reality_test/joint_states", qos=100)
        assert spin_until(executor, lambda: len(states.messages) >= 50, 30), proc.output()
        effort = joint_state_arrays(states.last, JOINT_NAMES)["effort"]
        assert effort[JOINT_NAMES.index("panda_joint2")] == pytest.approx(0.3, abs=0.02)
        assert abs(effort[JOINT_NAMES.index("panda_joint3")]) < 0.02
    finally:
        assert proc.stop() == 0


def test_real_time_factor_auto_runs_and_a_factor_that_is_neither_refuses_to_start(ros):
    node, executor = ros
    remaps = {"__node": "sim_pace_test", "/joint_states": "/pace_test/joint_states", "/clock": "/pace_test/clock"}
    auto = NodeProcess("sim_node", {"publish_camera": False, "real_time_factor": "auto"}, remaps=remaps)
    try:
        states = Collector(node, JointState, "/pace_test/joint_states", qos=100)
        assert spin_until(executor, lambda: len(states.messages) >= 50, 30), auto.output()
        assert "real_time_factor auto" in auto.output()
    finally:
        assert auto.stop() == 0, auto.output()
    bad = NodeProcess("sim_node", {"publish_camera": False, "real_time_factor": "fast"}, remaps=remaps)
    try:
        assert spin_until(executor, lambda: not bad.alive(), 60), bad.output()
        assert "real_time_factor must be a number or 'auto', got 'fast'" in bad.output()
    finally:
        bad.stop()
