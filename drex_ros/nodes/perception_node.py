"""perception_node: the object's pose from RGB-D, in the world frame.

Subscribes colour (rgb8/bgr8), depth (16UC1 mm / 32FC1 m, registered to colour) and the
colour CameraInfo; pairs colour and depth frames by stamp; runs core.perception.
Publishes /drex/object_pose (PoseStamped, frame `world`) only for a pose measured from
markers in that very frame and stamped with it, never a stale or predicted one;
/drex/object_pose_cov (PoseWithCovarianceStamped) carries every estimate with its
covariance, including the markerless depth fallback (roll/pitch variance 1e6 = not
observed). Tracking loss, the fallback and every rejected input are reported on
/diagnostics and in the log; bad input never stops the node.
Extrinsics (world_T_optical) are the parameters camera_translation and
camera_quaternion_wxyz (write them with `drex calibrate-camera`).
"""

from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image

from drex_ros.core.paths import config_path
from drex_ros.core.perception.depth_fallback import FallbackSettings
from drex_ros.core.perception.frame_pairing import FramePairer, extrinsics_from
from drex_ros.core.perception.image_input import ImageInputError, Intrinsics, decode_color, decode_depth
from drex_ros.core.perception.marker_pose import MarkerSettings
from drex_ros.core.perception.pose_filter import FilterSettings
from drex_ros.core.perception.tracker import (
    Perception,
    PerceptionResult,
    PerceptionSettings,
    resolve_object_markers,
)
from drex_ros.nodes.ros_io import Diagnostics, spin_node, to_sec

PARAMETERS = {
    "color_topic": "/camera/color/image_raw",
    "depth_topic": "/camera/depth/image_rect_raw",
    "camera_info_topic": "/camera/color/camera_info",
    "pose_topic": "/drex/object_pose",
    "pose_cov_topic": "/drex/object_pose_cov",
    "world_frame": "world",
    "camera_translation": [0.85, -0.32, 0.38],
    "camera_quaternion_wxyz": [0.4033639862, -0.8378938457, -0.3313430098, 0.1595092718],
    "markers_file": "",
    "object_name": "box_60mm",  # an entry of markers_file; "" = look up object_shape + object_size
    "object_shape": "",
    "object_size": [0.0],
    "max_stamp_gap": 0.02,
    "lost_after": 0.5,
    "use_depth": True,
    "corner_sigma_px": 0.5,
    "depth_sigma_m": 0.002,
    "accel_sigma": 3.0,
    "angular_accel_sigma": 30.0,
    "use_fallback": True,
    "table_z": 0.0,
    "workspace_min": [0.25, -0.4],
    "workspace_max": [1.0, 0.4],
    "max_saturation": 0.25,
    "diagnostics_period": 0.5,
    "sensor_qos": "reliable",  # or best_effort, to match the camera driver's publishers
}
STREAM_TIMEOUT_S = 1.0
STARTUP_GRACE_S = 3.0  # s a stream may trail the other's first frame before it is missed
LOG_REPEAT_S = 2.0  # one error is logged at most this often (diagnostics get every one)


class PerceptionNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("perception_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        markers_file = p["markers_file"] or str(config_path("markers.yaml"))
        markers, source = resolve_object_markers(markers_file, p["object_name"], p["object_shape"],
                                                 tuple(p["object_size"]))
        position, rotation = extrinsics_from(p["camera_translation"], p["camera_quaternion_wxyz"])
        settings = PerceptionSettings(
            markers=MarkerSettings(corner_sigma_px=p["corner_sigma_px"], depth_sigma_m=p["depth_sigma_m"],
                                   use_depth=p["use_depth"]),
            filter=FilterSettings(accel_sigma=p["accel_sigma"], angular_accel_sigma=p["angular_accel_sigma"]),
            fallback=FallbackSettings(table_z=p["table_z"], workspace_min=tuple(p["workspace_min"]),
                                      workspace_max=tuple(p["workspace_max"]), max_saturation=p["max_saturation"]),
            use_fallback=p["use_fallback"], max_stamp_gap=p["max_stamp_gap"], lost_after=p["lost_after"])
        self._perception = Perception(markers, position, rotation, settings)
        self._world_frame = p["world_frame"]
        self._max_gap = float(p["max_stamp_gap"])
        self._diag_period = float(p["diagnostics_period"])
        self._topics = {k: p[k] for k in ("color_topic", "depth_topic", "camera_info_topic")}
        self._intrinsics: Intrinsics | None = None
        self._info_seen = False
        self._first_frame: float | None = None
        self._info_error = f"no CameraInfo received on {p['camera_info_topic']}"
        self._pairer = FramePairer(self._max_gap)
        self._last_status = ""
        self._last_diag = 0.0
        self._last_log: dict[str, float] = {}
        self._counts = {"frames": 0, "poses": 0, "fallback": 0, "lost": 0, "rejected_input": 0, "dropped_busy": 0}
        self._process_ms = 0.0  # smoothed time to process one frame pair
        self._diag = Diagnostics(self)
        self._pub_pose = self.create_publisher(PoseStamped, p["pose_topic"], 10)
        self._pub_cov = self.create_publisher(PoseWithCovarianceStamped, p["pose_cov_topic"], 10)
        # Reliable by default: megabyte images sent best effort lose fragments and whole frames on a busy host.
        if p["sensor_qos"] not in ("reliable", "best_effort"):
            raise ValueError(f"sensor_qos must be reliable or best_effort, got {p['sensor_qos']!r}")
        qos = qos_profile_sensor_data if p["sensor_qos"] == "best_effort" else 5
        self.create_subscription(Image, p["color_topic"], self._on_color, qos)
        self.create_subscription(Image, p["depth_topic"], self._on_depth, qos)
        self.create_subscription(CameraInfo, p["camera_info_topic"], self._on_info, qos)
        self._extrinsics = {"camera_translation": p["camera_translation"],
                            "camera_quaternion_wxyz": p["camera_quaternion_wxyz"]}
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._arrivals = {"colour": None, "depth": None}
        self._first_arrival: dict[str, float] = {}
        self.create_timer(max(self._diag_period, 0.1), self._watch_streams)
        self.get_logger().info(f"tracking object {markers.name!r} ({len(markers.faces)} markers, {source}) from "
                               f"{self._topics['color_topic']} + {self._topics['depth_topic']}; camera at "
                               f"{np.round(position, 4).tolist()} in {self._world_frame}")

    def _on_set_parameters(self, params) -> SetParametersResult:
        """New extrinsics (e.g. from `drex calibrate-camera`) apply at once; the track restarts."""
        update = {prm.name: prm.value for prm in params if prm.name in self._extrinsics}
        if not update:
            return SetParametersResult(successful=True)
        merged = {**self._extrinsics, **update}
        try:
            position, rotation = extrinsics_from(merged["camera_translation"], merged["camera_quaternion_wxyz"])
        except ValueError as exc:
            self.get_logger().error(f"extrinsics refused: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        self._extrinsics = merged
        self._perception.set_extrinsics(position, rotation)
        self.get_logger().info(f"camera extrinsics updated: camera at {np.round(position, 4).tolist()}")
        return SetParametersResult(successful=True)

    # --- inputs ------------------------------------------------------------------------
    def _on_info(self, msg: CameraInfo) -> None:
        self._info_seen = True
        try:
            self._intrinsics = Intrinsics.from_camera_info(list(msg.k), list(msg.d), msg.width, msg.height,
                                                           msg.distortion_model)
            self._info_error = ""
        except ImageInputError as exc:
            self._intrinsics = None
            self._info_error = f"CameraInfo on {self._topics['camera_info_topic']} unusable: {exc}"
            self._report_error(self._info_error)

    def _on_color(self, msg: Image) -> None:
        self._on_frame("colour", msg)

    def _on_depth(self, msg: Image) -> None:
        self._on_frame("depth", msg)

    def _on_frame(self, kind: str, msg: Image) -> None:
        self._arrivals[kind] = time.monotonic()
        self._first_arrival.setdefault(kind, self._arrivals[kind])
        pair, dropped = self._pairer.add(kind, to_sec(msg.header.stamp), msg)
        if pair is not None:
            self._process(*pair)
        for f in dropped:
            self._counts["rejected_input"] += 1
            if f.partner_lost:
                self._counts["dropped_busy"] += 1
                self._report_busy(f)
            else:
                self._report_error(f"{f.kind} frame at {f.stamp:.3f} s has no partner within "
                                   f"{self._max_gap * 1e3:.0f} ms (nearest {f.nearest_gap * 1e3:.0f} ms apart): "
                                   "colour and depth are not in sync", "sync")

    def _report_busy(self, f) -> None:
        """A frame whose partner was dropped while this node was busy: a warning about load, not
        about the camera (at most every LOG_REPEAT_S in the log)."""
        message = (f"{f.kind} frame at {f.stamp:.3f} s dropped while this node was busy: its partner never came "
                   f"({self._process_ms:.0f} ms per frame); poses continue from newer frames")
        now = time.monotonic()
        if now - self._last_log.get("busy", -np.inf) >= LOG_REPEAT_S:
            self._last_log["busy"] = now
            self.get_logger().warning(message)
        self._diag.publish("warn", message, self._values())

    # --- processing ----------------------------------------------------------------------
    def _process(self, c_msg: Image, d_msg: Image) -> None:
        self._counts["frames"] += 1
        if self._first_frame is None:
            self._first_frame = time.monotonic()
        try:
            rgb = decode_color(c_msg.encoding, c_msg.data, c_msg.height, c_msg.width, c_msg.step)
            depth = decode_depth(d_msg.encoding, d_msg.data, d_msg.height, d_msg.width, d_msg.step,
                                 bool(d_msg.is_bigendian))
            if self._intrinsics is None:
                if not self._info_seen and time.monotonic() - self._first_frame < STREAM_TIMEOUT_S:
                    # At start-up CameraInfo may simply arrive a moment after the first images.
                    self._diag.publish("warn", f"waiting for CameraInfo on {self._topics['camera_info_topic']}",
                                       self._values())
                    return
                raise ImageInputError(self._info_error)
            started = time.perf_counter()
            result = self._perception.process(rgb, depth, self._intrinsics, to_sec(c_msg.header.stamp),
                                              to_sec(d_msg.header.stamp))
            self._process_ms += 0.2 * ((time.perf_counter() - started) * 1e3 - self._process_ms)
        except ImageInputError as exc:
            self._counts["rejected_input"] += 1
            self._report_error(f"frame rejected: {exc}", "stamps" if "apart" in str(exc) else None)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must be visible, but must not take the node down
            self._counts["rejected_input"] += 1
            self._report_error(f"perception failed on a frame: {type(exc).__name__}: {exc}")
            return
        self._publish(result, c_msg)

    def _publish(self, result: PerceptionResult, c_msg: Image) -> None:
        if result.fresh_pose:
            self._counts["poses"] += 1
            pose = PoseStamped()
            pose.header.stamp, pose.header.frame_id = c_msg.header.stamp, self._world_frame
            _fill_pose(pose.pose, result)
            self._pub_pose.publish(pose)
        if result.status in ("tracking", "fallback"):
            cov = PoseWithCovarianceStamped()
            cov.header.stamp, cov.header.frame_id = c_msg.header.stamp, self._world_frame
            _fill_pose(cov.pose.pose, result)
            cov.pose.covariance = [float(v) for v in result.covariance.ravel()]
            self._pub_cov.publish(cov)
        if result.status in ("fallback", "lost"):
            self._counts[result.status] += 1
        level = {"tracking": "ok", "outlier": "warn", "fallback": "warn", "lost": "warn"}[result.status]
        now = time.monotonic()
        if result.status != self._last_status:
            # rclpy fixes one severity per call site, hence two calls.
            if result.status == "tracking":
                self.get_logger().info(f"{result.status}: {result.message}")
            else:
                self.get_logger().warning(f"{result.status}: {result.message}")
        if result.status != self._last_status or now - self._last_diag >= self._diag_period:
            self._diag.publish(level, f"{result.status}: {result.message}", self._values(result))
            self._last_diag = now
        self._last_status = result.status

    def _watch_streams(self) -> None:
        """One stream flowing without the other never yields a frame pair: say so (after a
        start-up grace: a camera driver's, or the sim's, first colour frames may trail its depth)."""
        now = time.monotonic()
        recent = {k: t is not None and now - t < STREAM_TIMEOUT_S for k, t in self._arrivals.items()}
        if not any(recent.values()):  # a camera not started (yet), or stopped: no error of ours
            self._diag.publish("warn", f"no camera frames on {self._topics['color_topic']} or "
                                       f"{self._topics['depth_topic']} for {STREAM_TIMEOUT_S:.0f} s", self._values())
            return
        for have, missing in (("colour", "depth"), ("depth", "colour")):
            if not recent[have] or recent[missing]:  # only a stream that came has a first arrival
                continue
            starting = self._arrivals[missing] is None and now - self._first_arrival[have] < STARTUP_GRACE_S
            if not starting:
                topic = self._topics["depth_topic" if missing == "depth" else "color_topic"]
                self._report_error(f"{have} frames arrive but no {missing} frame on {topic} for "
                                   f"{STREAM_TIMEOUT_S:.0f} s: no pose can be computed")

    def _values(self, result: PerceptionResult | None = None) -> dict[str, object]:
        values: dict[str, object] = dict(self._counts)
        if result is not None:
            values.update(status=result.status, stamp=f"{result.stamp:.3f}",
                          markers=",".join(map(str, result.marker_ids)),
                          seconds_since_markers=f"{result.seconds_since_markers:.3f}")
        return values

    def _report_error(self, message: str, kind: str | None = None) -> None:
        """Log (each distinct error at most every LOG_REPEAT_S; `kind` groups messages that carry numbers)."""
        now = time.monotonic()
        key = kind or message
        if now - self._last_log.get(key, -np.inf) >= LOG_REPEAT_S:
            self._last_log[key] = now
            self.get_logger().error(message)
        self._diag.publish("error", message, self._values())
        self._last_status = "error"
        self._last_diag = now


def _fill_pose(pose, result: PerceptionResult) -> None:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in result.position)
    x, y, z, w = Rotation.from_matrix(result.rotation).as_quat()
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = float(x), float(y), float(z), \
        float(w)


def main(args: list[str] | None = None) -> None:
    spin_node(PerceptionNode, args)


if __name__ == "__main__":
    main()
