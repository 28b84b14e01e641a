"""Colour/depth pairing by stamp and the extrinsics check, without ROS."""

import numpy as np
import pytest

from drex_ros.core.perception.frame_pairing import FramePairer, extrinsics_from


def test_the_newest_colour_frame_with_a_depth_partner_is_paired():
    pairer = FramePairer(max_gap=0.02)
    assert pairer.add("colour", 1.00, "c1") == (None, [])
    assert pairer.add("colour", 1.10, "c2") == (None, [])
    pair, dropped = pairer.add("depth", 1.105, "d2")
    assert pair == ("c2", "d2") and dropped == []  # c1 is stale once a newer pair exists
    assert pairer.add("depth", 1.2, "d3") == (None, [])


def test_a_frame_that_can_never_be_matched_is_dropped_and_named():
    pairer = FramePairer(max_gap=0.02)
    pairer.add("colour", 1.00, "c1")
    pair, dropped = pairer.add("depth", 1.50, "d1")
    assert pair is None and len(dropped) == 1
    assert dropped[0].kind == "colour" and dropped[0].stamp == 1.00 and dropped[0].nearest_gap == pytest.approx(0.5)


def test_extrinsics_must_be_finite_and_a_unit_quaternion():
    position, rotation = extrinsics_from([0.1, 0.2, 0.3], [1.0, 0.0, 0.0, 0.0])
    assert np.allclose(position, [0.1, 0.2, 0.3]) and np.allclose(rotation, np.eye(3))
    with pytest.raises(ValueError, match="not a unit quaternion"):
        extrinsics_from([0, 0, 0], [2.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="3 and camera_quaternion_wxyz 4"):
        extrinsics_from([0, 0], [1.0, 0.0, 0.0, 0.0])


def test_a_lost_partner_after_pairs_is_told_apart_from_streams_out_of_sync():
    pairer = FramePairer(max_gap=0.02)
    pairer.add("colour", 1.00, "c1")
    assert pairer.add("depth", 1.00, "d1")[0] == ("c1", "d1")
    pairer.add("colour", 1.033, "c2")  # its depth frame was dropped from a full queue
    pairer.add("colour", 1.066, "c3")
    pair, dropped = pairer.add("depth", 1.066, "d3")
    assert pair == ("c3", "d3")
    pairer.add("colour", 1.10, "c4")
    pair, dropped = pairer.add("depth", 1.133, "d5")  # c4's partner lost, moments after a pair
    assert pair is None and [(f.kind, f.partner_lost) for f in dropped] == [("colour", True)]
    stale = FramePairer(max_gap=0.02)
    stale.add("colour", 5.0, "c")
    _, dropped = stale.add("depth", 5.5, "d")  # never paired: the streams are out of sync
    assert [(f.kind, f.partner_lost) for f in dropped] == [("colour", False)]
