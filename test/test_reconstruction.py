"""Object reconstruction on real MuJoCo depth renders with sensor noise and real Open3D fusion."""

from __future__ import annotations

import os

# Before Open3D loads: it and CoACD read their OpenMP thread count once, and by default take
# every core (the load reached 12 on 2 cores).
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MUJOCO_GL", "osmesa")

import numpy as np  # noqa: E402
import open3d as o3d  # noqa: E402
import pytest  # noqa: E402

from drex_ros.core.reconstruction.frames import DepthFrame, ReconstructionError  # noqa: E402
from drex_ros.core.reconstruction.pipeline import reconstruct  # noqa: E402
from drex_ros.core.reconstruction.segment import isolate_object  # noqa: E402
from drex_ros.core.sim import scan_objects as so  # noqa: E402
from drex_ros.core.sim.scan_views import ScanWorld, scan_views  # noqa: E402

LOWER, UPPER = np.array([0.42, -0.13, -0.02]), np.array([0.68, 0.13, 0.25])


def _scan(obj: so.ScanObject, yaw: float, seed: int = 0) -> list[DepthFrame]:
    world = ScanWorld(obj, yaw=yaw)
    try:
        views = scan_views(world, np.random.default_rng(seed), per_ring=6)
    finally:
        world.close()
    return [DepthFrame(v.depth, v.K, v.world_T_camera, source=v.source) for v in views]


def test_box_is_a_box_of_its_size_and_yaw_free_extents():
    model = reconstruct(_scan(so.box(0.08, 0.05, 0.06), yaw=0.4), LOWER, UPPER)
    assert model.choice.kind == "box"
    assert model.mesh.is_watertight
    size = np.array(model.choice.fit.size)
    assert np.allclose(sorted(size[:2]), [0.05, 0.08], atol=0.004), size
    assert abs(size[2] - 0.06) < 0.003, size
    assert abs(model.volume - 0.08 * 0.05 * 0.06) / (0.08 * 0.05 * 0.06) < 0.1


def test_cylinder_is_a_cylinder_with_its_radius_and_height():
    model = reconstruct(_scan(so.cylinder(0.03, 0.09), yaw=0.0, seed=1), LOWER, UPPER)
    assert model.choice.kind == "cylinder"
    radius, height = model.choice.fit.size
    assert abs(radius - 0.03) < 0.003 and abs(height - 0.09) < 0.003, (radius, height)
    assert np.allclose(model.choice.fit.centre[:2], [0.55, 0.0], atol=0.003)


def test_l_block_is_not_called_a_primitive_and_gets_convex_parts():
    truth = so.l_block()
    model = reconstruct(_scan(truth, yaw=0.2, seed=2), LOWER, UPPER)
    assert model.choice.kind == "mesh"
    assert model.mesh.is_watertight
    assert len(model.parts) >= 2  # one convex piece cannot be an L
    assert abs(model.mesh.volume - so.volume(truth)) / so.volume(truth) < 0.1


def test_no_frames_is_a_clear_error():
    with pytest.raises(ReconstructionError, match="no frames"):
        reconstruct([], LOWER, UPPER)


def test_empty_table_is_a_clear_error():
    frames = _scan(so.box(0.05, 0.05, 0.05), yaw=0.0)
    # the same views with everything above 2 mm removed: only table is left
    flat = []
    for f in frames:
        depth = f.depth.copy()
        v, u = np.nonzero(depth > 0)
        z = depth[v, u]
        cam = np.column_stack([(u - f.K[0, 2]) * z / f.K[0, 0], (v - f.K[1, 2]) * z / f.K[1, 1], z])
        world_z = cam @ f.world_T_camera[2, :3] + f.world_T_camera[2, 3]
        depth[v[world_z > 0.002], u[world_z > 0.002]] = 0.0
        flat.append(DepthFrame(depth, f.K, f.world_T_camera, source=f.source))
    with pytest.raises(ReconstructionError, match="above the table|no cluster|no object"):
        reconstruct(flat, LOWER, UPPER)


def test_too_few_points_for_a_table_is_a_clear_error():
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.default_rng(0).uniform(size=(10, 3))))
    with pytest.raises(ReconstructionError, match="too few"):
        isolate_object(cloud)


