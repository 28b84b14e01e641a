"""The fused command chain (nodes/chain_node.py) over real DDS: started the way chain_node runs it
(its two executor threads), talked to as the robot driver, the operator and mass_id_node would.
Commands come out clamped, only through the safety stage; e-stop holds; the watchdog holds while
the policy's thread is stalled; the mass-ID probe's commands still come in over DDS."""

import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from ros_helpers import Collector, spin_until
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from test_chain_nodes import contract, write_model

from drex_ros.core.robot.model import JOINT_NAMES, robot_model
from drex_ros.node_process import NodeProcess
from drex_ros.nodes.chain_node import ChainExecutors, fused_chain
from drex_ros.nodes.ros_io import LATCHED_QOS, make_joint_state, to_sec, to_stamp

LIMITS = robot_model().limits
HOME = np.clip(robot_model().home(), LIMITS.lower + 0.05, LIMITS.upper - 0.05)
J = JOINT_NAMES.index("joint_0.0")
MARGIN, TIMEOUT = 0.02, 0.1


class Driver:
    """This test as the robot: /joint_states at 100 Hz (stamps < 1e5 s, so command outputs, which
    carry the state's stamp, are told apart from holds, which carry the node clock), the object
    pose and mass, and what comes out on /drex/joint_command."""

    def __init__(self, node, executor) -> None:
        self.node, self.executor = node, executor
        self.out = Collector(node, JointState, "/drex/joint_command")
        self.diags = Collector(node, DiagnosticArray, "/diagnostics")
        self.states = node.create_publisher(JointState, "/joint_states", 10)
        self.poses = node.create_publisher(PoseStamped, "/drex/object_pose", 10)
        self.mass = node.create_publisher(Float64MultiArray, "/drex/object_mass", LATCHED_QOS)
        self.estop = node.create_publisher(Bool, "/drex/estop", 10)
        self.owner = node.create_publisher(String, "/drex/command_owner", LATCHED_QOS)
        self.probe = node.create_publisher(JointState, "/drex/policy/joint_command", 10)
        self.k = 0
        self._timer = node.create_timer(0.01, self.tick)

    def tick(self) -> None:
        self.k += 1
        self.states.publish(make_joint_state(to_stamp(100.0 + 0.01 * self.k), JOINT_NAMES, HOME))
        if self.k % 5 == 0:
            pose = PoseStamped()
            pose.header.frame_id = "world"
            pose.header.stamp = self.node.get_clock().now().to_msg()
            pose.pose.position.x, pose.pose.position.z, pose.pose.orientation.w = 0.5, 0.03, 1.0
            self.poses.publish(pose)

    def spin(self, seconds: float) -> None:
        spin_until(self.executor, lambda: False, seconds)

    def call(self, srv, name: str, request):
        client = self.node.create_client(srv, name)
        assert spin_until(self.executor, client.service_is_ready, 10)
        future = client.call_async(request)
        assert spin_until(self.executor, future.done, 10)
        return future.result()

    def since(self, n: int) -> list[JointState]:
        return self.out.messages[n:]

    def diag(self, name_part: str) -> dict[str, str]:
        ours = [s for m in self.diags.messages for s in m.status if name_part in s.name]
        return {kv.key: kv.value for kv in ours[-1].values} if ours else {}


def is_hold(msg: JointState) -> bool:
    return to_sec(msg.header.stamp) > 1e5


@pytest.fixture
def chain(tmp_path):
    rclpy.init()
    node = rclpy.create_node("chain_node_test")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    model = write_model(tmp_path / "far.onnx", contract(), weight=0.5, bias=5.0)  # joint_0.0 -> 5.2 rad
    params = {"policy_node": {"model_path": model, "trigger": "joint_states", "autostart": True, "blend_steps": 0},
              "smoother_node": {"alpha": 0.5, "introspection_rate_hz": 10.0},
              "safety_node": {"command_timeout": TIMEOUT, "state_timeout": 0.1, "watchdog_rate_hz": 100.0,
                              "position_margin": MARGIN}}
    nodes = fused_chain({n: [Parameter(k, value=v) for k, v in p.items()] for n, p in params.items()})
    threads = ChainExecutors(nodes, lambda exc: pytest.fail(f"a chain callback raised {exc!r}"))
    threads.start()
    driver = Driver(node, executor)
    assert spin_until(executor, lambda: driver.states.get_subscription_count() >= 2
                      and driver.mass.get_subscription_count() >= 1, 15)
    driver.mass.publish(Float64MultiArray(data=[0.4, 0.01, 0.7]))
    yield driver, nodes
    threads.stop()
    for n in nodes.values():
        n.destroy_node()
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown()


