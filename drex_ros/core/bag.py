"""rosbag2 (MCAP) recording and reading of the stack's topics, with the `rosbags` library.

Writing: `BagWriter(path).write(topic, msg_type, msg, t)` takes a ROS message (anything with
`get_fields_and_field_types()`, e.g. an rclpy message; no rclpy import here), a dict with the
message's fields, or a rosbags message, and stores it CDR-serialised with timestamp t (s).
Reading: `read_topics(path, topics)` returns, per topic, numpy time series: the record times,
the header stamps, and the message fields as arrays (joint states by joint name, poses as
position + quaternion wxyz). Any ROS 2 tool reads these bags (`ros2 bag info/play`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.base import Nodetype

from drex_ros.core.robot.model import JOINT_NAMES

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
_NUMPY = {"bool": np.bool_, "int8": np.int8, "uint8": np.uint8, "byte": np.uint8, "char": np.uint8,
          "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32, "int64": np.int64,
          "uint64": np.uint64, "float32": np.float32, "float64": np.float64}


class BagError(ValueError):
    """A bag cannot be written or read as asked (the message says why)."""


def normalise_type(msg_type: str) -> str:
    """'sensor_msgs/JointState' or 'sensor_msgs/msg/JointState' -> 'sensor_msgs/msg/JointState'."""
    parts = msg_type.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    full = "/".join(parts)
    if full not in TYPESTORE.types:
        raise BagError(f"unknown message type {msg_type!r}")
    return full


def _fields_of(msg: Any) -> dict[str, Any]:
    if isinstance(msg, dict):
        return msg
    if hasattr(msg, "get_fields_and_field_types"):  # rclpy message
        return {name: getattr(msg, name) for name in msg.get_fields_and_field_types()}
    if hasattr(msg, "__dataclass_fields__"):  # rosbags message
        return {name: getattr(msg, name) for name in msg.__dataclass_fields__}
    raise BagError(f"cannot convert {type(msg).__name__} to a ROS message")


def _convert(value: Any, desc: tuple) -> Any:
    kind, arg = desc
    if kind == Nodetype.NAME:
        return to_rosbags(arg, value)
    if kind == Nodetype.BASE:
        name = arg[0]
        if name == "string":
            return str(value)
        if isinstance(value, (bytes, bytearray)):  # rclpy gives byte fields as bytes
            value = value[0] if value else 0
        return _NUMPY[name](value) if name in _NUMPY else value
    sub, _length = arg
    if sub[0] == Nodetype.BASE and sub[1][0] in _NUMPY:
        dtype = _NUMPY[sub[1][0]]
        if isinstance(value, (bytes, bytearray, memoryview)):
            return np.frombuffer(bytes(value), dtype=dtype).copy()
        return np.asarray(list(value) if not isinstance(value, np.ndarray) else value, dtype=dtype)
    return [_convert(v, sub) for v in value]


def to_rosbags(msg_type: str, msg: Any) -> Any:
    """A rosbags message of `msg_type` from an rclpy message, a dict or a rosbags message."""
    msg_type = normalise_type(msg_type)
    cls = TYPESTORE.types[msg_type]
    if isinstance(msg, cls):
        return msg
    given = _fields_of(msg)
    kwargs = {}
    for name, desc in TYPESTORE.fielddefs[msg_type][1]:
        if name not in given:
            raise BagError(f"{msg_type} needs field {name!r}")
        kwargs[name] = _convert(given[name], desc)
    return cls(**kwargs)


class BagWriter:
    """Write messages to a new rosbag2 MCAP bag (a directory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} already exists; choose a new bag name")
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._types: dict[str, str] = {}
        self.count = 0

    def write(self, topic: str, msg_type: str, msg: Any, t: float) -> None:
        """Record `msg` on `topic` at time t (seconds; the bag's timestamp)."""
        msg_type = normalise_type(msg_type)
        self.write_serialized(topic, msg_type, TYPESTORE.serialize_cdr(to_rosbags(msg_type, msg), msg_type), t)

    def write_serialized(self, topic: str, msg_type: str, data: bytes, t: float) -> None:
        """Record a message already in CDR (as a raw rclpy subscription receives it, and as
        rosbag2 stores it) on `topic` at time t."""
        msg_type = normalise_type(msg_type)
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(topic, msg_type, typestore=TYPESTORE)
            self._types[topic] = msg_type
        elif self._types[topic] != msg_type:
            raise BagError(f"topic {topic} was recorded as {self._types[topic]}, not {msg_type}")
        self._writer.write(self._connections[topic], int(round(t * 1e9)), data)
        self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class TopicSeries:
    """One topic as arrays. `t`: bag record times (s); `stamp`: header stamps (s), NaN if none."""

    topic: str
    msg_type: str
    t: np.ndarray
    stamp: np.ndarray
    fields: dict[str, Any] = field(default_factory=dict)
    messages: list = field(default_factory=list)  # decoded messages (types without an array form)

    def __len__(self) -> int:
        return len(self.t)


