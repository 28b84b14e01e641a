"""rosbag2 MCAP writing and reading with core.bag (real rosbags library, real files)."""

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String

from drex_ros.core.bag import BagError, BagWriter, list_topics, read_topics
from drex_ros.core.robot.model import JOINT_NAMES
from drex_ros.nodes.ros_io import make_joint_state, to_stamp


def _pose(t: float, x: float) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(t), "world"
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, 0.1, 0.03
    msg.pose.orientation.w, msg.pose.orientation.z = np.cos(0.1), np.sin(0.1)
    return msg


def test_rclpy_messages_round_trip_as_arrays(tmp_path):
    bag = tmp_path / "probe"
    q = np.linspace(-0.5, 0.5, len(JOINT_NAMES))
    with BagWriter(bag) as w:
        for i in range(20):
            t = 1.0 + 0.002 * i
            w.write("/joint_states", "sensor_msgs/msg/JointState",
                    make_joint_state(to_stamp(t), JOINT_NAMES, q + i, np.full(23, 0.5), np.full(23, -1.0)), t)
            w.write("/drex/object_pose", "geometry_msgs/msg/PoseStamped", _pose(t, 0.5 + i * 1e-3), t + 0.01)
        w.write("/drex/object_mass", "std_msgs/msg/Float64MultiArray", Float64MultiArray(data=[0.3, 0.01, 0.6]), 2.0)
        w.write("/drex/task_state", "std_msgs/String", String(data="probing"), 2.0)
    assert list_topics(bag)["/joint_states"] == ("sensor_msgs/msg/JointState", 20)
    data = read_topics(bag, ["/joint_states", "/drex/object_pose", "/drex/object_mass", "/drex/task_state"])
    js = data["/joint_states"]
    np.testing.assert_allclose(js.stamp, 1.0 + 0.002 * np.arange(20), atol=1e-9)
    np.testing.assert_allclose(js.fields["position"][5], q + 5)
    np.testing.assert_allclose(js.fields["effort"], -1.0)
    pose = data["/drex/object_pose"]
    np.testing.assert_allclose(pose.t - pose.stamp, 0.01, atol=1e-9)  # record time vs header stamp
    np.testing.assert_allclose(pose.fields["orientation"][0], [np.cos(0.1), 0, 0, np.sin(0.1)])
    np.testing.assert_allclose(data["/drex/object_mass"].fields["data"], [[0.3, 0.01, 0.6]])
    assert data["/drex/task_state"].fields["data"] == ["probing"]


def test_joint_states_are_reordered_by_name_and_missing_joints_are_nan(tmp_path):
    bag = tmp_path / "partial"
    msg = JointState(name=["joint_3.0", "panda_joint2"], position=[0.7, -0.2], velocity=[], effort=[])
    with BagWriter(bag) as w:
        w.write("/joint_states", "sensor_msgs/JointState", msg, 0.5)
    js = read_topics(bag, ["/joint_states"])["/joint_states"]
    pos = js.fields["position"][0]
    assert pos[JOINT_NAMES.index("panda_joint2")] == -0.2
    assert pos[JOINT_NAMES.index("joint_3.0")] == 0.7
    assert np.isnan(pos[JOINT_NAMES.index("panda_joint1")])
    assert np.all(np.isnan(js.fields["velocity"]))


def test_images_camera_info_and_diagnostics_are_stored(tmp_path):
    bag = tmp_path / "camera"
    img = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    info = CameraInfo(height=2, width=3, distortion_model="plumb_bob")
    info.k = [500.0, 0.0, 1.0, 0.0, 500.0, 0.5, 0.0, 0.0, 1.0]
    diag = DiagnosticArray(status=[DiagnosticStatus(name="x", message="ok", values=[KeyValue(key="a", value="1")])])
    with BagWriter(bag) as w:
        w.write("/camera/color/image_raw", "sensor_msgs/msg/Image", img, 0.1)
        w.write("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", info, 0.1)
        w.write("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", diag, 0.2)
    data = read_topics(bag, ["/camera/color/image_raw", "/camera/color/camera_info", "/diagnostics"])
    got = data["/camera/color/image_raw"].messages[0]
    assert (got.height, got.width, got.encoding) == (2, 3, "rgb8")
    assert bytes(got.data) == bytes(range(18))
    assert data["/camera/color/camera_info"].messages[0].k[4] == 500.0
    assert data["/diagnostics"].messages[0].status[0].values[0].value == "1"


