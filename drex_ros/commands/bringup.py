"""Run the drex nodes in one process (rclpy executors, commands/bringup_executors.py) with the
launch file's parameter files.

The same nodes and config/*.yaml files as `ros2 launch drex bringup.launch.py`, for
machines without the ROS 2 CLI. Ctrl-C stops the policy first and lets the safety node
hold the measured position before anything else shuts down. `--chain fused` (the default, as
in the launch file) wires policy, smoother and safety into one pipeline (nodes/chain_node.py)
with the safety node on an executor thread of its own; `--chain separate` keeps three nodes
talking over DDS, for debugging.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import signal
import threading
import time
from pathlib import Path

from drex_ros.core.paths import config_dir as shipped_config_dir

os.environ.setdefault("MUJOCO_GL", "osmesa")

# node name -> parameter file, in start order (the launch file's table)
STACK = {"safety_node": "safety.yaml", "smoother_node": "smoother.yaml", "policy_node": "policy.yaml",
         "perception_node": "perception.yaml", "mass_id_node": "mass_id.yaml", "task_node": "task.yaml"}
SIM = {"sim_node": "sim.yaml"}
HOLD_SECONDS = 0.5
CALLBACK_WAIT_S = 3.0  # how long shutdown waits for callbacks still running


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", action=argparse.BooleanOptionalAction, default=True,
                        help="also run sim_node, the MuJoCo hardware mirror (default: yes)")
    parser.add_argument("--robot", default="sim",
                        help="hardware profile in <config-dir>/robots/ (sim, fr3_allegro, panda_allegro_legacy)")
    parser.add_argument("--config-dir", type=Path, default=None, help="folder with the <node>.yaml files")
    parser.add_argument("--params-file", action="append", default=[], type=Path,
                        help="extra ROS 2 parameter file(s), applied after config-dir's (repeatable)")
    parser.add_argument("--use-sim-time", action=argparse.BooleanOptionalAction, default=None,
                        help="default: follows --sim")
    parser.add_argument("--policy-model", default="", help="ONNX grasp policy to load instead of policy.yaml's")
    parser.add_argument("--record", type=Path, default=None, help="also record the stack's topics to this MCAP bag")
    parser.add_argument("--start-task", action="store_true", help="start a grasping task once everything is up")
    parser.add_argument("--chain", choices=("fused", "separate"), default="fused",
                        help="policy -> smoother -> safety as one pipeline (fused: direct calls, DDS only at "
                             "the edges) or as three nodes over DDS (separate, for debugging)")
    parser.add_argument("--executor", choices=("events", "multi-threaded"), default="events",
                        help="rclpy EventsExecutor (+ a MultiThreadedExecutor for mass_id_node), or one "
                             "MultiThreadedExecutor for all nodes (see commands/bringup_executors.py)")


def node_class(module_name: str):
    """The rclpy Node subclass a node module defines."""
    from rclpy.node import Node

    module = importlib.import_module(f"drex_ros.nodes.{module_name}")
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Node) and c is not Node and c.__module__ == module.__name__]
    if len(classes) != 1:
        raise RuntimeError(f"drex_ros.nodes.{module_name} should define one Node class, found {classes}")
    return classes[0]


def ros_arguments(config_dir: Path, files: dict[str, str], extra: list[Path], use_sim_time: bool,
                  policy_model: str) -> list[str]:
    args = ["--ros-args"]
    for name in files.values():
        path = config_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"parameter file {path} not found")
        args += ["--params-file", str(path)]
    for path in extra:
        if not path.is_file():
            raise FileNotFoundError(f"parameter file {path} not found")
        args += ["--params-file", str(path)]
    if policy_model:
        args += ["--params-file", _policy_override(policy_model)]
    args += ["-p", f"use_sim_time:={'true' if use_sim_time else 'false'}"]
    if use_sim_time:
        # safety_node's command watchdog counts the robot's seconds: a sim slower than real time is not silence.
        args += ["-p", "watchdog_clock:=ros"]
    return args


def _policy_override(model_path: str) -> str:
    """A parameter file that points policy_node at another model (applied after policy.yaml)."""
    import tempfile

    import yaml

    if not Path(model_path).is_file():
        raise FileNotFoundError(f"policy model {model_path} not found")
    handle = tempfile.NamedTemporaryFile("w", suffix="-policy.yaml", delete=False)
    yaml.safe_dump({"policy_node": {"ros__parameters": {"model_path": str(Path(model_path).resolve())}}}, handle)
    handle.close()
    return handle.name


def start_nodes(names: list[str], chain: str = "separate") -> dict[str, object]:
    """The nodes in start order; with chain "fused" the chain's three come wired together
    (nodes/chain_node.py) where safety_node stands in the order."""
    from drex_ros.nodes.chain_node import NAMES, fused_chain

    nodes: dict[str, object] = {}
    for name in names:
        if chain == "fused" and name in NAMES:
            if name == "safety_node":
                nodes.update(fused_chain())
            continue
        nodes[name] = node_class(name)()
    return nodes


def shutdown_nodes(nodes: dict[str, object], executor) -> None:
    """Policy side off first, the safety node holds the measured position, then everything stops.

    The bag is closed right after the hold, before anything that could hang: once, on a loaded
    host, the teardown did not finish within the demo's 10 s and the bag was left without its
    metadata. The executor is stopped before any node is destroyed: a callback still running in
    a worker thread (the sim rendering a frame) must not find its node torn down under it. A
    probe in progress is aborted; an identification still computing is not waited for. A
    failing step never skips the rest.
    """
    for name in ("task_node", "policy_node", "mass_id_node"):
        node = nodes.get(name)
        if node is not None:
            _quietly(executor.remove_node, node)
            if hasattr(node, "abort"):
                _quietly(node.abort, "bringup shutting down")
    safety = nodes.get("safety_node")
    if safety is not None and hasattr(safety, "hold"):
        _quietly(safety.hold, "bringup shutting down")
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        _quietly(executor.spin_once, timeout_sec=0.02)
    recorder = nodes.get("recorder")
    if recorder is not None:
        _quietly(executor.remove_node, recorder)
        _quietly(recorder.close)
    print("drex bringup: stopping the executor", flush=True)
    _quietly(executor.shutdown, timeout_sec=CALLBACK_WAIT_S)
    for name, node in nodes.items():
        print(f"drex bringup: destroying {name}", flush=True)
        _quietly(node.destroy_node)


def _quietly(call, *args, **kwargs) -> None:
    """Run one shutdown step; report (not raise) what a node torn down mid-callback throws."""
    try:
        call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 (any failure here must not skip the remaining steps)
        print(f"drex bringup: during shutdown, {type(exc).__name__}: {exc}", flush=True)


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from drex_ros.commands.bringup_executors import BringupExecutors
    from drex_ros.commands.robot_profile import profile_arguments
    from drex_ros.core.robot.joint_map import JointMapError

    config_dir = args.config_dir or shipped_config_dir()
    files = {**STACK, **(SIM if args.sim else {})}
    use_sim_time = args.sim if args.use_sim_time is None else args.use_sim_time
    try:
        profile = profile_arguments(args.robot, args.sim, config_dir)
        ros_args = ros_arguments(config_dir, files, profile.files + args.params_file, use_sim_time,
                                 args.policy_model) + profile.ros_args
    except (FileNotFoundError, JointMapError) as exc:
        print(f"drex bringup: {exc}")
        return 2
    if args.record and args.record.exists():
        print(f"drex bringup: {args.record} already exists; choose a new bag name")
        return 2
    # rclpy's own SIGINT handler would invalidate the context before the safety node could hold:
    # Ctrl-C sets a flag instead, and the orderly shutdown below runs first. A flag, not
    # KeyboardInterrupt: that can land in executor internals that swallow it (seen: a loaded
    # one-process stack ignored Ctrl-C for 30 s), while a handler always runs.
    # One process: a policy step's wall time is mostly the other nodes' share of the GIL, so its
    # deadline counts the step's own CPU time (the safety watchdog still guards late commands).
    rclpy.init(args=ros_args + ["-p", "deadline_clock:=thread_cpu"]
               + getattr(args, "ros_args", [])[1:],  # user's --ros-args come last and win
               signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: stop.set())
    order = (list(SIM) if args.sim else []) + profile.nodes + list(STACK)
    try:
        nodes = start_nodes(order, args.chain)
    except JointMapError as exc:  # a node refusing the profile's joint map: one line naming the joint
        print(f"drex bringup: {exc}")
        rclpy.shutdown()
        return 2
    if args.record:
        from rclpy.parameter import Parameter

        from drex_ros.nodes.recorder_node import RecorderNode

        nodes["recorder"] = RecorderNode(parameter_overrides=[Parameter("path", value=str(args.record))])
    from drex_ros.nodes.chain_node import SAFETY_THREAD

    executor = BringupExecutors(nodes, args.executor, own_thread=SAFETY_THREAD if args.chain == "fused" else ())
    executor.start()
    print(f"drex bringup: {', '.join(nodes)} running (robot={args.robot}, sim={args.sim}, use_sim_time={use_sim_time}, "
          f"{executor.kind}, {args.chain} chain); Ctrl-C stops", flush=True)
    if args.start_task:
        _start_task_when_ready(nodes)
    try:
        while not stop.is_set() and rclpy.ok():
            stop.wait(0.1)
        errors = f"; {executor.errors} callback errors were reported and survived" if executor.errors else ""
        print(f"\ndrex bringup: shutting down on request (safety holds position first){errors}", flush=True)
    finally:
        shutdown_nodes(nodes, executor)
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def _start_task_when_ready(nodes: dict[str, object]) -> None:
    from std_srvs.srv import Trigger

    client = nodes["task_node"].create_client(Trigger, "/drex/start_task")
    deadline = time.monotonic() + 30
    while not client.service_is_ready() and time.monotonic() < deadline:
        time.sleep(0.05)  # the executor threads spin
    client.call_async(Trigger.Request())
