"""Reconstruct an object from a scan bag: mesh, collision parts, MJCF fragment, JSON summary, PNG.

The bag holds depth images (sensor_msgs/Image, 16UC1 mm or 32FC1 m), their CameraInfo, and the
depth camera's optical-frame pose in the world (geometry_msgs/PoseStamped), matched by header
stamp. The object is taken to be where the views look (the least-squares meeting point of their
optical axes), with some table around it. (`drex scan` will record such bags; until it does, the
pose topic is the camera pose from forward kinematics and the hand-eye transform.)
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

DEPTH, INFO, POSE = "/wrist_camera/depth/image_rect_raw", "/wrist_camera/depth/camera_info", "/drex/scan/camera_pose"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 MCAP folder (or its .mcap file)")
    parser.add_argument("--out", default="out/reconstruct", help="folder for the files")
    parser.add_argument("--name", default="object", help="name of the files and of the MJCF body")
    parser.add_argument("--depth-topic", default=DEPTH)
    parser.add_argument("--info-topic", default=INFO)
    parser.add_argument("--pose-topic", default=POSE)
    parser.add_argument("--half-width", type=float, default=0.13, help="m of the world kept around the object")
    parser.add_argument("--table-z", type=float, default=None, help="table height if known (else RANSAC)")


def _pose_matrix(position: np.ndarray, wxyz: np.ndarray) -> np.ndarray:
    import mujoco

    from drex_ros.core.reconstruction.frames import pose_matrix

    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, wxyz / np.linalg.norm(wxyz))
    return pose_matrix(position, rot.reshape(3, 3))


def read_frames(bag: str, depth_topic: str, info_topic: str, pose_topic: str, max_gap: float = 0.005) -> list:
    """DepthFrames from a scan bag; a depth image without a pose within `max_gap` s is skipped."""
    from drex_ros.core.bag import read_topics
    from drex_ros.core.perception.image_input import decode_depth
    from drex_ros.core.reconstruction.frames import DepthFrame

    series = read_topics(bag, [depth_topic, info_topic, pose_topic])
    info = series[info_topic].messages[-1]
    K = np.asarray(info.k, dtype=float).reshape(3, 3)
    poses = series[pose_topic]
    frames = []
    for stamp, img in zip(series[depth_topic].stamp, series[depth_topic].messages, strict=True):
        k = int(np.argmin(np.abs(poses.stamp - stamp)))
        if abs(poses.stamp[k] - stamp) > max_gap:
            continue
        depth = decode_depth(img.encoding, img.data, img.height, img.width, img.step, bool(img.is_bigendian))
        depth = np.nan_to_num(depth, nan=0.0).astype(np.float32)
        T = _pose_matrix(poses.fields["position"][k], poses.fields["orientation"][k])
        frames.append(DepthFrame(depth, K, T, source=f"{stamp:.3f}"))
    return frames


def run(args: argparse.Namespace) -> int:
    from drex_ros.core.bag import BagError
    from drex_ros.core.reconstruction.export import write_model
    from drex_ros.core.reconstruction.frames import ReconstructionError, common_target
    from drex_ros.core.reconstruction.pipeline import reconstruct

    try:
        frames = read_frames(args.bag, args.depth_topic, args.info_topic, args.pose_topic)
        centre = common_target(frames)
        half = np.array([args.half_width, args.half_width, 0.0])
        model = reconstruct(frames, centre - half - [0, 0, 0.15], centre + half + [0, 0, 0.25], args.table_z)
    except (BagError, ReconstructionError) as exc:
        print(f"drex reconstruct: {exc}", file=sys.stderr)
        return 1
    paths = write_model(model, args.out, args.name)
    summary = json.loads(paths["summary"].read_text())
    size = summary["primitive"]["size_m"]
    size_text = f" {[round(s * 1e3, 1) for s in size]} mm" if size else ""
    extents = [round(e * 1e3, 1) for e in summary["extents_m"]]
    print(f"{len(frames)} frames -> {summary['primitive']['kind']}{size_text}, extents {extents} mm, volume "
          f"{summary['volume_m3'] * 1e6:.1f} cm^3, {summary['collision_parts']} collision parts")
    for kind, path in paths.items():
        print(f"  {kind:<8} {path}")
    return 0