def test_missing_topic_is_named(tmp_path):
    bag = tmp_path / "short"
    with BagWriter(bag) as w:
        w.write("/joint_states", "sensor_msgs/msg/JointState", JointState(name=["a"], position=[0.0]), 0.0)
    with pytest.raises(BagError, match="/drex/object_pose"):
        read_topics(bag, ["/joint_states", "/drex/object_pose"])
    assert "/drex/object_pose" not in read_topics(bag, ["/joint_states", "/drex/object_pose"],
                                                 optional=["/drex/object_pose"])


def test_bad_input_is_refused_clearly(tmp_path):
    with pytest.raises(BagError, match="no bag"):
        read_topics(tmp_path / "nothing", ["/joint_states"])
    bag = tmp_path / "b"
    with BagWriter(bag) as w:
        with pytest.raises(BagError, match="unknown message type"):
            w.write("/x", "std_msgs/msg/NotAType", {}, 0.0)
        w.write("/x", "std_msgs/msg/String", {"data": "a"}, 0.0)
        with pytest.raises(BagError, match="was recorded as"):
            w.write("/x", "std_msgs/msg/Float64MultiArray", Float64MultiArray(data=[1.0]), 0.1)
    with pytest.raises(BagError, match="already exists"):
        BagWriter(bag)


def _bad_bags(root):
    """Every kind of broken bag a user has handed `drex identify`: {label: path to pass}."""
    good = root / "good"
    with BagWriter(good) as w:
        for i in range(200):
            w.write("/drex/object_pose", "geometry_msgs/msg/PoseStamped", _pose(1.0 + 0.01 * i, 0.5), 1.0 + 0.01 * i)
    mcap = next(good.glob("*.mcap"))
    data = mcap.read_bytes()
    cases = {}
    (root / "empty.mcap").touch()
    cases["an empty file"] = root / "empty.mcap"
    (root / "random.mcap").write_bytes(np.random.default_rng(0).bytes(5000))
    cases["random bytes named .mcap"] = root / "random.mcap"
    (root / "empty_folder").mkdir()
    cases["an empty folder"] = root / "empty_folder"
    for label, size in (("an MCAP cut in half", len(data) // 2), ("an MCAP cut to 1 kB", 1024),
                        ("random bytes in a bag", None), ("an empty .mcap in a bag", 0), ("metadata only", -1)):
        folder = root / label.replace(" ", "_").replace(".", "")
        folder.mkdir()
        (folder / "metadata.yaml").write_bytes((good / "metadata.yaml").read_bytes())
        if size is None:
            (folder / mcap.name).write_bytes(np.random.default_rng(1).bytes(5000))
        elif size >= 0:
            (folder / mcap.name).write_bytes(data[:size])
        cases[label] = folder
    cases["the .mcap of a cut bag"] = root / "an_MCAP_cut_in_half" / mcap.name
    return cases


def test_every_broken_bag_is_one_clear_line_and_exit_2(tmp_path, capsys):
    """drex identify, drex replay and drex bench massid --reuse: no traceback, the file named."""
    from drex_ros.cli import main as drex

    for label, path in _bad_bags(tmp_path).items():
        for argv in (["identify", str(path), "--shape", "box", "--size", "0.05", "0.05", "0.05", "--no-plot"],
                     ["replay", str(path), "--shape", "box", "--size", "0.05", "0.05", "0.05"]):
            assert drex(argv) == 2, f"{argv[0]} on {label}"
            out = capsys.readouterr()
            text = (out.err + out.out).strip()
            assert "Traceback" not in text and len(text.splitlines()) == 1, f"{argv[0]} on {label}: {text}"
            named = path if path.is_file() or not any(path.glob("*.mcap")) else next(path.glob("*.mcap"))
            assert str(named) in text, f"{argv[0]} on {label} does not name {named}: {text}"
    reuse = tmp_path / "bench"
    (reuse / "object_00").mkdir(parents=True)
    (tmp_path / "an_MCAP_cut_in_half").rename(reuse / "object_00" / "massid_cut")
    assert drex(["bench", "massid", "--reuse", "--objects", "1", "--out", str(reuse), "--json"]) == 2
    text = capsys.readouterr().err.strip()
    assert "Traceback" not in text and "massid_cut" in text and "cannot be read" in text