def _stamp(msg: Any) -> float:
    header = getattr(msg, "header", None)
    if header is None:
        return float("nan")
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _joint_arrays(msgs: list, names: Sequence[str]) -> dict[str, np.ndarray]:
    out = {k: np.full((len(msgs), len(names)), np.nan) for k in ("position", "velocity", "effort")}
    for i, msg in enumerate(msgs):
        index = {n: j for j, n in enumerate(msg.name)}
        cols = [(k, index[n]) for k, n in enumerate(names) if n in index]
        for key in ("position", "velocity", "effort"):
            values = getattr(msg, key)
            if len(values) == len(msg.name):
                for k, j in cols:
                    out[key][i, k] = values[j]
    return out


def _series(topic: str, msg_type: str, times: list[int], msgs: list, joint_names: Sequence[str]) -> TopicSeries:
    t = np.array(times, dtype=float) * 1e-9
    stamp = np.array([_stamp(m) for m in msgs])
    s = TopicSeries(topic, msg_type, t, stamp)
    if msg_type == "sensor_msgs/msg/JointState":
        s.fields = _joint_arrays(msgs, joint_names)
        s.fields["names"] = list(joint_names)
    elif msg_type == "geometry_msgs/msg/PoseStamped":
        s.fields["position"] = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z] for m in msgs])
        s.fields["orientation"] = np.array([[m.pose.orientation.w, m.pose.orientation.x, m.pose.orientation.y,
                                             m.pose.orientation.z] for m in msgs])  # wxyz
        s.fields["frame_id"] = [m.header.frame_id for m in msgs]
    elif msg_type == "std_msgs/msg/Float64MultiArray":
        rows = [np.asarray(m.data, dtype=float) for m in msgs]
        same = len({len(r) for r in rows}) <= 1
        s.fields["data"] = np.array(rows) if same and rows else rows
    elif msg_type == "std_msgs/msg/Float64":
        s.fields["data"] = np.array([m.data for m in msgs], dtype=float)
    elif msg_type in ("std_msgs/msg/String", "std_msgs/msg/Bool"):
        s.fields["data"] = [m.data for m in msgs]
    else:
        s.messages = msgs
    if msg_type in ("sensor_msgs/msg/JointState", "geometry_msgs/msg/PoseStamped"):
        s.messages = []
    else:
        s.messages = msgs
    return s


def bag_folder(path: str | Path) -> Path:
    """The rosbag2 folder a path names (the folder, or the .mcap file inside it); BagError with
    one line naming the file and what is wrong where it is not a readable bag's."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"no bag at {path}")
    folder = path.parent if path.is_file() else path
    if not (folder / "metadata.yaml").is_file():
        if path.is_file():
            raise BagError(f"{path}: no metadata.yaml beside it in {folder}; a rosbag2 bag is the folder that "
                           "holds both (give that folder)")
        raise BagError(f"{folder}: not a rosbag2 bag (no metadata.yaml in it)")
    mcaps = sorted(folder.glob("*.mcap"))
    for mcap in mcaps:
        if mcap.stat().st_size == 0:
            raise BagError(f"{mcap}: the file is empty (the recording was never written)")
    return folder


@contextmanager
def _reading(path: str | Path):
    """A rosbags Reader of the bag at `path`; whatever the reader trips over (a file cut short,
    bytes that are not MCAP, a metadata.yaml naming a missing file) becomes one BagError line."""
    folder = bag_folder(path)
    try:
        with Reader(folder) as reader:
            yield reader
    except BagError:
        raise
    except (ReaderError, OSError, ValueError, KeyError, IndexError, EOFError, struct.error) as exc:
        what = str(exc) or type(exc).__name__
        if "magic" in what.lower():
            what = f"cut short or not MCAP data ({what})"
        files = ", ".join(str(m) for m in sorted(folder.glob("*.mcap"))) or str(folder)
        raise BagError(f"{files}: cannot be read as a rosbag2 MCAP bag: {what}") from exc


def list_topics(path: str | Path) -> dict[str, tuple[str, int]]:
    """{topic: (type, message count)} of a bag."""
    with _reading(path) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}


def read_topics(path: str | Path, topics: Iterable[str], joint_names: Sequence[str] = JOINT_NAMES,
                optional: Iterable[str] = ()) -> dict[str, TopicSeries]:
    """Per-topic time series. Raises BagError naming any required topic the bag lacks."""
    path = Path(path)
    topics = list(topics)
    optional = set(optional)
    with _reading(path) as reader:
        available = {c.topic: c.msgtype for c in reader.connections}
        missing = [t for t in topics if t not in available and t not in optional]
        if missing:
            raise BagError(f"bag {path} has no topic {', '.join(missing)} (it has: "
                           f"{', '.join(sorted(available)) or 'nothing'})")
        wanted = [t for t in topics if t in available]
        conns = [c for c in reader.connections if c.topic in wanted]
        times: dict[str, list[int]] = {t: [] for t in wanted}
        msgs: dict[str, list] = {t: [] for t in wanted}
        for conn, stamp, raw in reader.messages(connections=conns):
            times[conn.topic].append(stamp)
            msgs[conn.topic].append(TYPESTORE.deserialize_cdr(raw, conn.msgtype))
    return {t: _series(t, available[t], times[t], msgs[t], joint_names) for t in wanted}
