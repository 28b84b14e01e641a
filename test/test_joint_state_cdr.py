"""The chain's JointState codec against rclpy's own serializer (the bytes rmw puts on the wire)."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import JointState

from drex_ros.core.robot.model import JOINT_NAMES
from drex_ros.nodes.joint_state_cdr import JointStateReader, JointStateWriter


def message(names, frame_id, position, velocity, effort, sec=12, nanosec=345) -> JointState:
    msg = JointState(name=list(names), position=list(position), velocity=list(velocity), effort=list(effort))
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = sec, nanosec, frame_id
    return msg


CASES = [  # names, frame_id, lengths of position / velocity / effort
    (JOINT_NAMES, "", 23, 23, 23), (JOINT_NAMES, "policy", 23, 0, 23), (JOINT_NAMES[:3], "ab", 3, 0, 0),
    (("a", "joint_22", "xyz"), "mass_id", 2, 3, 1), ((), "", 0, 0, 0), (("j",), "abc", 1, 0, 0),
]


@pytest.mark.parametrize("names,frame_id,n_pos,n_vel,n_eff", CASES)
def test_decoding_agrees_with_rclpy(names, frame_id, n_pos, n_vel, n_eff):
    rng = np.random.default_rng(len(names) + n_pos)
    p, v, e = rng.normal(size=n_pos), rng.normal(size=n_vel), rng.normal(size=n_eff)
    reader = JointStateReader()
    for _ in range(2):  # the second time the names come from the cache
        view = reader.decode(serialize_message(message(names, frame_id, p, v, e)))
        assert (view.sec, view.nanosec, view.frame_id, view.name) == (12, 345, frame_id, tuple(names))
        for got, want in ((view.position, p), (view.velocity, v), (view.effort, e)):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("names,frame_id,n_pos,n_vel,n_eff", CASES)
def test_encoding_is_read_back_by_rclpy(names, frame_id, n_pos, n_vel, n_eff):
    rng = np.random.default_rng(7)
    p, v, e = rng.normal(size=n_pos), rng.normal(size=n_vel), rng.normal(size=n_eff)
    data = JointStateWriter(names).encode(3, 999_999_999, p, effort=e, velocity=v, frame_id=frame_id)
    msg = deserialize_message(data, JointState)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (3, 999_999_999, frame_id)
    assert tuple(msg.name) == tuple(names)
    for got, want in ((msg.position, p), (msg.velocity, v), (msg.effort, e)):
        np.testing.assert_array_equal(np.asarray(got), want)


def test_changed_names_are_decoded_again():
    reader = JointStateReader()
    reader.decode(serialize_message(message(("a", "b"), "", [1, 2], [], [])))
    view = reader.decode(serialize_message(message(("a", "c"), "", [1, 2], [], [])))
    assert view.name == ("a", "c")


def test_big_endian_is_refused():
    data = bytearray(serialize_message(message(("a",), "", [1.0], [], [])))
    data[1] = 0  # CDR_BE
    with pytest.raises(ValueError, match="little-endian"):
        JointStateReader().decode(bytes(data))
