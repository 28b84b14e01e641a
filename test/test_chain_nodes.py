"""policy_node, smoother_node and safety_node one at a time, over real DDS in this process:
start-up refusals, missing inputs, the output adapters, stale state and diagnostics."""

import math

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_helpers import Collector, spin_until
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from drex_ros.core.policy.build import build_mlp_policy
from drex_ros.core.policy.contract import ObsField, PolicyContract
from drex_ros.core.policy.setup import PolicyStartupError
from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.node_process import NodeProcess
from drex_ros.nodes.policy_node import PolicyNode
from drex_ros.nodes.ros_io import LATCHED_QOS, make_joint_state, to_sec, to_stamp
from drex_ros.nodes.safety_node import SafetyNode
from drex_ros.nodes.smoother_node import SmootherNode

LIMITS = robot_model().limits
HOME = np.clip(robot_model().home(), LIMITS.lower + 0.05, LIMITS.upper - 0.05)


def contract(position_targets=("joint_0.0",), rate=100.0, observation=None) -> PolicyContract:
    obs = observation or [ObsField("object_mass", 1), ObsField("object_position_world", 3)]
    dim = sum(f.size for f in obs)
    return PolicyContract(observation=obs, position_targets=list(position_targets), grip_effort=[],
                          obs_mean=np.zeros(dim), obs_std=np.ones(dim), action_mean=np.zeros(len(position_targets)),
                          action_std=np.ones(len(position_targets)), control_rate_hz=rate)


def write_model(path, c: PolicyContract, weight: float = 0.5, bias: float = 0.1) -> str:
    w = np.zeros((c.act_dim, c.obs_dim))
    w[:, 0] = weight
    path.write_bytes(build_mlp_policy(c, [(w, np.full(c.act_dim, bias))]))
    return str(path)


@pytest.fixture
def ros():
    rclpy.init()
    node = rclpy.create_node("chain_nodes_test")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    started = []

    def add(factory, **params):
        overrides = [Parameter(k, value=v) for k, v in params.items()]
        n = factory(parameter_overrides=overrides)
        executor.add_node(n)
        started.append(n)
        return n

    yield node, executor, add
    for n in started:
        executor.remove_node(n)
        n.destroy_node()
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()


def statuses(diags: Collector, name_part: str):
    return [s for m in diags.messages for s in m.status if name_part in s.name]


def test_policy_refuses_to_start_naming_the_difference(ros, tmp_path):
    _, _, add = ros
    bad_joint = write_model(tmp_path / "a.onnx", contract(position_targets=("joint_0.0", "pinky_1")))
    with pytest.raises(PolicyStartupError, match=r"position_targets names joints the robot does not have: \['pinky_1"):
        add(PolicyNode, model_path=bad_joint)
    slow = write_model(tmp_path / "b.onnx", contract(rate=30.0))
    with pytest.raises(PolicyStartupError, match="configured 100 Hz .* trained at 30 Hz"):
        add(PolicyNode, model_path=slow, control_rate_hz=100.0)
    with pytest.raises(PolicyStartupError, match="observation size: configured 9, model declares 4"):
        add(PolicyNode, model_path=slow, expected_obs_dim=9)
    with pytest.raises(PolicyStartupError, match="No such file"):
        add(PolicyNode, model_path=str(tmp_path / "missing.onnx"))


def test_policy_executable_exits_with_the_reason(tmp_path):
    path = write_model(tmp_path / "c.onnx", contract(position_targets=("joint_99.0",)))
    proc = NodeProcess("policy_node", {"model_path": path})
    assert proc.proc.wait(60) == 1
    assert "refusing to start" in proc.output() and "joint_99.0" in proc.output()


