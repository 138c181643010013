"""The tracking node as users run it: a separate process in an isolated ROS domain.

A synthetic RGB (rgb8, reliable) + thermal (mono16, best effort) stream at 30 Hz with a moving
target goes in; /m5l/target_bbox and /diagnostics are checked through phases: tracking, a burst
of malformed images, a thermal stream that stops and resumes, a reset and a new box on ~/init.
Assertions are on counts and stamps, never on timing.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from m5l_tracker_ros import workspace  # noqa: E402

pytestmark = pytest.mark.ros

SIZE = (144, 192)        # height, width
TARGET = 32              # side of the square target, pixels
PERIOD_NS = 33_333_333   # 30 Hz
BASE_NS = 1_000_000 * 10**9


def target_box(m: float) -> tuple[float, float, float, float]:
    """Ground-truth box at motion time ``m`` (frames of movement so far)."""
    x = 80 + 45 * math.sin(2 * math.pi * m / 240)
    y = 56 + 22 * math.sin(2 * math.pi * m / 180)
    return (x, y, TARGET, TARGET)


class Scene:
    """Textured target on a textured background; the thermal target is hot."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        h, w = SIZE
        yy, xx = np.mgrid[0:h, 0:w]
        grad = (60 + 40 * np.sin(xx / 17.0) * np.cos(yy / 23.0))[..., None]
        self.rgb_bg = np.clip(grad + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        self.th_bg = (3000 + 300 * np.sin(xx / 29.0) + rng.normal(0, 80, (h, w))).astype(np.uint16)
        checker = ((np.arange(TARGET)[:, None] // 8 + np.arange(TARGET)[None, :] // 8) % 2).astype(bool)
        self.rgb_patch = np.where(checker[..., None], [230, 60, 40], [250, 220, 60]).astype(np.uint8)
        self.th_patch = np.where(checker, 9000, 8000).astype(np.uint16)

    def frames(self, box) -> tuple[np.ndarray, np.ndarray]:
        x, y = int(round(box[0])), int(round(box[1]))
        rgb, thermal = self.rgb_bg.copy(), self.th_bg.copy()
        rgb[y:y + TARGET, x:x + TARGET] = self.rgb_patch
        thermal[y:y + TARGET, x:x + TARGET] = self.th_patch
        return rgb, thermal


def image(array, encoding, stamp_ns, **fields):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    array = np.ascontiguousarray(array)
    msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=0,
                step=array.strides[0], data=array.tobytes())
    msg.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    msg.header.frame_id = "rgb_camera" if encoding == "rgb8" else "thermal_camera"
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def malformed(case: int, rgb, thermal, stamp_ns):
    """(rgb_msg, thermal_msg) with exactly one malformed image, for burst frame ``case``."""
    good_rgb, good_th = image(rgb, "rgb8", stamp_ns), image(thermal, "mono16", stamp_ns)
    bad = [
        ("rgb", image(rgb, "yuv422", stamp_ns)),
        ("rgb", image(rgb, "rgb8", stamp_ns, step=10)),
        ("rgb", image(rgb, "rgb8", stamp_ns, data=b"\x01" * 100)),
        ("rgb", image(rgb, "rgb8", stamp_ns, height=0, width=0, step=0, data=b"")),
        ("rgb", image(thermal.astype(np.float32), "32FC1", stamp_ns)),
        ("thermal", image(thermal, "bgra8", stamp_ns)),
        ("thermal", image(np.full(thermal.shape, np.nan, np.float32), "32FC1", stamp_ns)),
        ("thermal", image(thermal, "mono16", stamp_ns, step=thermal.strides[0] + 1)),
        ("thermal", image(thermal, "mono16", stamp_ns, width=100_000, height=1)),
    ][case % 9]
    return (bad[1], good_th) if bad[0] == "rgb" else (good_rgb, bad[1])


@dataclass
class Record:
    """What the test saw: published stamps per kind, and every message from the node."""

    valid: dict = field(default_factory=dict)     # stamp_ns -> ground-truth box (both images valid)
    malformed: set = field(default_factory=set)
    rgb_only: set = field(default_factory=set)
    outputs: list = field(default_factory=list)   # (stamp_ns, state, box, latency, arrival index)
    diagnostics: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_target(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        with self.lock:
            self.outputs.append((stamp, msg.state, (msg.x, msg.y, msg.width, msg.height), msg.latency,
                                 msg.header.frame_id))

    def on_diagnostics(self, msg) -> None:
        with self.lock:
            self.diagnostics += [(s.message, {kv.key: kv.value for kv in s.values}) for s in msg.status]

    def since(self, stamp_ns: int) -> list:
        with self.lock:
            return [o for o in self.outputs if o[0] >= stamp_ns]
