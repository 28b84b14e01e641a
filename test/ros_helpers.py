"""Helpers for tests that start real rclpy nodes and talk to them over DDS."""

from __future__ import annotations

import time
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor
from rclpy.node import Node


def spin_until(executor: Executor, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin `executor` until `condition()` holds or `timeout` seconds pass; returns the condition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.02)
    return condition()


class Collector:
    """Subscribes to a topic and keeps every message with its arrival time."""

    def __init__(self, node: Node, msg_type, topic: str, qos=10) -> None:
        self.messages: list = []
        self.times: list[float] = []
        node.create_subscription(msg_type, topic, self._on_msg, qos)

    def _on_msg(self, msg) -> None:
        self.messages.append(msg)
        self.times.append(time.monotonic())

    @property
    def last(self):
        return self.messages[-1] if self.messages else None


def init_rclpy() -> None:
    if not rclpy.ok():
        rclpy.init()
