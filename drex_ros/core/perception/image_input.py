"""Checked conversion of raw camera buffers into the arrays perception works on.

A camera driver hands over (encoding, width, height, step, bytes) per image and a
CameraInfo; anything perception cannot interpret exactly raises `ImageInputError`
with a message a person can act on, instead of producing a wrong pose.
Colour: rgb8 / bgr8. Depth: 16UC1 (millimetres) or 32FC1 (metres); 0, NaN and inf
mean "no reading" and become NaN. Depth is assumed registered to the colour image
(same size and intrinsics), as RGB-D drivers publish it when alignment is enabled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOR_ENCODINGS = ("rgb8", "bgr8")
DEPTH_ENCODINGS = ("16UC1", "32FC1")


class ImageInputError(ValueError):
    """An image, camera info or frame pairing perception cannot use (the message says why)."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: 3x3 K, distortion coefficients (OpenCV order), image size."""

    K: np.ndarray
    dist: np.ndarray
    width: int
    height: int

    @classmethod
    def from_camera_info(cls, k: list[float], d: list[float], width: int, height: int,
                         distortion_model: str = "plumb_bob") -> Intrinsics:
        """From CameraInfo fields (k row-major 9 values, d coefficients)."""
        K = np.asarray(k, dtype=float)
        if K.shape != (9,) or not np.all(np.isfinite(K)):
            raise ImageInputError(f"CameraInfo k must hold 9 finite numbers, got {list(k)}")
        K = K.reshape(3, 3)
        if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
            raise ImageInputError(f"CameraInfo k is not a calibrated pinhole matrix: {K.tolist()} "
                                  "(fx, fy must be > 0 and k[8] == 1; is the camera calibrated?)")
        if width <= 0 or height <= 0:
            raise ImageInputError(f"CameraInfo image size {width}x{height} is not valid")
        dist = np.asarray(d, dtype=float)
        if distortion_model not in ("plumb_bob", "rational_polynomial", "") and np.any(dist != 0):
            raise ImageInputError(f"distortion model {distortion_model!r} is not supported "
                                  "(plumb_bob or rational_polynomial)")
        if not np.all(np.isfinite(dist)):
            raise ImageInputError("CameraInfo distortion coefficients are not finite")
        return cls(K, dist, int(width), int(height))


def _checked_buffer(kind: str, data: bytes | bytearray | memoryview | np.ndarray, height: int, width: int,
                    step: int, bytes_per_pixel: int) -> np.ndarray:
    if height <= 0 or width <= 0:
        raise ImageInputError(f"{kind} image has no pixels ({width}x{height})")
    row = width * bytes_per_pixel
    if step < row:
        raise ImageInputError(f"{kind} image step {step} is smaller than width*{bytes_per_pixel} = {row}")
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    if buf.size != step * height:
        raise ImageInputError(f"{kind} image holds {buf.size} bytes, expected step*height = {step * height} "
                              f"({width}x{height}, step {step})")
    return buf.reshape(height, step)[:, :row]


def decode_color(encoding: str, data, height: int, width: int, step: int) -> np.ndarray:
    """HxWx3 uint8 RGB from an rgb8 or bgr8 buffer."""
    if encoding not in COLOR_ENCODINGS:
        raise ImageInputError(f"colour encoding {encoding!r} is not supported; use one of {COLOR_ENCODINGS}")
    rows = _checked_buffer("colour", data, height, width, step, 3)
    img = rows.reshape(height, width, 3)
    return np.ascontiguousarray(img[:, :, ::-1] if encoding == "bgr8" else img)


def decode_depth(encoding: str, data, height: int, width: int, step: int, big_endian: bool = False) -> np.ndarray:
    """HxW float32 depth in metres, NaN where the sensor gave no reading."""
    if encoding not in DEPTH_ENCODINGS:
        raise ImageInputError(f"depth encoding {encoding!r} is not supported; use one of {DEPTH_ENCODINGS} "
                              "(16UC1 in millimetres, 32FC1 in metres)")
    size = 2 if encoding == "16UC1" else 4
    rows = _checked_buffer("depth", data, height, width, step, size)
    order = ">" if big_endian else "<"
    if encoding == "16UC1":
        mm = np.ascontiguousarray(rows).view(order + "u2").reshape(height, width)
        depth = mm.astype(np.float32) * np.float32(1e-3)
        depth[mm == 0] = np.nan
    else:
        depth = np.ascontiguousarray(rows).view(order + "f4").reshape(height, width).astype(np.float32)
        depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def check_frame(color: np.ndarray, depth: np.ndarray, intrinsics: Intrinsics | None,
                color_stamp: float, depth_stamp: float, max_stamp_gap: float) -> None:
    """Raise ImageInputError unless colour, depth and intrinsics describe one frame."""
    if intrinsics is None:
        raise ImageInputError("no CameraInfo received yet: intrinsics unknown, cannot compute a pose")
    if color.shape[:2] != depth.shape:
        raise ImageInputError(f"colour {color.shape[1]}x{color.shape[0]} and depth {depth.shape[1]}x"
                              f"{depth.shape[0]} differ in size (depth must be registered to colour)")
    if color.shape[:2] != (intrinsics.height, intrinsics.width):
        raise ImageInputError(f"images are {color.shape[1]}x{color.shape[0]} but CameraInfo says "
                              f"{intrinsics.width}x{intrinsics.height}")
    gap = abs(color_stamp - depth_stamp)
    if gap > max_stamp_gap:
        raise ImageInputError(f"colour and depth stamps are {gap * 1e3:.1f} ms apart (max "
                              f"{max_stamp_gap * 1e3:.1f} ms): not the same frame")
