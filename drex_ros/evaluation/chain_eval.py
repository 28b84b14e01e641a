"""Grasp episodes through the real node chain: sim_node -> policy_node -> smoother_node -> safety_node -> sim_node.

For each episode a fresh set of the real nodes is started, each in its own process as
deployed (their config/ parameter files, plus overrides: the object, no camera, the model
under test, ground-truth object pose), with a small driver node in this process standing in
for the task orchestrator: it publishes the identified mass
(/drex/object_mass, latched), plans the grasp with core.grasp_plan from the ground-truth
object pose, enables the policy (policy_node ~/enable), publishes the arm reference on
/drex/policy/arm_reference and the plan clock on /drex/policy/plan_time at 50 Hz of sim
time, and watches /drex/sim/object_pose_gt and the hand efforts on /drex/joint_command.
Everything goes over DDS. The object pose the policy sees is the simulator's ground truth
(perception is evaluated by its own bench).
Fresh nodes per episode keep every clock starting at 0 with the new world.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drex_ros.core.robot.grasp_plan import GraspPlan, plan_grasp
from drex_ros.core.robot.model import ARM_JOINTS, HAND_JOINTS, JOINT_NAMES
from drex_ros.training.episode import HAND_EFFORT_LIMIT, LIFT_SUCCESS_M, ObjectSample, hold_window

REFERENCE_RATE_HZ = 50.0
NODES = {"sim_node": "sim.yaml", "smoother_node": "smoother.yaml", "safety_node": "safety.yaml",
         "policy_node": "policy.yaml"}


@dataclass
class ChainOutcome:
    success: bool
    max_lift: float
    peak_grip: float
    wall_seconds: float
    problem: str = ""
    started: bool = True  # False: the chain never came up or the policy refused to enable (not a grasp failure)


class _Driver:
    """The episode's orchestrator node: mass, plan, enable, arm reference, and the measurements."""

    def __init__(self, mass: float, friction: float) -> None:
        from geometry_msgs.msg import PoseStamped
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64, Float64MultiArray
        from std_srvs.srv import SetBool

        from drex_ros.nodes.ros_io import LATCHED_QOS

        self.node = Node("grasp_eval_driver")
        self._JointState = JointState
        self.lock = threading.Lock()
        self.q: np.ndarray | None = None
        self.stamp = 0.0
        self.pose: tuple[np.ndarray, np.ndarray] | None = None
        self.z: list[tuple[float, float]] = []
        self.peak_grip = 0.0
        self.plan: GraspPlan | None = None
        self.t0: float | None = None
        self._next_ref = 0.0
        self.mass_pub = self.node.create_publisher(Float64MultiArray, "/drex/object_mass", LATCHED_QOS)
        self.mass_pub.publish(Float64MultiArray(data=[float(mass), 0.0, float(friction)]))
        self.ref_pub = self.node.create_publisher(JointState, "/drex/policy/arm_reference", 10)
        self.plan_time_pub = self.node.create_publisher(Float64, "/drex/policy/plan_time", 10)
        self._Float64 = Float64
        self.node.create_subscription(JointState, "/joint_states", self._on_joints, 50)
        self.node.create_subscription(PoseStamped, "/drex/sim/object_pose_gt", self._on_pose, 50)
        self.node.create_subscription(JointState, "/drex/joint_command", self._on_command, 50)
        self.enable_client = self.node.create_client(SetBool, "/policy_node/enable")
        self._hand_index = [JOINT_NAMES.index(j) for j in HAND_JOINTS]

    def _on_joints(self, msg) -> None:
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        q = np.array(msg.position)
        with self.lock:
            self.q, self.stamp = q, t
            plan, t0 = self.plan, self.t0
        if plan is not None and t0 is not None and t >= self._next_ref:
            self._next_ref = t + 1.0 / REFERENCE_RATE_HZ
            self._publish_reference(plan.arm_targets(t - t0), msg.header.stamp)
            self.plan_time_pub.publish(self._Float64(data=float(t - t0)))  # as the task node does

    def _publish_reference(self, q_arm: np.ndarray, stamp) -> None:
        ref = self._JointState(name=list(ARM_JOINTS), position=[float(v) for v in q_arm])
        ref.header.stamp = stamp
        self.ref_pub.publish(ref)

    def _on_pose(self, msg) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        t = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self.lock:
            self.pose = (np.array([p.x, p.y, p.z]), np.array([o.w, o.x, o.y, o.z]))
            self.z.append((t, p.z))

    def _on_command(self, msg) -> None:
        with self.lock:
            t0, plan, now = self.t0, self.plan, self.stamp
        if t0 is None or plan is None or now - t0 < plan.phases()["close"][1]:  # grip while holding
            return
        index = {n: i for i, n in enumerate(msg.name)}
        efforts = [msg.effort[index[j]] for j in HAND_JOINTS if j in index and len(msg.effort) > index[j]]
        if efforts:
            with self.lock:
                self.peak_grip = max(self.peak_grip, max(efforts) / HAND_EFFORT_LIMIT)


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _yaml_value(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_yaml_value(x) for x in v) + "]"
    return repr(float(v))


