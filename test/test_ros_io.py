"""Message helpers shared by the nodes."""

from drex_ros.nodes.ros_io import to_sec, to_stamp


def test_stamps_round_on_the_total_not_the_fraction():
    for t in (8.9999999996, 0.0, 1.5, 12.0000000004, 2.999999999):
        stamp = to_stamp(t)
        assert 0 <= stamp.nanosec < 1_000_000_000
        assert abs(to_sec(stamp) - t) < 1e-9