def test_policy_publishes_nothing_until_its_inputs_are_there(ros, tmp_path):
    node, executor, add = ros
    path = write_model(tmp_path / "d.onnx", contract(), weight=0.5, bias=0.1)
    add(PolicyNode, model_path=path, blend_steps=0, object_pose_timeout=0.5)
    commands = Collector(node, JointState, "/drex/policy/joint_command")
    diags = Collector(node, DiagnosticArray, "/diagnostics")
    states = node.create_publisher(JointState, "/joint_states", 10)
    poses = node.create_publisher(PoseStamped, "/drex/object_pose", 10)
    mass = node.create_publisher(Float64MultiArray, "/drex/object_mass", LATCHED_QOS)

    def publish_state():
        states.publish(make_joint_state(node.get_clock().now().to_msg(), JOINT_NAMES, HOME, np.zeros(23),
                                        np.zeros(23)))

    def publish_pose(frame="world"):
        msg = PoseStamped()
        msg.header.frame_id = frame.split(":")[0]
        x = math.nan if frame.endswith(":nan") else 0.5
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, 0.0, 0.03
        msg.pose.orientation.w = 1.0
        poses.publish(msg)

    client = node.create_client(SetBool, "/policy_node/enable")
    assert spin_until(executor, lambda: client.service_is_ready() and states.get_subscription_count(), 10)
    publish_state()
    executor.spin_once(timeout_sec=0.05)
    future = client.call_async(SetBool.Request(data=True))

    def pump(condition, timeout=5.0, pose_frame=None):
        def step():
            publish_state()
            if pose_frame:
                publish_pose(pose_frame)
            return condition()
        return spin_until(executor, step, timeout)

    assert pump(future.done) and future.result().success, future.result()
    assert pump(lambda: any("no object pose received" in s.message for s in statuses(diags, "policy_node")))
    assert pump(lambda: any("object pose in frame 'camera'" in s.message for s in statuses(diags, "policy_node")),
                pose_frame="camera")
    assert pump(lambda: any("ignored: non-finite" in s.message for s in statuses(diags, "policy_node")),
                pose_frame="world:nan")
    assert pump(lambda: any("no object mass identified" in s.message for s in statuses(diags, "policy_node")),
                pose_frame="world")
    assert not commands.messages  # nothing was published while an input was missing
    mass.publish(Float64MultiArray(data=[0.4, 0.01, 0.7]))
    assert pump(lambda: len(commands.messages) >= 3, pose_frame="world")
    cmd = commands.last
    assert list(cmd.name) == list(JOINT_NAMES)
    j = JOINT_NAMES.index("joint_0.0")
    assert cmd.position[j] == pytest.approx(0.5 * 0.4 + 0.1, abs=1e-6)  # the model's exact output
    np.testing.assert_allclose(np.delete(cmd.position, j), np.delete(HOME, j))  # others hold measured
    np.testing.assert_allclose(cmd.effort, LIMITS.effort)


def test_safety_adapters_publish_clamped_canonical_commands(ros):
    node, executor, add = ros
    add(SafetyNode, output_type="float64_array", output_topic="/adapter/array", command_timeout=5.0)
    add(SafetyNode, output_type="joint_trajectory", output_topic="/adapter/traj", command_timeout=5.0,
        estop_topic="/unused_estop", reset_estop_service="/unused_reset")
    arrays = Collector(node, Float64MultiArray, "/adapter/array")
    trajs = Collector(node, JointTrajectory, "/adapter/traj")
    diags = Collector(node, DiagnosticArray, "/diagnostics")
    states = node.create_publisher(JointState, "/joint_states", 10)
    commands = node.create_publisher(JointState, "/drex/smoothed/joint_command", 10)
    assert spin_until(executor, lambda: commands.get_subscription_count() >= 2, 10)
    # Reversed order, an unknown joint, a NaN and a far target: all normalized or clamped.
    names = list(reversed(JOINT_NAMES)) + ["bogus"]
    target = list(reversed((HOME + 0.01).tolist())) + [1.0]
    target[-2] = 3.0  # panda_joint1 far away -> max step
    target[0] = math.nan  # joint_15.0 -> holds measured

    def pump():
        states.publish(make_joint_state(node.get_clock().now().to_msg(), JOINT_NAMES, HOME))
        commands.publish(make_joint_state(node.get_clock().now().to_msg(), names, target))
        return bool(arrays.messages and trajs.messages)

    expected = HOME + 0.01
    expected[0] = HOME[0] + 0.15  # the far target clipped to max_step from the measured position
    expected[-1] = HOME[-1]

    def converged() -> bool:  # the output starts at the measured position and moves there within its bounds
        return pump() and np.allclose(arrays.last.data, expected, atol=1e-9) \
            and np.allclose(trajs.last.points[0].positions, expected, atol=1e-9)

    assert spin_until(executor, converged, 10), np.array(arrays.last.data) - expected
    traj = trajs.last
    assert list(traj.joint_names) == list(JOINT_NAMES) and len(traj.points) == 1
    # What ros2_controllers' JTC accepts: no effort field, stamp zero = start now.
    assert list(traj.points[0].effort) == [] and traj.header.stamp.sec == 0 and traj.header.stamp.nanosec == 0
    assert traj.points[0].time_from_start.nanosec == 20_000_000

    def counted() -> bool:
        pump()
        vals = [{kv.key: kv.value for kv in s.values} for s in statuses(diags, "safety_node")]
        return any(int(v.get("unknown_joint", 0)) > 0 and int(v.get("nonfinite_position", 0)) > 0
                   and int(v.get("max_step", 0)) > 0 for v in vals)

    assert spin_until(executor, counted, 5)


