"""Image messages <-> numpy arrays for bags (``rosbags`` message objects, no cv_bridge).

Decoded colour images are returned in RGB order (what the tracker API takes); single-channel
images keep their dtype (uint8, uint16, float32) because the core's thermal normalisation
needs the radiometric values, not a pre-scaled copy.
"""

from __future__ import annotations

import cv2
import numpy as np

from m5l_tracker_ros import image_conv
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.typestore import COMPRESSED_IMAGE, IMAGE, typestore

# Raw encodings written by make-bag, chosen so that no pixel value changes on the way.
_STORE_ENCODINGS = {np.dtype(np.uint8): "mono8", np.dtype(np.uint16): "mono16", np.dtype(np.float32): "32FC1"}


def split_ns(stamp_ns: int) -> tuple[int, int]:
    return int(stamp_ns // 1_000_000_000), int(stamp_ns % 1_000_000_000)


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def make_header(stamp: int, frame_id: str):
    types = typestore().types
    sec, nanosec = split_ns(stamp)
    return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)


def encoding_for(array: np.ndarray) -> str:
    """The raw encoding that stores ``array`` losslessly (RGB order assumed for 3 channels)."""
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return "rgb8"
    if (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1)) and array.dtype in _STORE_ENCODINGS:
        return _STORE_ENCODINGS[array.dtype]
    raise BagError(f"cannot store a {array.dtype} image of shape {array.shape} in a bag "
                   f"(supported: HxWx3 uint8, HxW uint8/uint16/float32)")


def image_message(array: np.ndarray, stamp: int, frame_id: str):
    """A ``sensor_msgs/msg/Image`` holding ``array`` (see :func:`encoding_for`)."""
    encoding = encoding_for(array)
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    data = array.astype(array.dtype.newbyteorder("<"), copy=False).reshape(-1).view(np.uint8)
    return typestore().types[IMAGE](
        header=make_header(stamp, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=data.size // height, data=data)


def decode_image(msg, msgtype: str, role: str, where: str) -> np.ndarray:
    """Pixels of an Image or CompressedImage message as the tracker takes them.

    ``role`` is ``"rgb"`` or ``"thermal"``: raw images go through the node's own conversion
    (:mod:`m5l_tracker_ros.image_conv`, same encoding whitelist), so a bag decodes exactly as
    the node would decode it live. ``where`` names the topic in errors.
    """
    if msgtype == COMPRESSED_IMAGE:
        pixels = _decode_compressed(msg, where)
        return np.repeat(pixels[:, :, None], 3, axis=2) if role == "rgb" and pixels.ndim == 2 else pixels
    if msgtype != IMAGE:
        raise BagError(f"{where}: {msgtype} is not an image type (expected {IMAGE} or {COMPRESSED_IMAGE})")
    try:
        return image_conv.to_rgb(msg) if role == "rgb" else image_conv.to_thermal(msg)
    except ValueError as err:  # image_conv's rejection type (a ValueError naming the reason)
        raise BagError(f"{where}: {err}") from None


def _decode_compressed(msg, where: str) -> np.ndarray:
    data = np.asarray(msg.data, dtype=np.uint8)
    if "compresseddepth" in msg.format.lower():
        raise BagError(f"{where}: compressedDepth images are not supported (format {msg.format!r})")
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if pixels is None:
        raise BagError(f"{where}: cannot decode compressed image (format {msg.format!r}, {data.size} bytes)")
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    return pixels


def compressed_message(array: np.ndarray, stamp: int, frame_id: str, fmt: str = "png"):
    """A ``sensor_msgs/msg/CompressedImage`` (tests and users converting raw bags)."""
    to_encode = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buffer = cv2.imencode(f".{fmt}", to_encode)
    if not ok:
        raise BagError(f"cannot encode a {array.dtype} image of shape {array.shape} as {fmt}")
    return typestore().types[COMPRESSED_IMAGE](
        header=make_header(stamp, frame_id), format=fmt, data=buffer.reshape(-1))
