"""A probe's recording <-> rosbag2 topics (DESIGN.md names), for `drex identify` and the node.

The identifier needs /joint_states (position, velocity, effort), /drex/joint_command (what the
robot was told, after smoothing and safety) and /drex/object_pose. Times are the messages'
header stamps (the measurement times); a message without a stamp falls back to its record time.
No ground-truth topic is read. Also: where the push is in a recording, and the checks that
refuse recordings the identifier cannot trust (massid's steps 1 and the joint-state checks).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from drex_ros.core.bag import BagError, BagWriter, TopicSeries, read_topics
from drex_ros.core.massid.trajectory_match import Recording
from drex_ros.core.massid.types import MassIdConfig, PushWindow, RecordingError
from drex_ros.core.robot.grasp_plan import object_yaw
from drex_ros.core.robot.model import JOINT_NAMES

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
    js, cmd, pose = series[js_topic], series[cmd_topic], series.get(pose_topic)
    for s in (js, cmd, pose):
        if s is not None and len(s) == 0:
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
    if pose is None:  # a recording of the arm alone (an excitation: robot_calibration.py)
        return Recording(shape, tuple(size), jt, q, v, e, ct, cq, np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)))
    pt, pp, pq = _sorted(_times(pose), pose.fields["position"], pose.fields["orientation"])
    return Recording(shape, tuple(size), jt, q, v, e, ct, cq, pt, pp, pq)


def recording_from_buffers(joints: list[tuple], commands: list[tuple], poses: list[tuple], shape: str,
                           size: tuple[float, ...], command_topic: str, min_poses: int = 10) -> Recording:
    """Arrays for the identifier from a node's live buffers of (stamp, receipt, values...) tuples.

    Unlike a bag, a live command stream may carry stamps from another clock (a watchdog hold
    stamped on the steady clock while the rest runs on sim time): such a stamp is replaced by
    its receipt time. Joint states keep their stamps, the measurement times.
    """
    if len(joints) < 50 or len(commands) < 10 or len(poses) < min_poses:
        raise RecordingError(f"too little data recorded: {len(joints)} joint states, {len(commands)} "
                             f"commands on {command_topic}, {len(poses)} object poses")
    joints = sorted(joints, key=lambda j: j[0])  # stamp order (callbacks may deliver out of order)
    joints = [j for i, j in enumerate(joints) if i == 0 or j[0] > joints[i - 1][0]]
    poses = sorted(poses, key=lambda p: p[0])
    jt = np.array([j[0] for j in joints])
    stamps, recv = np.array([c[0] for c in commands]), np.array([c[1] for c in commands])
    ct = np.where(np.abs(stamps - recv) < 0.5, stamps, recv)
    order = np.argsort(ct, kind="stable")
    keep = order[np.r_[True, np.diff(ct[order]) > 0]]
    v = np.array([j[3] for j in joints])
    return Recording(shape, size, jt, np.array([j[2] for j in joints]), v if np.all(np.isfinite(v)) else None,
                     np.nan_to_num(np.array([j[4] for j in joints])), ct[keep],
                     np.array([c[2] for c in commands])[keep], np.array([p[0] for p in poses]),
                     np.array([p[2] for p in poses]).reshape(-1, 3), np.array([p[3] for p in poses]).reshape(-1, 4))


def read_recording(path: str | Path, shape: str, size: tuple[float, ...],
                   topics: tuple[str, str, str] = PROBE_TOPICS) -> Recording:
    return recording_from_series(read_topics(path, topics), shape, size, topics)


def read_arm_recording(path: str | Path, topics: tuple[str, str, str] = PROBE_TOPICS) -> Recording:
    """Joint states and applied commands only (an excitation has no object to see)."""
    return recording_from_series(read_topics(path, topics[:2]), "box", (0.06, 0.06, 0.06), topics)


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


def _median5(x: np.ndarray) -> np.ndarray:
    """Running median over 5 frames (3 at the ends) along the first axis."""
    return np.array([np.median(x[max(0, i - 2):i + 3], axis=0) for i in range(len(x))])


def find_push_window(rec: Recording, cfg: MassIdConfig) -> PushWindow:
    """Locate the push from the object poses; raise RecordingError for unusable recordings."""
    t, p = rec.pose_t, rec.pose_p
    ok = np.all(np.isfinite(p), axis=1)
    t, p, q = t[ok], p[ok], rec.pose_q[ok]
    if len(t) < cfg.rest_frames + 3:
        raise RecordingError(f"bag too short: {len(t)} object poses, need at least {cfg.rest_frames + 3}")
    if len(rec.joint_t) < 50 or len(rec.cmd_t) < 2:
        raise RecordingError(f"bag too short: {len(rec.joint_t)} joint states and {len(rec.cmd_t)} joint commands")
    rest = np.median(p[:cfg.rest_frames, :2], axis=0)
    dist = np.linalg.norm(p[:, :2] - rest, axis=1)
    # Moved: the 5-frame median displacement beyond the threshold, so 3 of 5 frames must be. Two
    # consecutive noisy frames are not a motion: 8.6 and 8.1 mm, 5 s before a push, opened an
    # eval box's window there, and its push fell outside it.
    smooth = _median5(dist)
    moved = smooth > cfg.move_threshold
    if not moved.any():
        raise RecordingError(f"the object never moved (displacement, median over 5 frames, at most "
                             f"{smooth.max() * 1e3:.1f} mm < {cfg.move_threshold * 1e3:.0f} mm): "
                             "the probe did not push it")
    i_move = int(np.argmax(moved))
    # A slow push crosses the threshold long after contact: walk back to where the (5-frame
    # median) displacement was last at noise level, and start the window before that.
    quiet = np.flatnonzero(smooth[:i_move] <= cfg.move_threshold / 3)
    t_motion = float(t[quiet[-1]]) if len(quiet) else float(t[i_move])
    before = t < t_motion - cfg.pre_motion
    if before.sum() < cfg.rest_frames:
        raise RecordingError(f"bag too short before the push: {before.sum()} resting frames, need {cfg.rest_frames}")
    xy = np.median(p[before, :2], axis=0)
    yaws = np.array([object_yaw(qq) for qq in q[before]])
    yaw = float(np.angle(np.mean(np.exp(1j * 4 * yaws))) / 4) if rec.shape == "box" else 0.0
    # Resting again: the pose stays within noise of its final value for settle_after seconds.
    # Positions median-filtered over 5 frames first: single frames with 2 mm of noise per axis are
    # 4 mm from the final pose 13% of the time, which kept the window open to its longest (up to
    # a second of rollouts after the push, for nothing).
    final = np.median(p[-cfg.rest_frames:, :2], axis=0)
    p_med = _median5(p[:, :2])
    far = np.linalg.norm(p_med - final, axis=1) > cfg.move_threshold / 2
    t_rest = float(t[np.flatnonzero(far)[-1]]) if far.any() else t_motion
    t0 = max(t_motion - cfg.pre_motion, float(rec.joint_t[0]), float(rec.cmd_t[0]))
    if t0 >= rec.joint_t[-1] - 0.5:
        raise RecordingError(f"the joint states end at {rec.joint_t[-1]:.2f} s, before the push "
                             f"({t_motion:.2f} s on the camera clock)")
    t0 = float(rec.joint_t[np.searchsorted(rec.joint_t, t0)])  # start on a measured joint state
    max_window = cfg.sphere_window if rec.shape == "sphere" else cfg.max_window
    t1 = min(max(t_rest, t_motion) + cfg.settle_after, t0 + max_window, float(rec.joint_t[-1]))
    if t1 - t_motion < 0.1:
        raise RecordingError(f"bag too short after the push starts ({t1 - t_motion:.2f} s of data)")
    moved_to = np.median(p[(t > t_motion) & (t <= t1), :2], axis=0) - xy
    direction = np.array([*moved_to / max(np.linalg.norm(moved_to), 1e-9), 0.0])
    return PushWindow(t_motion, t0, t1, xy, yaw, direction)


def check_joint_coverage(rec: Recording, win: PushWindow, cfg: MassIdConfig, during: str = "the push") -> None:
    """The force is inverted from consecutive joint states: refuse a recording with many lost."""
    t = rec.joint_t[(rec.joint_t >= win.t0) & (rec.joint_t <= win.t1)]
    if len(t) < 20:
        raise RecordingError(f"only {len(t)} joint states during {during}")
    h = np.diff(t)
    step = float(np.min(h[h > 0])) if np.any(h > 0) else 0.0
    coverage = (len(t) - 1) * step / max(t[-1] - t[0], 1e-9)
    if coverage < cfg.min_joint_coverage or h.max() > cfg.max_joint_gap:
        raise RecordingError(f"joint states were lost during {during} ({coverage:.0%} present, longest gap "
                             f"{h.max() * 1e3:.0f} ms): the recorder could not keep up with the driver's rate")


def drop_inconsistent_joint_states(rec: Recording, cfg: MassIdConfig) -> Recording:
    """Remove joint states that contradict their neighbours (mis-stamped or reordered messages).

    Consecutive states satisfy q_k = q_(k-1) + h_k qd_k up to the curvature of the motion (well
    under a milliradian at driver rates). A message stamped with the wrong time - e.g. a clock
    that rounds 8.9999999 s to 8.0 s - breaks that with both neighbours; replaying it would
    inject a step of tens of newton-metres into the replay and shift the mass. Such states are
    dropped (the replay bridges the gap); more than a few and the recording is refused.
    """
    if rec.joint_v is None:
        return rec
    keep = np.ones(len(rec.joint_t), dtype=bool)
    for _ in range(10):
        idx = np.flatnonzero(keep)
        t, q, v = rec.joint_t[idx], rec.joint_q[idx, :7], rec.joint_v[idx, :7]
        jump = np.max(np.abs(q[1:] - q[:-1] - np.diff(t)[:, None] * v[1:]), axis=1) > cfg.max_joint_jump
        bad = np.r_[jump[0], jump[1:] & jump[:-1], jump[-1]]  # inconsistent with both neighbours
        if not bad.any():
            break
        keep[idx[bad]] = False
    if (~keep).sum() > cfg.max_bad_joint_states * len(keep):
        raise RecordingError(f"{(~keep).sum()} of {len(keep)} joint states contradict their neighbours "
                             "(positions jump where the velocities say they cannot: mis-stamped or reordered "
                             "messages); the recording cannot be trusted")
    if keep.all():
        return rec
    return replace(rec, joint_t=rec.joint_t[keep], joint_q=rec.joint_q[keep], joint_v=rec.joint_v[keep],
                   joint_effort=rec.joint_effort[keep])
