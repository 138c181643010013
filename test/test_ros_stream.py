"""The synthetic RGB + thermal camera stream of the node tests, and checks of its premises.

:class:`Driver` publishes a moving textured target (rgb8 on a reliable publisher, mono16 on a
best-effort one, like two real camera drivers) at 30 Hz and records what the node answers.
The tests here check that the stream is what the node tests assume it is.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from m5l_tracker_ros.image_conv import ImageError, to_rgb, to_thermal  # noqa: E402

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
    diagnostics: list = field(default_factory=list)  # (message, values, stamp being published then)
    publishing: int = 0
    debug_images: list = field(default_factory=list)  # (stamp_ns, encoding, height, width)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_target(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        with self.lock:
            self.outputs.append((stamp, msg.state, (msg.x, msg.y, msg.width, msg.height), msg.latency,
                                 msg.header.frame_id))

    def on_diagnostics(self, msg) -> None:
        with self.lock:
            self.diagnostics += [(s.message, {kv.key: kv.value for kv in s.values}, self.publishing)
                                 for s in msg.status]

    def on_debug(self, msg) -> None:
        with self.lock:
            self.debug_images.append((msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg.encoding,
                                      msg.height, msg.width))

    def since(self, stamp_ns: int) -> list:
        with self.lock:
            return [o for o in self.outputs if o[0] >= stamp_ns]


class Driver:
    """Publishes the synthetic stream at 30 Hz and listens to the node, in this process."""

    def __init__(self, context, record: Record, namespace: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from m5l_tracker_ros.msg import TrackedTarget
        from sensor_msgs.msg import Image, RegionOfInterest
        from std_srvs.srv import Trigger
        self.node = rclpy.create_node("m5l_test_driver", context=context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        # One reliable and one best-effort camera: the node's sensor-data QoS must take both.
        self.rgb_pub = self.node.create_publisher(Image, f"{namespace}/rgb/image_raw", reliable)
        self.thermal_pub = self.node.create_publisher(Image, f"{namespace}/thermal/image_raw", best_effort)
        self.init_pub = self.node.create_publisher(RegionOfInterest, f"{namespace}/m5l_tracker/init",
                                                   reliable)
        self.reset_client = self.node.create_client(Trigger, f"{namespace}/m5l_tracker/reset")
        self.target_sub = self.node.create_subscription(TrackedTarget, "/m5l/target_bbox", record.on_target,
                                                        reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", record.on_diagnostics, 10)
        self.node.create_subscription(Image, f"{namespace}/m5l_tracker/debug_image", record.on_debug,
                                      best_effort)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.record, self.scene = record, Scene()
        self.frame, self.motion, self.next_tick = 0, 0.0, time.monotonic()

    def matched(self) -> bool:
        return (self.rgb_pub.get_subscription_count() > 0 and self.thermal_pub.get_subscription_count() > 0
                and self.target_sub.get_publisher_count() > 0 and self.init_pub.get_subscription_count() > 0)

    def box(self) -> tuple[float, float, float, float]:
        return target_box(self.motion)

    def step(self, kind: str = "valid", move: bool = True) -> int:
        """Publish one frame pair (kind: valid, float_thermal, malformed, rgb_only) at the 30 Hz tick."""
        stamp = self.next_stamp()
        box = self.box()
        rgb, thermal = self.scene.frames(box)
        if kind == "malformed":
            rgb_msg, thermal_msg = malformed(self.frame, rgb, thermal, stamp)
            self.record.malformed.add(stamp)
        else:
            rgb_msg = image(rgb, "rgb8", stamp)
            thermal_msg = (image(with_nans(thermal), "32FC1", stamp + 2_000_000) if kind == "float_thermal"
                           else image(thermal, "mono16", stamp + 2_000_000))
            if kind == "rgb_only":
                self.record.rgb_only.add(stamp)
            else:
                self.record.valid[stamp] = box
        self.next_tick = max(self.next_tick + PERIOD_NS / 1e9, time.monotonic() - 0.1)
        time.sleep(max(0.0, self.next_tick - time.monotonic()))
        self.record.publishing = stamp
        self.rgb_pub.publish(rgb_msg)
        if kind != "rgb_only":
            self.thermal_pub.publish(thermal_msg)
        self.frame += 1
        self.motion += 1.0 if move else 0.0
        return stamp

    def next_stamp(self) -> int:
        return BASE_NS + self.frame * PERIOD_NS

    def run(self, frames: int, **kw) -> int:
        first = self.next_stamp()
        for _ in range(frames):
            self.step(**kw)
        return first

    def run_until(self, predicate, timeout: float, **kw) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.step(**kw)
            if predicate():
                return True
        return False

    def reset(self) -> bool:
        from std_srvs.srv import Trigger
        future = self.reset_client.call_async(Trigger.Request())
        deadline = time.monotonic() + 10
        while not future.done() and time.monotonic() < deadline:
            self.step(move=False)
        return future.done() and future.result().success

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def with_nans(thermal: np.ndarray) -> np.ndarray:
    values = thermal.astype(np.float32) / 100.0 - 273.15   # a camera reporting degrees Celsius
    values[::7, ::11] = np.nan
    return values


def test_the_scene_draws_the_target_at_its_box():
    box = target_box(37)
    rgb, thermal = Scene().frames(box)
    ys, xs = np.nonzero(thermal >= 8000)
    assert (xs.min(), ys.min()) == (round(box[0]), round(box[1]))
    assert (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (TARGET, TARGET)
    assert rgb.shape == (*SIZE, 3) and thermal.dtype == np.uint16


def _usable(convert, msg) -> bool:
    try:
        convert(msg)
        return True
    except ImageError:
        return False


@pytest.mark.parametrize("case", range(9))
def test_each_malformed_frame_has_exactly_one_image_the_node_refuses(case):
    rgb, thermal = Scene().frames(target_box(0))
    rgb_msg, thermal_msg = malformed(case, rgb, thermal, BASE_NS)
    assert _usable(to_rgb, rgb_msg) != _usable(to_thermal, thermal_msg)


def test_float_thermal_frames_are_usable_despite_nans():
    values = with_nans(Scene().frames(target_box(0))[1])
    assert np.isnan(values).any() and to_thermal(image(values, "32FC1", BASE_NS)).dtype == np.float32
