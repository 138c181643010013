"""``sensor_msgs/Image`` -> numpy arrays the tracker accepts, with a whitelist of encodings.

Works on any object with the fields of ``sensor_msgs/Image`` (height, width, encoding,
is_bigendian, step, data), so it is tested without a ROS graph. Every message is validated
(size, step, data length, encoding) *before* its bytes are interpreted: a malformed image
raises :class:`ImageError` with the reason and never reaches the tracker.

What each stream accepts and what comes out:

* RGB stream: ``rgb8``, ``bgr8``, ``8UC3`` (taken as BGR, OpenCV's order), ``mono8``/``8UC1``
  (grey, replicated to three channels) -> ``HxWx3`` uint8 in RGB order.
* thermal stream: ``mono8``/``8UC1`` -> ``HxW`` uint8; ``mono16``/``16UC1`` -> ``HxW`` uint16;
  ``32FC1`` -> ``HxW`` float32; ``rgb8``/``bgr8``/``8UC3`` (colour-mapped) -> ``HxWx3`` uint8 RGB.
  16-bit and float frames are normalised by the core (``m5l_core.preprocess``: per-frame
  percentile stretch; non-finite pixels take the low end). A 32FC1 frame with no finite pixel
  is rejected here, because no normalisation can recover it.

Where ROS 2's ``cv_bridge`` is installed it decodes the buffer (``passthrough``); otherwise numpy
does, with the same validation and the same result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# encoding -> (channels, numpy dtype)
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)),
}
RGB_ENCODINGS = ("rgb8", "bgr8", "8UC3", "mono8", "8UC1")
THERMAL_ENCODINGS = ("rgb8", "bgr8", "8UC3", "mono8", "8UC1", "mono16", "16UC1", "32FC1")
BGR_ORDER = ("bgr8", "8UC3")
ACCEPTED = {"rgb": RGB_ENCODINGS, "thermal": THERMAL_ENCODINGS}


class ImageError(ValueError):
    """An image message cannot be used; the message says why (for the throttled warning)."""


def load_cv_bridge() -> Any | None:
    """ROS 2's CvBridge where it is installed and working, else None."""
    try:
        from cv_bridge import CvBridge
        return CvBridge()
    except Exception:  # a broken or ROS 1 cv_bridge is as good as none
        return None


def check_layout(msg: Any, allowed: tuple[str, ...], max_side: int) -> tuple[int, np.dtype]:
    """Validate encoding, size, step and data length; return (channels, dtype)."""
    encoding = str(msg.encoding)
    if encoding not in allowed:
        raise ImageError(f"encoding {encoding!r} is not supported here (accepted: {', '.join(allowed)})")
    channels, dtype = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f"empty image ({width}x{height})")
    if height > max_side or width > max_side:
        raise ImageError(f"image {width}x{height} exceeds the {max_side}-pixel limit")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageError(f"step {step} is smaller than a row of {width} {encoding} pixels "
                         f"({row_bytes} bytes)")
    if step % dtype.itemsize:
        raise ImageError(f"step {step} is not a multiple of the {dtype.itemsize}-byte pixel component")
    if len(msg.data) < step * height:
        raise ImageError(f"data has {len(msg.data)} bytes, expected step*height = {step * height}")
    return channels, dtype


def decode(msg: Any, allowed: tuple[str, ...], max_side: int = 8192, bridge: Any | None = None) -> np.ndarray:
    """Validated ``HxW`` or ``HxWxC`` array of the message's native dtype (no colour conversion)."""
    channels, dtype = check_layout(msg, allowed, max_side)
    if bridge is not None:
        try:
            array = np.asarray(bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough"))
        except Exception as err:  # cv_bridge raises its own error types
            raise ImageError(f"cv_bridge could not convert the image: {err}") from None
    else:
        array = _decode_numpy(msg, channels, dtype)
    expected = (int(msg.height), int(msg.width)) + ((channels,) if channels > 1 else ())
    if array.shape != expected:
        raise ImageError(f"decoded shape {array.shape} does not match {expected}")
    return array


def _decode_numpy(msg: Any, channels: int, dtype: np.dtype) -> np.ndarray:
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    buffer = np.frombuffer(memoryview(msg.data), dtype=np.uint8, count=step * height)
    rows = buffer.reshape(height, step)[:, : width * channels * dtype.itemsize]
    byte_order = ">" if msg.is_bigendian else "<"
    array = np.ascontiguousarray(rows).view(dtype.newbyteorder(byte_order))
    array = array.reshape((height, width, channels) if channels > 1 else (height, width))
    return array.astype(dtype, copy=False)  # native byte order from here on


def to_rgb(msg: Any, max_side: int = 8192, bridge: Any | None = None) -> np.ndarray:
    """RGB-stream message -> ``HxWx3`` uint8 array in RGB order."""
    array = decode(msg, RGB_ENCODINGS, max_side, bridge)
    return _colour_to_rgb(array, str(msg.encoding))


def to_thermal(msg: Any, max_side: int = 8192, bridge: Any | None = None) -> np.ndarray:
    """Thermal-stream message -> ``HxW`` uint8/uint16/float32 or ``HxWx3`` uint8 (RGB order)."""
    array = decode(msg, THERMAL_ENCODINGS, max_side, bridge)
    if array.ndim == 3:
        return _colour_to_rgb(array, str(msg.encoding))
    if array.dtype == np.float32 and not np.isfinite(array).any():
        raise ImageError("32FC1 thermal image has no finite pixel")
    return np.ascontiguousarray(array)


def _colour_to_rgb(array: np.ndarray, encoding: str) -> np.ndarray:
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if encoding in BGR_ORDER:
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)