def test_safety_publishes_nothing_on_stale_state_and_holds_on_silence(ros):
    node, executor, add = ros
    add(SafetyNode, state_timeout=0.1, command_timeout=0.1)
    outputs = Collector(node, JointState, "/drex/joint_command")
    diags = Collector(node, DiagnosticArray, "/diagnostics")
    states = node.create_publisher(JointState, "/joint_states", 10)
    assert spin_until(executor, lambda: states.get_subscription_count() > 0, 10)
    # Never a state: nothing published at all.
    assert not spin_until(executor, lambda: bool(outputs.messages), 0.5)
    # Fresh states and no command: the watchdog holds the measured position.
    assert spin_until(executor, lambda: states.publish(make_joint_state(node.get_clock().now().to_msg(), JOINT_NAMES,
                                                                        HOME)) or len(outputs.messages) >= 3, 5)
    np.testing.assert_allclose(outputs.last.position, HOME)
    # States stop: output stops within the state timeout (plus scheduling slack).
    assert spin_until(executor, lambda: any("stale" in s.message for s in statuses(diags, "safety_node")), 5)
    n = len(outputs.messages)
    assert not spin_until(executor, lambda: len(outputs.messages) > n, 0.5)


def test_smoother_filters_exactly_and_restarts_on_estop(ros):
    node, executor, add = ros
    smoother = add(SmootherNode, alpha=0.25, max_gap=5.0)
    out = Collector(node, JointState, "/drex/smoothed/joint_command")
    pub = node.create_publisher(JointState, "/drex/policy/joint_command", 10)
    estop = node.create_publisher(Bool, "/drex/estop", 10)
    assert spin_until(executor, lambda: pub.get_subscription_count() and estop.get_subscription_count(), 10)
    names = ["panda_joint1", "joint_3.0"]
    for k, x in enumerate(([0.0, 1.0], [1.0, 1.0], [1.0, 0.0])):
        pub.publish(make_joint_state(node.get_clock().now().to_msg(), names, np.array(x), effort=[5.0, 0.3]))
        assert spin_until(executor, lambda k=k: len(out.messages) > k, 5)
    np.testing.assert_allclose(out.messages[1].position, [0.25, 1.0])
    np.testing.assert_allclose(out.messages[2].position, [0.25 + 0.75 * 0.25, 0.75])
    assert list(out.last.effort) == [5.0, 0.3] and list(out.last.name) == names
    estop.publish(Bool(data=True))
    assert spin_until(executor, lambda: smoother.stage.ema.resets["estop"] == 1, 5)
    pub.publish(make_joint_state(node.get_clock().now().to_msg(), names, np.array([2.0, 2.0])))
    assert spin_until(executor, lambda: len(out.messages) > 3, 5)
    np.testing.assert_allclose(out.last.position, [2.0, 2.0])  # restarted: passed through unfiltered