def test_commands_come_out_clamped_and_only_through_safety(chain):
    driver, nodes = chain
    smoothed = Collector(driver.node, JointState, "/drex/smoothed/joint_command")
    policy_copies = Collector(driver.node, JointState, "/drex/policy/joint_command")
    assert spin_until(driver.executor, lambda: len(driver.out.messages) > 10, 15)
    n, t0 = len(driver.out.messages), time.monotonic()
    driver.spin(2.0)
    outputs = [m for m in driver.since(n) if not is_hold(m)]
    assert len(outputs) > 100  # ~100 Hz, one command per state
    q = np.array([m.position for m in outputs])
    assert np.all(q >= LIMITS.lower + MARGIN - 1e-9) and np.all(q <= LIMITS.upper - MARGIN + 1e-9)
    # The policy asks joint_0.0 for 5.2 rad: it gets the clamp, its upper limit minus the margin.
    assert q[-1, J] == pytest.approx(LIMITS.upper[J] - MARGIN, abs=1e-6)
    np.testing.assert_allclose(np.delete(q[-1], J), np.delete(HOME, J), atol=1e-9)
    assert driver.diag("safety_node").get("position_limit", "0") != "0"
    # Introspection: the smoothed stream at ~10 Hz as asked (it is not clamped: not a command),
    # the policy's not at all (its rate is 0).
    seconds = time.monotonic() - t0
    assert 0 < len(smoothed.messages) <= 12 * seconds + 2
    assert max(m.position[J] for m in smoothed.messages) > 1.0
    assert not policy_copies.messages
    assert nodes["smoother_node"].stage.source == "policy"


def test_estop_holds_until_reset_and_enable(chain):
    driver, _ = chain
    assert spin_until(driver.executor, lambda: len(driver.out.messages) > 10, 15)
    driver.estop.publish(Bool(data=True))
    assert spin_until(driver.executor, lambda: driver.out.last is not None and is_hold(driver.out.last), 5)
    n = len(driver.out.messages)
    driver.spin(1.0)
    after = driver.since(n)
    assert len(after) > 50 and all(is_hold(m) for m in after)  # held, at the watchdog's rate
    driver.estop.publish(Bool(data=False))
    driver.spin(0.1)
    assert driver.call(Trigger, "/drex/reset_estop", Trigger.Request()).success
    n = len(driver.out.messages)
    driver.spin(0.5)
    assert all(is_hold(m) for m in driver.since(n))  # the e-stop disabled the policy too
    assert driver.call(SetBool, "/policy_node/enable", SetBool.Request(data=True)).success
    assert spin_until(driver.executor, lambda: not is_hold(driver.out.last), 5)


def test_watchdog_holds_while_the_policy_thread_is_stalled(chain):
    driver, nodes = chain
    assert spin_until(driver.executor, lambda: len(driver.out.messages) > 10, 15)
    stalled = []

    def stall() -> None:  # runs on the pipeline thread, like a policy step that hangs
        stalled.append(time.monotonic())
        time.sleep(1.0)
        stalled.append(time.monotonic())

    timer = nodes["policy_node"].create_timer(0.05, stall)
    assert spin_until(driver.executor, lambda: len(stalled) >= 1, 5)
    nodes["policy_node"].destroy_timer(timer)  # one stall: the timer goes once it has fired
    assert spin_until(driver.executor, lambda: len(stalled) >= 2, 5)
    begin, end = stalled
    during = [t for m, t in zip(driver.out.messages, driver.out.times, strict=True) if begin < t < end]
    holds = [t for m, t in zip(driver.out.messages, driver.out.times, strict=True) if begin < t < end and is_hold(m)]
    assert len(holds) > 50, f"{len(holds)} holds of {len(during)} outputs in the 1 s stall"
    assert holds[0] - begin < TIMEOUT + 0.1  # the watchdog fired within its timeout (+ a period, slack)
    assert spin_until(driver.executor, lambda: not is_hold(driver.out.last), 5)  # the policy resumes


def test_mass_id_commands_still_come_in_over_dds(chain):
    driver, nodes = chain
    assert spin_until(driver.executor, lambda: len(driver.out.messages) > 10, 15)
    driver.owner.publish(String(data="mass_id"))
    target = HOME.copy()
    target[J] = 0.1
    for k in range(60):
        msg = make_joint_state(to_stamp(50.0 + 0.01 * k), JOINT_NAMES, target)
        msg.header.frame_id = "mass_id"
        driver.probe.publish(msg)
        driver.spin(0.01)
    probe_out = [m for m in driver.out.messages if 50.0 <= to_sec(m.header.stamp) < 51.0]
    assert len(probe_out) > 30
    assert probe_out[-1].position[J] == pytest.approx(0.1, abs=1e-3)
    assert nodes["smoother_node"].stage.ema.resets["source"] > 0  # the two streams were never blended
    assert int(driver.diag("safety_node").get("not_owner", "0")) > 0  # meanwhile the policy's stream was refused
    # A "policy" message over DDS is not the fused policy stage (its introspection copies go
    # there): ignored, so it never reaches the clamp, even with every source granted.
    driver.owner.publish(String(data="any"))
    fake = make_joint_state(to_stamp(9000.0), JOINT_NAMES, HOME)
    fake.header.frame_id = "policy"
    driver.probe.publish(fake)
    assert spin_until(driver.executor, lambda: driver.diag("smoother_node").get("own_introspection_ignored") == "1",
                      5)
    assert not [m for m in driver.out.messages if to_sec(m.header.stamp) == pytest.approx(9000.0)]


def test_a_refused_safety_parameter_stops_the_chain_in_one_line():
    proc = NodeProcess("chain_node", {"velocity_scale": 2.0})
    assert proc.proc.wait(60) == 2
    assert "chain_node: safety velocity_scale must be at most 1" in proc.output()
    assert "Traceback" not in proc.output()
