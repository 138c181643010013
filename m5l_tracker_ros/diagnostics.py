"""Counters and rates of the node, and their ``diagnostic_msgs/DiagnosticStatus`` form."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from m5l_core.tracking.api import TrackState
from m5l_tracker_ros.delivery import Delivery, DeliveryMonitor

STATE_NAMES = {TrackState.NOT_INITIALISED: "not initialised", TrackState.TRACKING: "tracking",
               TrackState.LOST: "lost", TrackState.PREDICTED: "predicted"}


class RateWindow:
    """Events per second and mean/max of a value over the last ``window`` seconds."""

    def __init__(self, window: float = 2.0, clock=time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._events: collections.deque[tuple[float, float]] = collections.deque()

    def add(self, value: float) -> None:
        now = self._clock()
        self._events.append((now, value))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self._window:
            self._events.popleft()

    def rate(self) -> float:
        self._trim(self._clock())
        return len(self._events) / self._window

    def mean_max(self) -> tuple[float, float]:
        self._trim(self._clock())
        if not self._events:
            return 0.0, 0.0
        values = [v for _, v in self._events]
        return sum(values) / len(values), max(values)


@dataclass
class StreamWatch:
    """Arrival times of one image stream, to report it stale and log its return once."""

    name: str
    last_arrival: float | None = None
    stale: bool = False
    received: int = 0
    delivery: DeliveryMonitor = field(default_factory=DeliveryMonitor)

    def arrived(self, now: float, stamp_ns: int | None = None) -> None:
        self.last_arrival = now
        self.received += 1
        if stamp_ns is not None:
            self.delivery.add(stamp_ns)

    def poor_delivery(self, stream_timeout: float, min_ratio: float) -> Delivery | None:
        """The stream's delivery when less than ``min_ratio`` of the published images arrive."""
        delivery = self.delivery.estimate(stream_timeout)
        return delivery if delivery is not None and delivery.ratio < min_ratio else None

    def age(self, now: float) -> float | None:
        return None if self.last_arrival is None else now - self.last_arrival

    def update(self, now: float, timeout: float) -> str | None:
        """'stale' or 'recovered' when a stream seen before changes state, else None."""
        age = self.age(now)
        if age is None:
            return None  # never seen: reported in diagnostics, not worth a warning at start-up
        stale = age > timeout
        if stale == self.stale:
            return None
        self.stale = stale
        return "stale" if stale else "recovered"


@dataclass
class NodeStats:
    """Everything /diagnostics reports; updated from callbacks and the worker."""

    results: RateWindow = field(default_factory=RateWindow)
    rejected: collections.Counter = field(default_factory=collections.Counter)  # reason kind -> count
    tracker_errors: int = 0
    published: int = 0
    predicted: int = 0          # boxes published for dropped pairs (optical flow)
    state: TrackState = TrackState.NOT_INITIALISED
    stages: dict[str, RateWindow] = field(default_factory=dict)   # tracker stage -> its seconds
    counters: dict[str, int] = field(default_factory=dict)       # the tracker's, as of the last result
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_result(self, state: TrackState, latency: float, timings: dict[str, float] | None = None,
                      counters: dict[str, int] | None = None) -> None:
        """One published result; ``timings``: the tracker's seconds per stage of that frame (where
        a slow frame's time went: the conv layers, scoring, re-detection ...); ``counters``: its
        running totals (how far a learner thread has got: learning steps, updates, failures)."""
        with self.lock:
            if counters:
                self.counters = counters   # the session's copy (Outcome.counters): no second one
            self.results.add(latency)
            self.published += 1
            self.state = state
            for stage, seconds in (timings or {}).items():
                self.stages.setdefault(stage, RateWindow()).add(seconds)

    def record_predicted(self) -> None:
        with self.lock:
            self.predicted += 1

    def record_rejected(self, stream: str) -> None:
        with self.lock:
            self.rejected[stream] += 1

    def record_tracker_error(self) -> None:
        with self.lock:
            self.tracker_errors += 1


def build_status(name: str, stats: NodeStats, streams: list[StreamWatch], stream_timeout: float,
                 dropped_pairs: int, unpaired: int | None, now: float,
                 min_delivery: float = 0.0) -> DiagnosticStatus:
    """One DiagnosticStatus: OK while tracking with live streams, WARN otherwise."""
    with stats.lock:
        fps = stats.results.rate()
        mean_latency, max_latency = stats.results.mean_max()
        values = {
            "state": STATE_NAMES[stats.state],
            "fps": f"{fps:.2f}",
            "latency_mean_ms": f"{1000 * mean_latency:.1f}",
            "latency_max_ms": f"{1000 * max_latency:.1f}",
            "published": str(stats.published),
            "predicted": str(stats.predicted),
            "dropped_pairs": str(dropped_pairs),
            "rejected_rgb_images": str(stats.rejected["rgb"]),
            "rejected_thermal_images": str(stats.rejected["thermal"]),
            "tracker_errors": str(stats.tracker_errors),
        }
        for stage, window in stats.stages.items():
            mean, _ = window.mean_max()
            values[f"stage_{stage}_mean_ms"] = f"{1000 * mean:.1f}"
        for counter, count in stats.counters.items():
            values[f"total_{counter}"] = str(count)
        state = stats.state
    if unpaired is not None:
        values["unpaired_images"] = str(unpaired)
    problems = []
    for stream in streams:
        age = stream.age(now)
        values[f"{stream.name}_images"] = str(stream.received)
        values[f"{stream.name}_age_s"] = "never" if age is None else f"{age:.2f}"
        if age is None:
            problems.append(f"no {stream.name} images yet")
        elif age > stream_timeout:
            problems.append(f"{stream.name} stream stale")
        delivery = stream.delivery.estimate(stream_timeout)
        if delivery is not None:
            values[f"{stream.name}_received_hz"] = f"{delivery.received_hz:.1f}"
            values[f"{stream.name}_published_hz"] = f"{delivery.published_hz:.1f}"
            if delivery.ratio < min_delivery:
                problems.append(f"{stream.name} images lost in transport ({100 * delivery.ratio:.0f}% "
                                "delivered): give the publisher the Fast DDS large-image profile")
    if state == TrackState.LOST:
        problems.append("target lost")
    elif state == TrackState.NOT_INITIALISED:
        problems.append("waiting for an initial box")
    level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
    message = "; ".join(problems) if problems else f"tracking at {fps:.1f} Hz"
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id="",
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])