def _start_node(name: str, config_dir: Path, overrides: dict, log: Path) -> subprocess.Popen:
    """The node's entry point in its own process: its parameter file, sim time, overrides."""
    args = [sys.executable, "-c", f"from drex_ros.nodes.{name} import main; main()", "--ros-args",
            "--params-file", str(config_dir / NODES[name]), "-p", "use_sim_time:=true"]
    for key, value in overrides.items():
        args += ["-p", f"{key}:={_yaml_value(value)}"]
    handle = open(log, "ab")  # noqa: SIM115 - closed with the process in _stop_nodes
    proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=os.environ.copy())
    proc.log_handle = handle
    return proc


def _stop_nodes(procs: list[subprocess.Popen]) -> None:
    for proc in procs:  # policy first (it is last in the list), as bringup does
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)
        proc.log_handle.close()


def run_chain_episode(obj: ObjectSample, mass_given: float, model_path: str, config_dir: Path | None = None,
                      real_time_factor: float = 1.0, log: Path = Path("chain_eval_nodes.log"),
                      policy_overrides: dict | None = None) -> ChainOutcome:
    """One episode through the real nodes (rclpy initialised in this process for the driver)."""
    from rclpy.executors import SingleThreadedExecutor
    from std_srvs.srv import SetBool

    from drex_ros.core.paths import config_dir as shipped_config_dir

    config_dir = config_dir or shipped_config_dir()
    wall0 = time.monotonic()
    started = False
    sim = {"object_shape": obj.shape, "object_size": list(obj.size), "object_mass": obj.mass,
           "object_friction": obj.friction, "object_position": list(obj.position), "object_yaw": obj.yaw,
           "publish_camera": False, "real_time_factor": real_time_factor}
    policy = {"model_path": str(Path(model_path).resolve()), "object_size": [float(v) for v in obj.extents()],
              "object_pose_topic": "/drex/sim/object_pose_gt", "autostart": False, **(policy_overrides or {})}
    procs = [_start_node("sim_node", config_dir, sim, log), _start_node("smoother_node", config_dir, {}, log),
             _start_node("safety_node", config_dir, {}, log), _start_node("policy_node", config_dir, policy, log)]
    driver = _Driver(mass_given, obj.friction)
    executor = SingleThreadedExecutor()
    executor.add_node(driver.node)
    stop = threading.Event()
    spin = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                            daemon=True)
    spin.start()
    try:
        _wait(lambda: driver.q is not None and driver.pose is not None, 60.0, "joint states and object pose")
        _wait(lambda: driver.enable_client.service_is_ready(), 60.0, "policy_node ~/enable")
        _wait(lambda: driver.node.count_subscribers("/drex/policy/arm_reference") > 0
              and driver.node.count_publishers("/drex/joint_command") > 0, 30.0, "chain connections")
        with driver.lock:
            q, (pos, quat) = driver.q.copy(), driver.pose
        z0 = float(pos[2])
        plan = plan_grasp(pos, quat, obj.shape, obj.size, q)
        # policy_node refuses to enable until its own inputs (sim-time clock, joint states, latched
        # mass) are fresh: give it 1.5 s of sim time after the first joint state. One request only:
        # policy_node (as of this commit) raises in its logger when a refused enable is followed by
        # an accepted one ("Logger severity cannot be changed between calls"), so no retry here.
        with driver.lock:
            first = driver.stamp
        _wait(lambda: driver.stamp >= first + 1.5, 30.0, "1.5 s of simulation before enabling")
        future = driver.enable_client.call_async(SetBool.Request(data=True))
        _wait(future.done, 10.0, "policy enable response")
        if not future.result().success:
            return ChainOutcome(False, 0.0, 0.0, time.monotonic() - wall0, f"enable refused: {future.result().message}",
                                started=False)
        with driver.lock:
            driver.plan, driver.t0 = plan, driver.stamp
            t0 = driver.t0
        started = True
        h0, h1 = hold_window(plan)
        t_end = t0 + h1 + 0.05
        _wait(lambda: driver.stamp >= t_end, 30.0 + 3 * (t_end - t0) / max(real_time_factor, 0.2), "episode end")
        with driver.lock:
            zs = np.array(driver.z)
            peak = driver.peak_grip
        window = zs[(zs[:, 0] >= t0 + h0) & (zs[:, 0] <= t0 + h1)]
        lift = zs[zs[:, 0] >= t0, 1] - z0
        success = len(window) > 10 and bool(np.all(window[:, 1] - z0 >= LIFT_SUCCESS_M))
        return ChainOutcome(success, float(lift.max()) if len(lift) else 0.0, peak, time.monotonic() - wall0)
    except TimeoutError as exc:  # counted as a failure only once the grasp had begun
        return ChainOutcome(False, 0.0, 0.0, time.monotonic() - wall0, str(exc), started=started)
    finally:
        _stop_nodes(procs[::-1])
        stop.set()
        spin.join(timeout=2.0)
        executor.shutdown(timeout_sec=1.0)
        driver.node.destroy_node()
