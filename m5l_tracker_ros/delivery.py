"""How many of a publisher's images reach the node, judged from the stamps that do arrive.

A camera driver without a Fast DDS profile for large images loses most 640x480 frames in
transport (GUIDE §3: 3 of 12 delivered); the node cannot fix the publisher, but it can tell.
Stamps reveal the publisher's rate: consecutive delivered frames differ by one period, and a
lost frame leaves a gap of two or more. The period is taken as a low percentile of the gaps
(robust to jitter and to most frames being lost); every gap of ``k`` periods then stands for
``k - 1`` lost frames. Gaps longer than ``outage_s`` are outages (the stream stopped: reported
as stale elsewhere), not transport losses. Duplicated stamps are ignored and a stamp going
backwards (a replayed bag, a clock jump) starts the estimate afresh.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
PERIOD_PERCENTILE = 0.1


@dataclass(frozen=True)
class Delivery:
    """Rates of one stream over the recent window: as stamped by the publisher and as received."""

    published_hz: float
    received_hz: float

    @property
    def ratio(self) -> float:
        return self.received_hz / self.published_hz if self.published_hz > 0 else 1.0


class DeliveryMonitor:
    """Stamps of the last ``window`` images of one stream -> :class:`Delivery`."""

    def __init__(self, window: int = 60, min_gaps: int = 10) -> None:
        self._stamps: collections.deque[int] = collections.deque(maxlen=window + 1)
        self._min_gaps = min_gaps

    def add(self, stamp_ns: int) -> None:
        if self._stamps:
            if stamp_ns == self._stamps[-1]:
                return
            if stamp_ns < self._stamps[-1]:
                self._stamps.clear()
        self._stamps.append(stamp_ns)

    def estimate(self, outage_s: float) -> Delivery | None:
        """None until ``min_gaps`` regular gaps were seen."""
        outage_ns = outage_s * NS_PER_S
        stamps = list(self._stamps)
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False) if b - a < outage_ns]
        if len(gaps) < self._min_gaps:
            return None
        period = sorted(gaps)[int(len(gaps) * PERIOD_PERCENTILE)]
        published = sum(max(1, round(gap / period)) for gap in gaps)
        span_s = sum(gaps) / NS_PER_S
        return Delivery(published_hz=published / span_s, received_hz=len(gaps) / span_s)


def transport_advice(stream: str, delivery: Delivery) -> str:
    """The warning for a stream that loses images in transport, naming the fix."""
    return (f"{stream} images: {100 * delivery.ratio:.0f}% delivered ({delivery.received_hz:.1f} of "
            f"{delivery.published_hz:.1f} Hz stamped by the publisher). Large images need a Fast DDS profile "
            "with a big shared-memory segment on the publisher too: start the camera driver with "
            "FASTDDS_DEFAULT_PROFILES_FILE (Jazzy: FASTRTPS_DEFAULT_PROFILES_FILE) naming "
            "share/m5l_tracker_ros/config/fastdds_large_images.xml")
