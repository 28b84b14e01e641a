"""Message <-> array conversions and small rclpy conveniences shared by the nodes."""

from __future__ import annotations

import functools
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence

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
# /joint_states for nodes that act on the latest state (policy, safety, task): best effort. A
# reliable reader delivers in order, so one sample lost on a busy host holds back every newer
# one until the writer re-sends it; with sim_node keeping 1 s of samples for the recorder, the
# fused chain saw its states 0.10-0.14 s old under the bench's CPU hog and stopped commanding.
# Best effort skips the loss instead. The mass-ID recorder, which wants every sample, stays reliable.
LATEST_STATE_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
# names, positions, efforts, source, stamp: how one stage of the fused command chain hands a
# command to the next (SmootherNode.submit, SafetyNode.submit)
Downstream = Callable[[Sequence[str], np.ndarray, Sequence[float], str, Time], None]
DIAG_LEVEL = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR,
              "stale": DiagnosticStatus.STALE}


def to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_stamp(seconds: float) -> Time:
    # Round once, on the total: rounding the fraction alone turned 8.9999999996 s into 8.0 s.
    total_ns = int(round(seconds * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def make_joint_state(stamp: Time, names: Sequence[str], position: np.ndarray,
                     velocity: np.ndarray | None = None, effort: np.ndarray | None = None,
                     frame_id: str = "") -> JointState:
    """A JointState; on a command, frame_id names its source (core.control.command_source)."""
    msg = JointState()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
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


class RateLimit:
    """At most `rate_hz` yeses a second on the monotonic clock: inf always, 0 (or less) never."""

    def __init__(self, rate_hz: float) -> None:
        self._interval = 0.0 if rate_hz == float("inf") else (1.0 / rate_hz if rate_hz > 0 else None)
        self._next = 0.0

    def due(self) -> bool:
        if self._interval is None:
            return False
        if self._interval == 0.0:
            return True
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self._interval
        return True


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


class CallbackErrors:
    """Exceptions that escaped a node's callbacks: logged with their traceback (once per place
    they come from, then counted), reported on /diagnostics, and survived: a node that holds the
    robot must not die of one bad message or one bug in a rarely taken branch."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._diag: Diagnostics | None = None
        self._seen: set[tuple] = set()
        self.count = 0

    def report(self, exc: BaseException) -> None:
        self.count += 1
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        key = (type(exc).__name__, frame.filename if frame else "", frame.lineno if frame else 0)
        if key not in self._seen:
            self._seen.add(key)
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
            self._node.get_logger().error(f"a callback raised; the node goes on:\n{text}")
        if self._diag is None:
            self._diag = Diagnostics(self._node, f"{self._node.get_fully_qualified_name()}/callbacks")
        self._diag.publish("error", f"a callback raised {type(exc).__name__}: {exc}", {"count": self.count})


def spin_guarded(executor, on_error, keep_going=rclpy.ok, dispatch_pause_s: float = 0.0) -> None:
    """Spin until keep_going() is false; an exception from a callback goes to on_error and the
    spinning goes on. Shutdown (Ctrl-C, the context going down) ends it quietly."""
    while keep_going():
        try:
            executor.spin_once(timeout_sec=0.1)
        except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
            return
        except Exception as exc:  # noqa: BLE001 - reported, and the node keeps holding the robot
            if not rclpy.ok():  # Ctrl-C invalidated the context mid-callback: a shutdown, not a bug
                return
            on_error(exc)
        if dispatch_pause_s > 0:
            time.sleep(dispatch_pause_s)


SHUTDOWN_HOLD_S = 0.2  # how long a node that holds the robot spins on after its hold, to send it


def spin_node(node_factory, args: list[str] | None = None, executor_factory=None,
              dispatch_pause_s: float = 0.0) -> None:
    """Entry point body for a node executable: init, spin, and a clean end on SIGINT or SIGTERM.

    executor_factory: e.g. a MultiThreadedExecutor for a node whose service runs long;
    default a single-threaded one. dispatch_pause_s > 0: sleep this long after each dispatch,
    for a MultiThreadedExecutor that would otherwise spin without waiting while a callback is
    in flight (an entity is ready but its exclusive group is busy). An exception escaping a
    callback is reported (CallbackErrors) and the node goes on.

    The signals are this function's, not rclpy's: rclpy's handler shuts the context down at
    once, after which a node can publish nothing, so safety_node could not send its last hold.
    Here a signal (one, two - a terminal's Ctrl-C reaches every process of the group - or
    SIGTERM) ends the spinning; a probe in progress is aborted (`abort`), safety holds
    (`hold`) and gets SHUTDOWN_HOLD_S to send it, then the node is destroyed; exit status 0.
    """
    stop = threading.Event()
    rclpy.init(args=args, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = node_factory()
        executor = (executor_factory or rclpy.executors.SingleThreadedExecutor)()
        executor.add_node(node)
        spin_guarded(executor, CallbackErrors(node).report, lambda: rclpy.ok() and not stop.is_set(),
                     dispatch_pause_s)
        _last_acts(node, executor, "shutting down")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _last_acts(node: Node, executor, reason: str) -> None:
    """A running probe ends, and the safety node holds (and is spun long enough to send it)."""
    if hasattr(node, "abort"):
        node.abort(reason)
    if hasattr(node, "hold") and rclpy.ok():
        node.hold(reason)
        deadline = time.monotonic() + SHUTDOWN_HOLD_S
        while time.monotonic() < deadline and rclpy.ok():
            executor.spin_once(timeout_sec=0.02)
    executor.shutdown(timeout_sec=1.0)  # callbacks in flight get a second to finish
