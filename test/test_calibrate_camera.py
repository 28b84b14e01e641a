"""`drex calibrate-camera`: extrinsics from a marker board, checked against the simulator's true camera."""

from __future__ import annotations

import cv2
import mujoco
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from drex_ros.cli import main as drex
from drex_ros.core.paths import config_path
from drex_ros.core.perception.calibration_board import BoardSpec, render_sim_board_view
from drex_ros.core.perception.evaluation import intrinsics_of, make_scene, render_frame, set_pose
from drex_ros.core.perception.tracker import Perception, load_object_markers

OFFSET = [0.012, -0.018, 0.01]
ROTATION_DEG = [1.0, -1.5, 0.8]


def _extrinsics(path) -> tuple[np.ndarray, np.ndarray]:
    with open(path) as f:
        p = yaml.safe_load(f)["perception_node"]["ros__parameters"]
    w, x, y, z = p["camera_quaternion_wxyz"]
    return np.array(p["camera_translation"]), Rotation.from_quat([x, y, z, w]).as_matrix()


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(a.T @ b).magnitude()))


def test_sim_calibration_finds_a_displaced_camera(tmp_path, capsys):
    out = tmp_path / "extrinsics.yaml"
    code = drex(["calibrate-camera", "--sim", "--sim-camera-offset", *map(str, OFFSET),
                 "--sim-camera-rotation-deg", *map(str, ROTATION_DEG), "--output", str(out)])
    assert code == 0
    assert "sim check" in capsys.readouterr().out
    position, rotation = _extrinsics(out)
    truth = render_sim_board_view(BoardSpec(), np.array([0.55, 0.0, 0.001]), np.eye(3), np.array(OFFSET),
                                  np.radians(ROTATION_DEG))
    assert np.linalg.norm(position - truth.true_position) < 3e-3
    assert _angle_deg(rotation, truth.true_rotation) < 0.3
    # The displacement was real: the nominal camera is centimetres and degrees away.
    with open(config_path("perception.yaml")) as f:
        nominal = np.array(yaml.safe_load(f)["perception_node"]["ros__parameters"]["camera_translation"])
    assert np.linalg.norm(nominal - truth.true_position) > 0.02


def test_image_and_camera_info_files_give_the_same_extrinsics(tmp_path):
    view = render_sim_board_view(BoardSpec(), np.array([0.55, 0.0, 0.001]), np.eye(3))
    image = tmp_path / "board.png"
    cv2.imwrite(str(image), view.rgb[:, :, ::-1])
    info = tmp_path / "camera.yaml"
    info.write_text(yaml.safe_dump({"image_width": 640, "image_height": 480,
                                    "camera_matrix": {"rows": 3, "cols": 3, "data": view.K.ravel().tolist()},
                                    "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5}}))
    out = tmp_path / "extrinsics.yaml"
    assert drex(["calibrate-camera", "--image", str(image), "--camera-info", str(info), "--output", str(out)]) == 0
    position, rotation = _extrinsics(out)
    assert np.linalg.norm(position - view.true_position) < 3e-3
    assert _angle_deg(rotation, view.true_rotation) < 0.3


def test_board_out_of_view_is_a_clear_failure(tmp_path, capsys):
    code = drex(["calibrate-camera", "--sim", "--board-position", "-3", "3", "0.001"])
    assert code == 1
    assert "board seen with 0 markers" in capsys.readouterr().err
    assert drex(["calibrate-camera", "--image", str(tmp_path / "missing.png"), "--camera-info", "x.yaml"]) == 2


def test_calibrated_extrinsics_make_perception_right_for_a_displaced_camera(tmp_path):
    out = tmp_path / "extrinsics.yaml"
    assert drex(["calibrate-camera", "--sim", "--sim-camera-offset", *map(str, OFFSET),
                 "--sim-camera-rotation-deg", *map(str, ROTATION_DEG), "--output", str(out)]) == 0
    scene = make_scene("box")
    cam_id = scene.model.camera("rgbd").id
    scene.model.cam_pos[cam_id] += OFFSET
    rv = np.radians(ROTATION_DEG)
    delta, quat = np.zeros(4), np.zeros(4)
    mujoco.mju_axisAngle2Quat(delta, rv / np.linalg.norm(rv), float(np.linalg.norm(rv)))
    mujoco.mju_mulQuat(quat, delta, scene.model.cam_quat[cam_id].copy())
    scene.model.cam_quat[cam_id] = quat
    set_pose(scene, np.array([0.57, 0.03, 0.0301]), Rotation.from_euler("z", 0.7).as_matrix())
    frame = render_frame(scene)
    markers = load_object_markers(config_path("markers.yaml"), "box_60mm")
    with open(config_path("perception.yaml")) as f:
        p = yaml.safe_load(f)["perception_node"]["ros__parameters"]
    w, x, y, z = p["camera_quaternion_wxyz"]
    nominal = Perception(markers, np.array(p["camera_translation"]), Rotation.from_quat([x, y, z, w]).as_matrix())
    calibrated = Perception(markers, *_extrinsics(out))
    errors = {}
    for name, tracker in (("nominal", nominal), ("calibrated", calibrated)):
        result = tracker.process(frame.rgb, frame.depth, intrinsics_of(frame.camera), 1.0)
        assert result.status == "tracking"
        errors[name] = np.linalg.norm(result.position - frame.position)
    assert errors["calibrated"] < 3e-3 < 1e-2 < errors["nominal"], errors
