"""Camera extrinsics (world_T_optical) from one image of an ArUco board lying at a known pose.

Real camera: `drex calibrate-camera --image board.png --camera-info camera.yaml` with the
board's pose (--board-position, --board-yaw-deg) and layout (--cols ...) as printed; print
the board with --write-board. In simulation: `drex calibrate-camera --sim` renders the
scene's camera looking at the board (optionally displaced with --sim-camera-offset /
--sim-camera-rotation-deg, a miscalibrated camera) and also prints the error against the
true camera. The result is written as a perception_node parameter file (--output), to be
given after config/perception.yaml so that it overrides the nominal extrinsics.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--sim", action="store_true", help="render the board in the MuJoCo scene")
    src.add_argument("--image", help="colour image of the board (PNG/JPEG)")
    src.add_argument("--write-board", metavar="PNG", help="only write the printable board image and exit")
    parser.add_argument("--camera-info", help="camera intrinsics YAML (ROS camera_calibration format, or k/d lists)")
    parser.add_argument("--board-position", type=float, nargs=3, default=[0.55, 0.0, 0.001],
                        metavar=("X", "Y", "Z"), help="board centre (top face) in world, m")
    parser.add_argument("--board-yaw-deg", type=float, default=0.0, help="board lying flat, rotated about world z")
    parser.add_argument("--cols", type=int, default=5)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--marker-length", type=float, default=0.05, help="m")
    parser.add_argument("--separation", type=float, default=0.012, help="m")
    parser.add_argument("--sim-camera-offset", type=float, nargs=3, default=[0.0, 0.0, 0.0], metavar=("DX", "DY", "DZ"))
    parser.add_argument("--sim-camera-rotation-deg", type=float, nargs=3, default=[0.0, 0.0, 0.0],
                        metavar=("RX", "RY", "RZ"), help="rotation vector (world axes) applied to the sim camera")
    parser.add_argument("--output", default="", help="write the perception_node parameter YAML here")
    parser.add_argument("--debug-image", default="", help="write the image with detected markers and board axes")


def _load_intrinsics(path: str) -> tuple[np.ndarray, np.ndarray]:
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if "camera_matrix" in doc:
        K = np.asarray(doc["camera_matrix"]["data"], dtype=float)
        d = np.asarray((doc.get("distortion_coefficients") or {}).get("data", []), dtype=float)
    else:
        K, d = np.asarray(doc.get("k", []), dtype=float), np.asarray(doc.get("d", []), dtype=float)
    if K.size != 9 or K[0] <= 0 or K[4] <= 0:
        raise ValueError(f"{path}: no usable camera matrix (camera_matrix.data or k with 9 values)")
    return K.reshape(3, 3), d


def parameter_document(position: np.ndarray, rotation: np.ndarray) -> dict:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rotation).as_quat()
    q = np.array([w, x, y, z]) * (1 if w >= 0 else -1)
    return {"perception_node": {"ros__parameters": {
        "camera_translation": [round(float(v), 6) for v in position],
        "camera_quaternion_wxyz": [round(float(v), 8) for v in q]}}}


def run(args: argparse.Namespace) -> int:
    import cv2
    import yaml

    from drex_ros.core.perception.calibration_board import BoardSpec, render_sim_board_view, solve_extrinsics

    board = BoardSpec(args.cols, args.rows, args.marker_length, args.separation)
    if args.write_board:
        cv2.imwrite(args.write_board, board.image())
        w, h = board.outer_size
        print(f"wrote {args.write_board}: print it {w * 1000:.0f} x {h * 1000:.0f} mm "
              f"(markers {args.marker_length * 1000:.0f} mm)")
        return 0
    yaw = np.radians(args.board_yaw_deg)
    board_rot = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    board_pos = np.asarray(args.board_position, dtype=float)
    truth = None
    try:
        if args.sim:
            view = render_sim_board_view(board, board_pos, board_rot, np.asarray(args.sim_camera_offset),
                                         np.radians(args.sim_camera_rotation_deg))
            rgb, K, dist = view.rgb, view.K, np.zeros(5)
            truth = view
        else:
            if not args.camera_info:
                print("drex calibrate-camera: --image needs --camera-info", file=sys.stderr)
                return 2
            bgr = cv2.imread(args.image)
            if bgr is None:
                print(f"drex calibrate-camera: cannot read image {args.image}", file=sys.stderr)
                return 2
            rgb = bgr[:, :, ::-1]
            K, dist = _load_intrinsics(args.camera_info)
        gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        ext = solve_extrinsics(gray, K, dist, board, board_pos, board_rot)
    except ValueError as exc:
        print(f"drex calibrate-camera: {exc}", file=sys.stderr)
        return 1
    doc = parameter_document(ext.position, ext.rotation)
    print(f"board: {ext.markers} markers, reprojection RMS {ext.rms_reproj_px:.2f} px")
    print(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None).rstrip())
    if truth is not None:
        pos_err = np.linalg.norm(ext.position - truth.true_position) * 1e3
        cos = (np.trace(ext.rotation.T @ truth.true_rotation) - 1) / 2
        print(f"sim check: camera position error {pos_err:.2f} mm, rotation error "
              f"{np.degrees(np.arccos(np.clip(cos, -1, 1))):.3f} deg")
    if args.output:
        with open(args.output, "w") as f:
            f.write("# camera extrinsics from `drex calibrate-camera`; pass after config/perception.yaml\n")
            yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=None)
        print(f"wrote {args.output}")
    if args.debug_image:
        out = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
        params = cv2.aruco.DetectorParameters()
        corners, ids, _ = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(board.dictionary),
                                                  params).detectMarkers(gray)
        cv2.aruco.drawDetectedMarkers(out, corners, ids)
        cam_R_world = ext.rotation.T
        rvec = cv2.Rodrigues(cam_R_world @ board_rot)[0]
        tvec = cam_R_world @ (board_pos - ext.position)
        cv2.drawFrameAxes(out, K, dist, rvec, tvec, 0.1)
        cv2.imwrite(args.debug_image, out)
        print(f"wrote {args.debug_image}")
    return 0
