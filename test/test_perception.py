"""Perception core on images rendered by the real MuJoCo scene, against the simulator's ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from drex_ros.core.paths import config_path
from drex_ros.core.perception.evaluation import (
    evaluate_random_poses,
    hide_markers,
    intrinsics_of,
    make_scene,
    pose_error,
    render_frame,
    set_pose,
)
from drex_ros.core.perception.image_input import ImageInputError, Intrinsics, check_frame, decode_color, decode_depth
from drex_ros.core.perception.pose_filter import PoseFilter
from drex_ros.core.perception.tracker import (
    KNOWN_OBJECTS,
    Perception,
    PerceptionSettings,
    load_object_markers,
    parse_object_markers,
    resolve_object_markers,
)
from drex_ros.core.robot.markers import layout_as_yaml, marker_layout
from drex_ros.core.sim.scene import Scene


def _tracker(scene: Scene, name: str = "box_60mm", **settings) -> Perception:
    cam = scene.camera_model()
    return Perception(load_object_markers(config_path("markers.yaml"), name), cam.position, cam.rotation,
                      PerceptionSettings(**settings))


# --- configuration agrees with the code that draws the markers and places the camera -----------------
@pytest.mark.parametrize("name", sorted(KNOWN_OBJECTS))
def test_markers_yaml_agrees_with_marker_layout(name):
    shape, size = KNOWN_OBJECTS[name]
    from_file = load_object_markers(config_path("markers.yaml"), name)
    layout = {f.marker_id: f for f in marker_layout(shape, size)}
    assert sorted(from_file.faces) == sorted(layout)
    for marker_id, face in layout.items():
        got = from_file.faces[marker_id]
        assert got.side == pytest.approx(face.side, abs=1e-9)
        np.testing.assert_allclose(got.position, face.position, atol=1e-9)
        np.testing.assert_allclose(got.rotation, face.rotation, atol=1e-9)
    with open(config_path("markers.yaml")) as f:
        entry = yaml.safe_load(f)["objects"][name]
    assert entry["shape"] == shape and tuple(entry["size"]) == pytest.approx(size)


def test_perception_yaml_extrinsics_are_the_sim_camera():
    with open(config_path("perception.yaml")) as f:
        params = yaml.safe_load(f)["perception_node"]["ros__parameters"]
    cam = Scene().camera_model()
    np.testing.assert_allclose(params["camera_translation"], cam.position, atol=1e-6)
    w, x, y, z = params["camera_quaternion_wxyz"]
    np.testing.assert_allclose(Rotation.from_quat([x, y, z, w]).as_matrix(), cam.rotation, atol=1e-6)


def test_bad_marker_entries_are_refused():
    entry = layout_as_yaml("box", (0.06, 0.06, 0.06))
    with pytest.raises(ValueError, match="dictionary"):
        parse_object_markers("x", {**entry, "dictionary": "DICT_NOPE"})
    broken = {**entry, "markers": {0: {"side": 0.04, "position": [0, 0]}}}
    with pytest.raises(ValueError, match="marker 0"):
        parse_object_markers("x", broken)
    with pytest.raises(ValueError, match="not in"):
        load_object_markers(config_path("markers.yaml"), "no_such_object")


def test_object_markers_by_shape_and_size():
    path = config_path("markers.yaml")
    markers, source = resolve_object_markers(path, "", "cylinder", (0.035, 0.08))
    assert markers.name == "cylinder_r35_h80mm" and "markers.yaml" in source
    markers, source = resolve_object_markers(path, "", "cylinder", (0.03, 0.1))  # not in the file
    layout = {f.marker_id: f for f in marker_layout("cylinder", (0.03, 0.1))}
    assert source == "core/robot/markers.py layout"
    assert all(markers.faces[i].side == pytest.approx(f.side) for i, f in layout.items())
    with pytest.raises(ValueError, match="object_shape"):
        resolve_object_markers(path, "", "", ())


def test_scene_as_built_renders_readable_markers():
    import cv2

    from drex_ros.core.perception.marker_pose import detect_markers, make_detector
    from drex_ros.core.robot.markers import DICTIONARY

    scene = Scene()
    gray = cv2.cvtColor(scene.render_rgb(), cv2.COLOR_RGB2GRAY)
    scene.close()
    assert detect_markers(make_detector(DICTIONARY), gray)


# --- accuracy against ground truth ------------------------------------------------------------------------
def test_pose_error_over_random_poses_of_three_shapes():
    records = evaluate_random_poses(frames_per_shape=35, seed=7)
    assert len(records) >= 100
    for shape in ("box", "cylinder", "sphere"):
        mine = [r for r in records if r["shape"] == shape]
        assert sum(r["status"] == "tracking" for r in mine) == len(mine), f"{shape}: markers missed"
    pos = np.array([r["pos_err_mm"] for r in records])
    rot = np.array([r["rot_err_deg"] for r in records])
    assert np.median(pos) <= 2.0 and np.percentile(pos, 95) <= 5.0, (np.median(pos), np.percentile(pos, 95))
    assert np.median(rot) <= 1.5 and np.percentile(rot, 95) <= 4.0, (np.median(rot), np.percentile(rot, 95))
    assert pos.max() < 10.0 and rot.max() < 8.0  # no frame is grossly wrong


def test_depth_fallback_without_markers():
    records = evaluate_random_poses(frames_per_shape=8, seed=3, markers=False)
    assert all(r["status"] == "fallback" for r in records)
    pos = np.array([r["pos_err_mm"] for r in records])
    assert np.median(pos) < 10.0 and pos.max() < 20.0, pos


def test_fallback_reports_its_low_confidence():
    scene = make_scene("box")
    hide_markers(scene)
    set_pose(scene, np.array([0.52, 0.05, 0.0301]), Rotation.from_euler("z", 0.3).as_matrix())
    frame = render_frame(scene)
    result = _tracker(scene).process(frame.rgb, frame.depth, intrinsics_of(frame.camera), 1.0)
    assert result.status == "fallback" and not result.fresh_pose
    variances = np.diag(result.covariance)
    assert np.all(variances[:3] > (0.003) ** 2)  # centimetre-level, not marker-level
    assert variances[3] >= 1e3 and variances[4] >= 1e3  # roll and pitch not observed
    assert variances[5] >= 1e3  # a cube's top is square: its yaw is not observed either
    assert np.linalg.norm(result.position - frame.position) < 0.015


# --- motion: the filter must not lag a pushed object -------------------------------------------------------
def test_pushed_object_is_tracked_without_lag():
    scene = make_scene("box")
    tracker = _tracker(scene)
    intr = intrinsics_of(scene.camera_model())
    fps, duration, distance = 30.0, 1.2, 0.16
    start = np.array([0.48, -0.08])
    direction = np.array([np.cos(0.4), np.sin(0.4)])
    along, errors, speeds = [], [], []
    for k in range(int(duration * fps) + 1):
        t = k / fps
        s = min(t / duration, 1.0)
        progress = 10 * s**3 - 15 * s**4 + 6 * s**5  # minimum-jerk push: accelerate, cruise, stop
        speed = distance * (30 * s**2 - 60 * s**3 + 30 * s**4) / duration
        xy = start + distance * progress * direction
        set_pose(scene, np.array([*xy, 0.0301]), Rotation.from_euler("z", 0.5 * progress).as_matrix())
        frame = render_frame(scene)
        result = tracker.process(frame.rgb, frame.depth, intr, 100.0 + t)
        assert result.status == "tracking", (k, result.message)
        err = result.position - frame.position
        along.append(err[:2] @ direction)
        errors.append(np.linalg.norm(err))
        if k >= 8:
            speeds.append((np.linalg.norm(result.velocity[:2]), speed))
    along, errors = np.array(along), np.array(errors)
    # Lag shows as a steady negative along-track error while the object moves: none here.
    assert abs(np.mean(along)) < 1.0e-3, np.mean(along)
    assert errors.max() < 4e-3, errors.max()
    est, true = np.array(speeds).T
    assert np.max(np.abs(est - true)) < 0.05  # the filter knows how fast the object goes


def test_filter_gates_an_outlier_then_follows_a_real_jump():
    f, R, dt = PoseFilter(), np.eye(3), 1 / 30
    for k in range(5):
        assert f.update(dt * k, np.array([0.5, 0.0, 0.03]), R) is not None
    assert f.update(dt * 5, np.array([0.6, 0.1, 0.03]), R) is None  # one wild measurement: rejected
    out = f.update(dt * 6, np.array([0.5, 0.0, 0.03]), R)
    assert out is not None and np.linalg.norm(out.position - [0.5, 0.0, 0.03]) < 1e-3
    flipped = Rotation.from_euler("z", 0.5).as_matrix()
    assert f.update(dt * 7, np.array([0.5, 0.0, 0.03]), flipped) is None  # a rotation jump is gated too
    assert f.update(dt * 8, np.array([0.5, 0.0, 0.03]), R) is not None
    results = [f.update(dt * (9 + k), np.array([0.7, 0.2, 0.03]), R) for k in range(3)]
    assert results[0] is None and results[1] is None
    assert results[2] is not None and results[2].restarted  # consistently elsewhere: believed
    np.testing.assert_allclose(results[2].position, [0.7, 0.2, 0.03])


def test_tracking_loss_is_reported_and_the_old_track_dropped():
    scene = make_scene("cylinder")
    tracker = _tracker(scene, "cylinder_r35_h80mm", use_fallback=False)
    intr = intrinsics_of(scene.camera_model())
    set_pose(scene, np.array([0.55, 0.0, 0.0401]), np.eye(3))
    frame = render_frame(scene)
    assert tracker.process(frame.rgb, frame.depth, intr, 10.0).status == "tracking"
    set_pose(scene, np.array([3.0, 3.0, 0.04]), np.eye(3))  # out of view
    hidden = render_frame(scene)
    lost = [tracker.process(hidden.rgb, hidden.depth, intr, 10.0 + 0.1 * k) for k in range(1, 8)]
    assert all(r.status == "lost" and r.position is None and not r.fresh_pose for r in lost)
    assert lost[-1].seconds_since_markers == pytest.approx(0.7)
    assert not tracker.filter.initialized  # nothing stale survives the loss
    set_pose(scene, np.array([0.62, 0.08, 0.0401]), np.eye(3))
    back = render_frame(scene)
    result = tracker.process(back.rgb, back.depth, intr, 11.0)
    assert result.status == "tracking" and np.linalg.norm(result.position - back.position) < 3e-3


# --- bad input --------------------------------------------------------------------------------------------
def test_image_decoding_and_bad_encodings():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(decode_color("rgb8", rgb.tobytes(), 2, 3, 9), rgb)
    np.testing.assert_array_equal(decode_color("bgr8", rgb[:, :, ::-1].tobytes(), 2, 3, 9), rgb)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb.reshape(2, 9)
    np.testing.assert_array_equal(decode_color("rgb8", padded.tobytes(), 2, 3, 12), rgb)
    with pytest.raises(ImageInputError, match="mono8"):
        decode_color("mono8", bytes(6), 2, 3, 3)
    with pytest.raises(ImageInputError, match="bytes"):
        decode_color("rgb8", bytes(17), 2, 3, 9)
    mm = np.array([[0, 500, 65535]], dtype="<u2")
    depth = decode_depth("16UC1", mm.tobytes(), 1, 3, 6)
    assert np.isnan(depth[0, 0]) and depth[0, 1] == pytest.approx(0.5) and depth[0, 2] == pytest.approx(65.535)
    m = np.array([[np.nan, 0.75, -1.0, np.inf]], dtype="<f4")
    depth = decode_depth("32FC1", m.tobytes(), 1, 4, 16)
    assert depth[0, 1] == pytest.approx(0.75) and np.isnan(depth[0, [0, 2, 3]]).all()
    assert decode_depth("16UC1", mm.astype(">u2").tobytes(), 1, 3, 6, big_endian=True)[0, 1] == pytest.approx(0.5)
    with pytest.raises(ImageInputError, match="16UC3"):
        decode_depth("16UC3", bytes(18), 1, 3, 18)
    with pytest.raises(ImageInputError, match="step"):
        decode_depth("32FC1", bytes(8), 1, 3, 8)


def test_frames_that_do_not_belong_together_are_refused():
    intr = Intrinsics(np.array([[500.0, 0, 319.5], [0, 500, 239.5], [0, 0, 1]]), np.zeros(5), 640, 480)
    rgb = np.zeros((480, 640, 3), np.uint8)
    with pytest.raises(ImageInputError, match="CameraInfo"):
        check_frame(rgb, np.ones((480, 640), np.float32), None, 0.0, 0.0, 0.02)
    with pytest.raises(ImageInputError, match="differ in size"):
        check_frame(rgb, np.ones((240, 320), np.float32), intr, 0.0, 0.0, 0.02)
    with pytest.raises(ImageInputError, match="CameraInfo says"):
        check_frame(rgb[:240, :320], np.ones((240, 320), np.float32), intr, 0.0, 0.0, 0.02)
    with pytest.raises(ImageInputError, match="ms apart"):
        check_frame(rgb, np.ones((480, 640), np.float32), intr, 1.0, 1.5, 0.02)
    with pytest.raises(ImageInputError, match="calibrated"):
        Intrinsics.from_camera_info([0.0] * 9, [], 640, 480)
    with pytest.raises(ImageInputError, match="9 finite"):
        Intrinsics.from_camera_info([1.0] * 4, [], 640, 480)


def test_blank_and_depthless_frames_do_not_produce_wrong_poses():
    scene = make_scene("box")
    tracker = _tracker(scene)
    intr = intrinsics_of(scene.camera_model())
    black = np.zeros((480, 640, 3), np.uint8)
    no_depth = np.full((480, 640), np.nan, np.float32)
    result = tracker.process(black, no_depth, intr, 1.0)
    assert result.status == "lost" and result.position is None
    # Markers visible but the depth camera returned nothing: corners alone still give a pose.
    frame = render_frame(scene)
    result = tracker.process(frame.rgb, no_depth, intr, 2.0)
    assert result.status == "tracking"
    d_pos, d_rot = pose_error(result.position, result.rotation, frame.position, frame.rotation)
    assert d_pos < 10.0 and d_rot < 5.0


def test_a_finger_over_one_marker_does_not_spoil_the_pose():
    import cv2

    from drex_ros.core.perception.marker_pose import detect_markers

    scene = make_scene("box")
    set_pose(scene, np.array([0.56, 0.02, 0.0301]), Rotation.from_euler("z", 0.5).as_matrix())
    frame = render_frame(scene)
    tracker = _tracker(scene)
    seen = detect_markers(tracker.estimator.detector, cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2GRAY))
    assert len(seen) >= 2
    # A dark "finger" 3 cm in front of the camera-facing marker, over half of it, in colour and depth alike.
    marker_id = max(seen, key=lambda i: cv2.contourArea(seen[i].astype(np.float32)))
    x0, y0 = seen[marker_id].min(axis=0).astype(int)
    x1, y1 = seen[marker_id].max(axis=0).astype(int)
    rgb, depth = frame.rgb.copy(), frame.depth.copy()
    rgb[y0 - 5:y1 + 5, x0 - 5:(x0 + x1) // 2] = 60
    depth[y0 - 5:y1 + 5, x0 - 5:(x0 + x1) // 2] -= 0.03
    result = tracker.process(rgb, depth, intrinsics_of(frame.camera), 1.0)
    assert result.status == "tracking" and marker_id not in result.marker_ids
    d_pos, d_rot = pose_error(result.position, result.rotation, frame.position, frame.rotation)
    assert d_pos < 3.0 and d_rot < 3.0, (d_pos, d_rot)
