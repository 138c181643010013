"""Subscriptions, pairing back-ends, QoS and output messages of the tracking node."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from m5l_core.tracking.api import TrackState
from m5l_tracker_ros.pairing import ApproximatePairer, stamp_to_ns
from m5l_tracker_ros.session import Outcome

STATE_COLOURS = {TrackState.TRACKING: (0, 255, 0), TrackState.LOST: (255, 0, 0),
                 TrackState.NOT_INITIALISED: (255, 255, 0)}


@dataclass(frozen=True)
class FramePair:
    """One RGB and one thermal message paired by stamp, and when the pair was complete."""

    rgb: Any
    thermal: Any
    completed: float  # time.monotonic()


def image_qos(kind: str, depth: int) -> QoSProfile:
    """sensor_data: best effort, which matches best-effort *and* reliable publishers."""
    reliability = ReliabilityPolicy.RELIABLE if kind == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def load_message_filters() -> Any | None:
    try:
        import message_filters
        return message_filters
    except ImportError:
        return None


class _Gate:
    """A message_filters-style source (registerCallback/signalMessage) for the synchronizer."""

    def __init__(self) -> None:
        self._callbacks: list[tuple[Callable[..., None], tuple]] = []

    def registerCallback(self, callback: Callable[..., None], *args: Any) -> int:  # noqa: N802 - upstream name
        self._callbacks.append((callback, args))
        return len(self._callbacks) - 1

    def signalMessage(self, msg: Any) -> None:  # noqa: N802 - upstream name
        for callback, args in self._callbacks:
            callback(msg, *args)


class PairedImageInput:
    """RGB + thermal subscriptions paired by approximate time; calls ``on_pair(FramePair)``.

    Every image first goes to ``admit(index, msg)``, which notes its arrival and returns False
    for an image that must not be paired (malformed). Admitted images are paired by
    message_filters' ApproximateTimeSynchronizer where installed, else by ApproximatePairer
    (same rules).
    """

    def __init__(self, node: Any, topics: tuple[str, str], qos: QoSProfile, queue_size: int, slop: float,
                 on_pair: Callable[[FramePair], None], admit: Callable[[int, Any], bool],
                 message_filters: Any | None = None) -> None:
        self._on_pair = on_pair
        self._admit = admit
        self._logger = node.get_logger()
        self.pairer: ApproximatePairer | None = None
        if message_filters is not None:
            self._gates = [_Gate(), _Gate()]
            self._sync = message_filters.ApproximateTimeSynchronizer(self._gates, queue_size, slop)
            self._sync.registerCallback(self._paired)
            self.backend = "message_filters"
        else:
            self.pairer = ApproximatePairer(2, queue_size, slop, self._paired)
            self.backend = "m5l_tracker_ros.pairing"
        self.subscriptions = [
            node.create_subscription(Image, topic, lambda msg, i=index: self._received(i, msg), qos)
            for index, topic in enumerate(topics)]

    def unpaired(self) -> int | None:
        """Images evicted from the pairing queues without a partner (own pairing only)."""
        return None if self.pairer is None else sum(self.pairer.evicted)

    def _received(self, index: int, msg: Any) -> None:
        try:
            if not self._admit(index, msg):
                return
            if self.pairer is not None:
                self.pairer.add(index, stamp_to_ns(msg.header.stamp), msg)
            else:
                self._gates[index].signalMessage(msg)
        except Exception as err:  # nothing may escape a subscription callback
            self._logger.error(f"image handling failed: {err!r}")

    def _paired(self, rgb: Any, thermal: Any) -> None:
        try:
            self._on_pair(FramePair(rgb, thermal, time.monotonic()))
        except Exception as err:
            self._logger.error(f"pair handling failed: {err!r}")


def fill_target(msg: Any, header: Any, outcome: Outcome, latency: float) -> Any:
    """Fill a TrackedTarget from one outcome, stamped like the RGB image."""
    msg.header = header
    msg.x, msg.y, msg.width, msg.height = (float(v) for v in outcome.box)
    msg.score = float(outcome.score) if np.isfinite(outcome.score) else 0.0
    msg.state = int(outcome.state)
    msg.rgb_weight = float(outcome.rgb_weight)
    msg.thermal_weight = float(outcome.thermal_weight)
    msg.latency = float(latency)
    return msg


def debug_image(header: Any, rgb: np.ndarray, outcome: Outcome) -> Image:
    """The RGB image (rgb8) with the box drawn in the colour of the state."""
    canvas = np.ascontiguousarray(rgb.copy())
    if outcome.state != TrackState.NOT_INITIALISED:
        x, y, w, h = (int(round(v)) for v in outcome.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), STATE_COLOURS[outcome.state], 2)
    height, width = canvas.shape[:2]
    return Image(header=header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                 step=width * 3, data=canvas.tobytes())
