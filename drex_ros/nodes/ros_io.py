"""Message <-> array conversions and small rclpy conveniences shared by the nodes."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState

from drex_ros.core.robot.joints import JointIndex

LATCHED_QOS = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
DIAG_LEVEL = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR,
              "stale": DiagnosticStatus.STALE}


def to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_stamp(seconds: float) -> Time:
    # Round once, on the total: rounding the fraction alone turned 8.9999999996 s into 8.0 s.
    total_ns = int(round(seconds * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def make_joint_state(stamp: Time, names: Sequence[str], position: np.ndarray,
                     velocity: np.ndarray | None = None, effort: np.ndarray | None = None) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp
    msg.name = list(names)
    msg.position = np.asarray(position, dtype=float).tolist()
    if velocity is not None:
        msg.velocity = np.asarray(velocity, dtype=float).tolist()
    if effort is not None:
        msg.effort = np.asarray(effort, dtype=float).tolist()
    return msg


def joint_state_arrays(msg: JointState, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Position/velocity/effort of `names` from a JointState (NaN where absent, unnamed or named twice).

    Returns keys position, velocity, effort, present (bool mask of names found).
    """
    m = _joint_index(tuple(names)).map(msg.name)
    out = {k: np.full(len(names), np.nan) for k in ("position", "velocity", "effort")}
    present = np.zeros(len(names), dtype=bool)
    for k, values in (("position", msg.position), ("velocity", msg.velocity), ("effort", msg.effort)):
        if len(values) == len(msg.name):
            out[k][m.dst] = np.asarray(values, dtype=float)[m.src]
            present[m.dst] = True
    out["present"] = present
    return out


@functools.lru_cache(maxsize=8)
def _joint_index(names: tuple[str, ...]) -> JointIndex:
    return JointIndex(names)


class Diagnostics:
    """Publishes one DiagnosticStatus per node on /diagnostics."""

    def __init__(self, node: Node, name: str | None = None) -> None:
        self._node = node
        self._name = name or node.get_fully_qualified_name()
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def publish(self, level: str, message: str, values: dict[str, object] | None = None) -> None:
        status = DiagnosticStatus(level=DIAG_LEVEL[level], name=self._name, message=message,
                                  hardware_id="drex")
        status.values = [KeyValue(key=str(k), value=str(v)) for k, v in (values or {}).items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._pub.publish(msg)


def spin_node(node_factory, args: list[str] | None = None, executor_factory=None,
              dispatch_pause_s: float = 0.0) -> None:
    """Entry point body for a node executable: init, spin, shut down cleanly on Ctrl-C.

    executor_factory: e.g. a MultiThreadedExecutor for a node whose service runs long;
    default rclpy's single-threaded spin. dispatch_pause_s > 0: sleep this long after each
    dispatch, for a MultiThreadedExecutor that would otherwise spin without waiting while a
    callback is in flight (an entity is ready but its exclusive group is busy).
    """
    rclpy.init(args=args)
    node = node_factory()
    try:
        if executor_factory is None:
            rclpy.spin(node)
        else:
            executor = executor_factory()
            executor.add_node(node)
            if dispatch_pause_s <= 0:
                executor.spin()
            while dispatch_pause_s > 0 and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
                time.sleep(dispatch_pause_s)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    except RuntimeError:  # RCLError, or pybind's from a take_message the invalidated context broke
        if rclpy.ok():
            raise
        # Ctrl-C invalidated the context while a callback was publishing, or while a message was
        # being taken (seen: perception_node exited 1 at Ctrl-C in a fresh-clone test run): a shutdown.
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