def test_policy_triggered_by_joint_states_keeps_the_model_rate(ros, tmp_path):
    """States at 500 Hz (sample stamps 2 ms apart) -> one step per 10 ms of stamps, phase-locked."""
    node, executor, add = ros
    c = contract(observation=[ObsField("joint_position", 1, ["panda_joint1"])])
    policy = add(PolicyNode, model_path=write_model(tmp_path / "e.onnx", c), trigger="joint_states", autostart=True,
                 blend_steps=0)
    commands = Collector(node, JointState, "/drex/policy/joint_command")
    states = node.create_publisher(JointState, "/joint_states", 100)
    assert spin_until(executor, lambda: states.get_subscription_count() > 0, 10)
    base = 50.0
    for k in range(100):
        stamp = to_stamp(base + 0.002 * k)
        states.publish(make_joint_state(stamp, JOINT_NAMES, HOME, np.zeros(23), np.zeros(23)))
        assert spin_until(executor, lambda s=stamp: policy._state_stamp == s, 5)
    assert spin_until(executor, lambda: len(commands.messages) >= 20, 5)
    stamps = np.array([to_sec(m.header.stamp) for m in commands.messages]) - base
    expected = np.concatenate([[0.0], np.arange(1, 20) * 0.01 - 0.002])
    np.testing.assert_allclose(stamps, expected, atol=1e-6)


def test_policy_phase_time_follows_the_task_plan_clock(ros, tmp_path):
    """The task holds its plan clock while the arm waits for the grip: the policy's phase holds too."""
    node, executor, add = ros
    c = contract(observation=[ObsField("phase_time", 1)])
    policy = add(PolicyNode, model_path=write_model(tmp_path / "g.onnx", c), autostart=True, blend_steps=0)
    commands = Collector(node, JointState, "/drex/policy/joint_command")
    states = node.create_publisher(JointState, "/joint_states", 10)
    plan_time = node.create_publisher(Float64, "/drex/policy/plan_time", 10)
    assert spin_until(executor, lambda: states.get_subscription_count() and plan_time.get_subscription_count(), 10)
    j = JOINT_NAMES.index("joint_0.0")

    def pump(condition) -> bool:
        def step():
            states.publish(make_joint_state(node.get_clock().now().to_msg(), JOINT_NAMES, HOME, np.zeros(23),
                                            np.zeros(23)))
            plan_time.publish(Float64(data=0.6))
            return condition()
        return spin_until(executor, step, 10)

    assert pump(lambda: policy.loop.enabled and policy.loop.following_plan_clock() and len(commands.messages) > 2)
    count = len(commands.messages)
    assert pump(lambda: len(commands.messages) >= count + 10)  # 0.1 s more on the node's clock
    for cmd in commands.messages[count:]:  # phase 0.6 s whatever the node's own clock says
        assert cmd.position[j] == pytest.approx(0.5 * 0.6 + 0.1, abs=1e-6)


def test_policy_object_size_follows_the_task_convention(ros, tmp_path):
    _, _, add = ros
    path = write_model(tmp_path / "f.onnx", contract())
    node = add(PolicyNode, model_path=path, object_shape="cylinder", object_size=[0.03, 0.1])
    np.testing.assert_allclose(node.loop.inputs.object_size, [0.06, 0.06, 0.1])  # full bounding-box extents
    with pytest.raises(PolicyStartupError, match="object_shape 'cone'"):
        add(PolicyNode, model_path=path, object_shape="cone", object_size=[0.03, 0.1])
    with pytest.raises(PolicyStartupError, match=r"object_size \[0.03, 0.1\] does not describe a box"):
        add(PolicyNode, model_path=path, object_shape="box", object_size=[0.03, 0.1])


def test_model_path_names_a_shipped_model(tmp_path):
    from pathlib import Path

    import drex_ros
    from drex_ros.core.policy.setup import resolve_model_path

    models = Path(drex_ros.__file__).resolve().parent / "models"
    assert resolve_model_path(str(tmp_path / "x.onnx")) == tmp_path / "x.onnx"  # absolute: as given
    assert resolve_model_path("no_such_model.onnx") == Path("no_such_model.onnx")  # not shipped: as given
    shipped = sorted(models.glob("*.onnx")) if models.is_dir() else []
    if shipped:
        assert resolve_model_path(shipped[0].name) == shipped[0]
