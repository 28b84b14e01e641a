"""A probe's recording <-> rosbag2 topics (DESIGN.md names), for `drex identify` and the node.

The identifier needs /joint_states (position, velocity, effort), /drex/joint_command (what the
robot was told, after smoothing and safety) and /drex/object_pose. Times are the messages'
header stamps (the measurement times); a message without a stamp falls back to its record time.
No ground-truth topic is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drex_ros.core.bag import BagError, BagWriter, TopicSeries, read_topics
from drex_ros.core.robot import JOINT_NAMES
from drex_ros.core.trajectory_match import Recording

JOINT_STATES = "/joint_states"
JOINT_COMMAND = "/drex/joint_command"
OBJECT_POSE = "/drex/object_pose"
PROBE_TOPICS = (JOINT_STATES, JOINT_COMMAND, OBJECT_POSE)


def _times(series: TopicSeries) -> np.ndarray:
    stamp = series.stamp.copy()
    bad = ~np.isfinite(stamp) | (stamp <= 0)
    stamp[bad] = series.t[bad]
    return stamp


def _sorted(t: np.ndarray, *arrays: np.ndarray):
    order = np.argsort(t, kind="stable")
    keep = np.r_[True, np.diff(t[order]) > 0]  # strictly increasing times
    idx = order[keep]
    return (t[idx], *[a[idx] for a in arrays])


def recording_from_series(series: dict[str, TopicSeries], shape: str, size: tuple[float, ...],
                          topics: tuple[str, str, str] = PROBE_TOPICS) -> Recording:
    """Arrays for the identifier; errors name what is missing or unusable."""
    js_topic, cmd_topic, pose_topic = topics
    js, cmd, pose = series[js_topic], series[cmd_topic], series[pose_topic]
    for s in (js, cmd, pose):
        if len(s) == 0:
            raise BagError(f"topic {s.topic} has no messages")
    q, v, e = js.fields["position"], js.fields["velocity"], js.fields["effort"]
    missing = [n for n, ok in zip(JOINT_NAMES, np.all(np.isfinite(q), axis=0), strict=True) if not ok]
    if missing:
        raise BagError(f"{js_topic} lacks positions of joints {', '.join(missing[:5])}")
    if not np.all(np.isfinite(e[:, :7])):
        raise BagError(f"{js_topic} lacks the arm's joint efforts (the force channel the identifier needs)")
    e = np.nan_to_num(e)
    if np.all(np.isfinite(v)):
        jt, q, v, e = _sorted(_times(js), q, v, e)
    else:  # no velocities: the identifier differentiates positions
        jt, q, e = _sorted(_times(js), q, e)
        v = None
    cq = cmd.fields["position"]
    if not np.all(np.isfinite(cq)):
        raise BagError(f"{cmd_topic} commands must name all {len(JOINT_NAMES)} joints")
    ct, cq = _sorted(_times(cmd), cq)
    pt, pp, pq = _sorted(_times(pose), pose.fields["position"], pose.fields["orientation"])
    return Recording(shape, tuple(size), jt, q, v, e, ct, cq, pt, pp, pq)


def read_recording(path: str | Path, shape: str, size: tuple[float, ...],
                   topics: tuple[str, str, str] = PROBE_TOPICS) -> Recording:
    return recording_from_series(read_topics(path, topics), shape, size, topics)


def _stamp(t: float) -> dict:
    ns = int(round(t * 1e9))
    return {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}


def _joint_msg(t: float, q: np.ndarray, v: np.ndarray | None = None, e: np.ndarray | None = None) -> dict:
    return {"header": {"stamp": _stamp(t), "frame_id": ""},
            "name": list(JOINT_NAMES), "position": q, "velocity": [] if v is None else v,
            "effort": [] if e is None else e}


def write_recording(path: str | Path, rec: Recording) -> None:
    """A recording as a bag with the DESIGN.md topics (tests, and re-identification of sim data)."""
    with BagWriter(path) as w:
        for i, t in enumerate(rec.joint_t):
            w.write(JOINT_STATES, "sensor_msgs/msg/JointState",
                    _joint_msg(t, rec.joint_q[i], None if rec.joint_v is None else rec.joint_v[i], rec.joint_effort[i]),
                    t)
        for i, t in enumerate(rec.cmd_t):
            w.write(JOINT_COMMAND, "sensor_msgs/msg/JointState", _joint_msg(t, rec.cmd_q[i]), t)
        for i, t in enumerate(rec.pose_t):
            p, qq = rec.pose_p[i], rec.pose_q[i]
            w.write(OBJECT_POSE, "geometry_msgs/msg/PoseStamped", {
                "header": {"stamp": _stamp(t), "frame_id": "world"},
                "pose": {"position": {"x": p[0], "y": p[1], "z": p[2]},
                         "orientation": {"w": qq[0], "x": qq[1], "y": qq[2], "z": qq[3]}}}, t)
