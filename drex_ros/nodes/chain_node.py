"""chain_node: the fused command chain - policy, smoother and safety as stages of one pipeline.

The same three node classes, under the same names, read the same parameter files and keep their
services, diagnostics and e-stop/owner inputs; only the two inner hops change: the policy stage
calls the smoothing stage, which calls the safety stage, with arrays (PolicyNode(downstream),
SmootherNode(downstream), SafetyNode(fused)). DDS is left at the edges: /joint_states and the
object inputs in, /drex/joint_command (or the profile's driver topics) out, and the mass-ID
probe's commands, which still come in on /drex/policy/joint_command into the smoothing stage.
The intermediate topics get copies at `introspection_rate_hz` when asked.

The clamp cannot be skipped: the only publisher of what moves the robot is the safety node's,
and the smoothing stage hands on to nothing but SafetyNode.submit. Safety keeps its independence
where it matters: it runs on an executor and thread of its own, with its own /joint_states
subscription and its own watchdog timer, so a policy stage that stalls (a hung step, lost
inputs) gets a hold from a watchdog that still ticks. The gate is shared under one lock.

Priority: the chain is the control loop and needs a few percent of a core, but it needs it on
time; on two cores shared with the simulator, perception and the identifier its commands came
late (the issue's bench: 3,868 of 10,000 cycles missed under load). So chain_node raises its
priority to nice DREX_CHAIN_NICE (default -10) before any thread is made (DDS's and the
executors' inherit it); where the OS refuses (no CAP_SYS_NICE), it says so and runs as it is.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from drex_ros.core.control.safety import SafetyConfigError
from drex_ros.core.policy.setup import PolicyStartupError
from drex_ros.nodes.policy_node import PolicyNode
from drex_ros.nodes.ros_io import SHUTDOWN_HOLD_S, CallbackErrors, spin_guarded
from drex_ros.nodes.safety_node import SafetyNode
from drex_ros.nodes.smoother_node import SmootherNode

NAMES = ("safety_node", "smoother_node", "policy_node")
SAFETY_THREAD = ("safety_node",)  # nodes spun by their own executor and thread
DEFAULT_NICE = -10


def fused_chain(overrides: dict[str, list[Parameter]] | None = None) -> dict[str, Node]:
    """The three stages wired into one pipeline; `overrides`: parameter overrides per node name."""
    overrides = overrides or {}
    safety = SafetyNode(fused=True, parameter_overrides=overrides.get("safety_node", []))
    smoother = policy = None
    try:
        smoother = SmootherNode(downstream=safety.submit, parameter_overrides=overrides.get("smoother_node", []))
        policy = PolicyNode(downstream=smoother.submit, parameter_overrides=overrides.get("policy_node", []))
    except Exception:
        for node in (smoother, safety):
            if node is not None:
                node.destroy_node()
        raise
    return {"safety_node": safety, "smoother_node": smoother, "policy_node": policy}


def make_executor():
    """rclpy's EventsExecutor (a C++ event queue: the least CPU per callback), else a single-threaded one."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return rclpy.executors.SingleThreadedExecutor()
    return EventsExecutor()


class ChainExecutors:
    """Policy and smoother on one executor, safety on another, each spun by its own thread."""

    def __init__(self, nodes: dict[str, Node], on_error) -> None:
        self.pipeline, self.safety = make_executor(), make_executor()
        for name, node in nodes.items():
            (self.safety if name in SAFETY_THREAD else self.pipeline).add_node(node)
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=spin_guarded, args=(e, on_error, self._running), daemon=True,
                                          name=f"chain-{k}") for k, e in enumerate((self.pipeline, self.safety))]

    def _running(self) -> bool:
        return not self._halt.is_set() and rclpy.ok()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_sec: float = 1.0) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(timeout_sec)
        for executor in (self.pipeline, self.safety):
            executor.shutdown(timeout_sec=timeout_sec)


def raise_priority(nice: int) -> str:
    """This thread's nice value (and so that of every thread made after it); what happened, for the log."""
    if nice == 0:
        return "priority left as it is"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        return f"could not set nice {nice} ({exc}); running at nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    return f"running at nice {nice}"


def main(args: list[str] | None = None) -> None:
    """Like spin_node: a signal stops the policy stage, safety holds and sends it, then the end."""
    stop = threading.Event()
    priority = raise_priority(int(os.environ.get("DREX_CHAIN_NICE", DEFAULT_NICE)))
    rclpy.init(args=args, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    nodes: dict[str, Node] = {}
    try:
        nodes = fused_chain()
        nodes["safety_node"].get_logger().info(f"fused chain: {priority}")
        executors = ChainExecutors(nodes, CallbackErrors(nodes["safety_node"]).report)
        executors.start()
        while not stop.is_set() and rclpy.ok():
            stop.wait(0.1)
        executors.pipeline.remove_node(nodes["policy_node"])
        nodes["safety_node"].hold("shutting down")
        time.sleep(SHUTDOWN_HOLD_S)  # the threads spin on and send the hold
        executors.stop()
    except PolicyStartupError:
        sys.exit(1)  # the reason is already logged
    except SafetyConfigError as exc:  # a refused safety parameter: one clear line, as safety_node says it
        print(f"chain_node: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for node in nodes.values():
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    main()
