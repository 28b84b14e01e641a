"""Bench helper: a camera-pipeline emulator for object poses.

`CameraPoseEmulator` turns the sim's ground truth (/drex/sim/object_pose_gt, 100 Hz) into what a
tracking pipeline delivers on /drex/object_pose: 30 Hz frames, 2 mm / 1 deg noise, dropped
frames, a processing latency (published late, in sim time) and a camera clock offset (stamped
capture time + offset). Mass identification must cope with all of them.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node

from drex_ros.core.perception.evaluation import noisy_quat
from drex_ros.nodes.ros_io import to_sec, to_stamp


class CameraPoseEmulator(Node):
    def __init__(self, rate_hz: float = 30.0, position_noise: float = 0.002, rotation_noise_deg: float = 1.0,
                 drop_probability: float = 0.1, latency: float = 0.05, clock_offset: float = 0.02,
                 seed: int = 0, name: str = "camera_pose_emulator") -> None:
        super().__init__(name)
        self.rate_hz, self.position_noise = rate_hz, position_noise
        self.rotation_noise = np.deg2rad(rotation_noise_deg)
        self.drop_probability, self.latency, self.clock_offset = drop_probability, latency, clock_offset
        self._rng = np.random.default_rng(seed)
        self._next = None
        self._pending: deque = deque()
        self.published = 0
        self._pub = self.create_publisher(PoseStamped, "/drex/object_pose", 10)
        self.create_subscription(PoseStamped, "/drex/sim/object_pose_gt", self._on_gt, 50)

    def _on_gt(self, msg: PoseStamped) -> None:
        t = to_sec(msg.header.stamp)
        if self._next is None or t < self._next - 1.0:  # first message, or the sim was reset
            self._next = t
            self._pending.clear()
        if t >= self._next:
            self._next += 1.0 / self.rate_hz
            if self._rng.random() >= self.drop_probability:
                p, o = msg.pose.position, msg.pose.orientation
                pos = np.array([p.x, p.y, p.z]) + self._rng.normal(0.0, self.position_noise, 3)
                quat = noisy_quat(np.array([o.w, o.x, o.y, o.z]), self.rotation_noise, self._rng)
                out = PoseStamped()
                out.header.stamp, out.header.frame_id = to_stamp(t + self.clock_offset), "world"
                out.pose.position.x, out.pose.position.y, out.pose.position.z = map(float, pos)
                q = out.pose.orientation
                q.w, q.x, q.y, q.z = map(float, quat)
                self._pending.append((t + self.latency, out))
        while self._pending and self._pending[0][0] <= t:
            self._pub.publish(self._pending.popleft()[1])
            self.published += 1
