"""sensor_msgs/JointState straight from and to its serialized (CDR, little-endian) bytes.

The command chain's hot path reads /joint_states and writes /drex/joint_command at 100 Hz (a
driver at 1 kHz). rclpy turns each message into Python objects through per-field setters (one
str per joint name, array.array per field) and back again on publish; a py-spy profile of the
chain gave that conversion a quarter of its CPU. Here a raw subscription's bytes become arrays
once: the names block is compared as bytes with the previous message's (a driver sends the same
names every time) and decoded only when it changed, the number fields are numpy views. On the
way out, the names block is encoded once per name list. Layout (as rmw_fastrtps writes it,
checked against rclpy's serializer in test/test_joint_state_cdr.py): a 4-byte encapsulation
header, then each field aligned to its size counted from the end of that header; a sequence is
a uint32 count, its doubles aligned to 8 only when there are any.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ENCAPSULATION = b"\x00\x01\x00\x00"  # CDR, little-endian
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")


@dataclass
class JointStateView:
    """One JointState as arrays (views into the message bytes: read-only, valid while kept)."""

    sec: int
    nanosec: int
    frame_id: str
    name: tuple[str, ...]
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray

    @property
    def stamp_seconds(self) -> float:
        return self.sec + self.nanosec * 1e-9


def _align(offset: int, n: int) -> int:
    """The next offset aligned to n, counted from the end of the 4-byte encapsulation header."""
    return ((offset - 4 + n - 1) & ~(n - 1)) + 4


class JointStateReader:
    """Decodes serialized JointStates; the name list is decoded only when its bytes change."""

    def __init__(self) -> None:
        self._names_raw = b""
        self._names: tuple[str, ...] = ()

    def decode(self, data: bytes) -> JointStateView:
        if data[:4] != ENCAPSULATION:
            raise ValueError(f"not little-endian CDR (encapsulation {data[:4].hex()})")
        sec, nanosec = _STAMP.unpack_from(data, 4)
        frame_id, offset = _string(data, 12)
        start = offset = _align(offset, 4)
        (count,) = _U32.unpack_from(data, offset)
        offset += 4
        for _ in range(count):  # skip to the end of the names block; decode only if it changed
            offset = _align(offset, 4)
            offset += 4 + _U32.unpack_from(data, offset)[0]
        raw = data[start:offset]
        if raw != self._names_raw:
            self._names_raw, self._names = bytes(raw), _strings(data, start)
        position, offset = _doubles(data, offset)
        velocity, offset = _doubles(data, offset)
        effort, offset = _doubles(data, offset)
        return JointStateView(sec, nanosec, frame_id, self._names, position, velocity, effort)


class JointStateWriter:
    """Encodes JointStates for one name list into a reused buffer; the names block is encoded once."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        block = bytearray(_U32.pack(len(self.names)))
        for name in self.names:  # the block starts 4-aligned, so its inner padding never changes
            block += b"\x00" * (_align(len(block), 4) - len(block))
            encoded = name.encode() + b"\x00"
            block += _U32.pack(len(encoded)) + encoded
        self._names_block = bytes(block)

    def encode(self, sec: int, nanosec: int, position: np.ndarray, effort: np.ndarray | None = None,
               velocity: np.ndarray | None = None, frame_id: str = "") -> bytes:
        out = bytearray(ENCAPSULATION)
        out += _STAMP.pack(sec, nanosec)
        encoded = frame_id.encode() + b"\x00"
        out += _U32.pack(len(encoded)) + encoded
        out += b"\x00" * (_align(len(out), 4) - len(out))
        out += self._names_block
        for values in (position, velocity, effort):
            _put_doubles(out, values)
        return bytes(out)


def _string(data: bytes, offset: int) -> tuple[str, int]:
    offset = _align(offset, 4)
    (n,) = _U32.unpack_from(data, offset)
    return bytes(data[offset + 4: offset + 3 + n]).decode(), offset + 4 + n


def _strings(data: bytes, offset: int) -> tuple[str, ...]:
    (count,) = _U32.unpack_from(data, offset)
    offset += 4
    out = []
    for _ in range(count):
        text, offset = _string(data, offset)
        out.append(text)
    return tuple(out)


def _doubles(data: bytes, offset: int) -> tuple[np.ndarray, int]:
    offset = _align(offset, 4)
    (count,) = _U32.unpack_from(data, offset)
    offset += 4
    if count == 0:
        return np.zeros(0), offset
    offset = _align(offset, 8)
    return np.frombuffer(data, dtype="<f8", count=count, offset=offset), offset + 8 * count


def _put_doubles(out: bytearray, values: np.ndarray | None) -> None:
    out += b"\x00" * (_align(len(out), 4) - len(out))
    n = 0 if values is None else len(values)
    out += _U32.pack(n)
    if n:
        out += b"\x00" * (_align(len(out), 8) - len(out))
        out += np.ascontiguousarray(values, dtype="<f8").tobytes()