def test_written_model_loads_in_mujoco_with_its_collision_geoms(tmp_path):
    import json

    import mujoco

    from drex_ros.core.reconstruction.export import write_model

    model = reconstruct(_scan(so.cylinder(0.03, 0.07), yaw=0.0, seed=3), LOWER, UPPER, decompose="always")
    paths = write_model(model, tmp_path, name="can")
    compiled = mujoco.MjModel.from_xml_path(str(paths["mjcf"]))
    kinds = [mujoco.mjtGeom(t).name for t in compiled.geom_type]
    assert kinds.count("mjGEOM_CYLINDER") == 1 and kinds.count("mjGEOM_MESH") == 1 + len(model.parts)
    cyl = compiled.geom_size[kinds.index("mjGEOM_CYLINDER")]
    assert abs(cyl[0] - 0.03) < 0.003 and abs(cyl[1] - 0.035) < 0.003
    summary = json.loads(paths["summary"].read_text())
    assert summary["primitive"]["kind"] == "cylinder" and summary["watertight"]
    assert abs(summary["extents_m"][2] - 0.07) < 0.003
    assert paths["png"].stat().st_size > 10_000


def _write_scan_bag(path, frames: list[DepthFrame]) -> None:
    import mujoco

    from drex_ros.commands.reconstruct import DEPTH, INFO, POSE
    from drex_ros.core.bag import BagWriter

    with BagWriter(path) as bag:
        for i, f in enumerate(frames[1:]):  # the wrist views: one camera, one CameraInfo
            t = 0.1 * (i + 1)
            header = {"stamp": {"sec": int(t), "nanosec": int(round((t % 1) * 1e9))}, "frame_id": "wrist_optical"}
            h, w = f.depth.shape
            bag.write(DEPTH, "sensor_msgs/Image", {
                "header": header, "height": h, "width": w, "encoding": "16UC1", "is_bigendian": 0, "step": 2 * w,
                "data": np.round(f.depth * 1000).astype("<u2").view(np.uint8).ravel()}, t)
            bag.write(INFO, "sensor_msgs/CameraInfo", {
                "header": header, "height": h, "width": w, "distortion_model": "plumb_bob", "d": np.zeros(5),
                "k": f.K.ravel(), "r": np.eye(3).ravel(), "p": np.hstack([f.K, np.zeros((3, 1))]).ravel(),
                "binning_x": 0, "binning_y": 0,
                "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}}, t)
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, f.world_T_camera[:3, :3].ravel())
            pos = f.world_T_camera[:3, 3]
            bag.write(POSE, "geometry_msgs/PoseStamped", {
                "header": {**header, "frame_id": "world"},
                "pose": {"position": {"x": pos[0], "y": pos[1], "z": pos[2]},
                         "orientation": {"w": quat[0], "x": quat[1], "y": quat[2], "z": quat[3]}}}, t)


def test_drex_reconstruct_reads_a_scan_bag_and_writes_the_model(tmp_path, capsys):
    import json

    from drex_ros.cli import main

    _write_scan_bag(tmp_path / "scan", _scan(so.box(0.07, 0.05, 0.05), yaw=0.6, seed=4))
    assert main(["reconstruct", str(tmp_path / "scan"), "--out", str(tmp_path / "model"), "--name", "brick"]) == 0
    summary = json.loads((tmp_path / "model" / "brick.json").read_text())
    assert summary["primitive"]["kind"] == "box" and summary["frames"] == 12
    assert np.allclose(sorted(summary["primitive"]["size_m"]), [0.05, 0.05, 0.07], atol=0.004)
    assert "box" in capsys.readouterr().out


def test_drex_reconstruct_names_a_missing_topic(tmp_path, capsys):
    from drex_ros.cli import main
    from drex_ros.core.bag import BagWriter

    with BagWriter(tmp_path / "empty") as bag:
        bag.write("/other", "std_msgs/String", {"data": "x"}, 0.0)
    assert main(["reconstruct", str(tmp_path / "empty"), "--out", str(tmp_path / "m")]) == 1
    assert "/wrist_camera/depth/image_rect_raw" in capsys.readouterr().err
