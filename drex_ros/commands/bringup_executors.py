"""The executors of `drex bringup`: every node in one process, each executor spun by a thread.

mass_id_node gets an rclpy MultiThreadedExecutor: its /drex/identify_mass service runs for
seconds (probe, then identification) while its subscriptions keep recording the probe.
Every other node goes on one rclpy EventsExecutor (rclpy.experimental, C++ event queue).

Why not one MultiThreadedExecutor for all, as before: measured with py-spy (--gil) on an idle
one-process stack at 0.2x real time, 96% of the interpreter lock went to that executor's
own bookkeeping (it rebuilds its wait set over every entity of all eight nodes for each
callback it dispatches) and 3% to the callbacks; the process sat at 105% CPU, and under a
task the policy's 50 Hz timer missed 10-20% of its steps and a grasp failed in 2 of 5
runs. With the EventsExecutor the same idle stack used 52% CPU at the same sim speed.
Where rclpy has no EventsExecutor, or with `drex bringup --executor multi-threaded`, all
nodes share one MultiThreadedExecutor as before. `own_thread` nodes (the fused chain's safety
node) get an executor and thread of their own, so their timers tick whatever the others do.
"""

from __future__ import annotations

import threading
import time
import traceback

MULTI_THREADED = ("mass_id_node",)  # nodes whose callbacks must overlap
MT_DISPATCH_PAUSE_S = 0.002


def _events_executor():
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor()


class BringupExecutors:
    def __init__(self, nodes: dict[str, object], kind: str = "events", own_thread: tuple[str, ...] = ()) -> None:
        """kind "events" (default) or "multi-threaded" (one MultiThreadedExecutor for every node)."""
        from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

        events = _events_executor() if kind == "events" else None
        self.kind = "EventsExecutor + MultiThreadedExecutor" if events else "MultiThreadedExecutor"
        self._executor_of: dict[int, object] = {}
        self.executors: list = []
        shared = events or MultiThreadedExecutor(num_threads=4)
        for name, node in nodes.items():
            executor = shared
            if events is not None and name in MULTI_THREADED:
                executor = MultiThreadedExecutor(num_threads=4)
            elif name in own_thread:
                executor = _events_executor() or SingleThreadedExecutor()
            executor.add_node(node)
            self._executor_of[id(node)] = executor
            if executor not in self.executors:
                self.executors.append(executor)
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors = 0  # exceptions that escaped a callback (reported, survived)

    def start(self) -> None:
        for k, executor in enumerate(self.executors):
            thread = threading.Thread(target=self._spin, args=(executor,), name=f"executor-{k}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _spin(self, executor) -> None:
        from rclpy.executors import MultiThreadedExecutor

        from drex_ros.nodes.ros_io import spin_guarded

        # A MultiThreadedExecutor with a callback in flight (the identify service, for seconds)
        # loops without waiting: py-spy gave it 90% of the interpreter lock during a probe, and
        # the sim fell to 0.085x real time. A short sleep per dispatch frees the lock.
        pause = MT_DISPATCH_PAUSE_S if isinstance(executor, MultiThreadedExecutor) else 0.0
        spin_guarded(executor, self._report, lambda: not self._halt.is_set(), pause)

    def _report(self, exc: BaseException) -> None:
        """A callback raised: log it with its traceback and go on (the other nodes, safety among
        them, keep running); counted in `errors`."""
        import rclpy.logging

        self.errors += 1
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        rclpy.logging.get_logger("drex_bringup").error(f"a callback raised; the stack goes on:\n{text}")

    def remove_node(self, node) -> None:
        executor = self._executor_of.pop(id(node), None)
        if executor is not None:
            executor.remove_node(node)

    def spin_once(self, timeout_sec: float = 0.05) -> None:
        """The threads do the spinning; the caller lets them run this long."""
        time.sleep(timeout_sec)

    def shutdown(self, timeout_sec: float = 3.0) -> None:
        """Stop the threads, waiting up to timeout_sec for callbacks in flight."""
        self._halt.set()
        deadline = time.monotonic() + timeout_sec
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        from rclpy.executors import MultiThreadedExecutor

        for executor in self.executors:
            left = max(0.0, deadline - time.monotonic())
            if isinstance(executor, MultiThreadedExecutor):  # an identification still computing is not waited for
                executor.shutdown(timeout_sec=left, wait_for_threads=False)
            else:
                executor.shutdown(timeout_sec=left)
