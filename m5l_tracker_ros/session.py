"""The tracker and its life cycle (box requests, reset, re-creation), without ROS or threads.

Requests (a new box, a reset, a new tracker configuration) may come from any thread; they
are applied by :meth:`TrackingSession.step` on the next frame pair, in the worker, so the
tracker itself is only ever touched by one thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from m5l_core.tracking.api import RGBTTracker, TrackState

TrackerFactory = Callable[[], RGBTTracker]


class BoxError(ValueError):
    """An initial box is unusable (empty, or outside the image)."""


@dataclass(frozen=True)
class Outcome:
    """What the node publishes for one pair."""

    state: TrackState
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    score: float = 0.0
    rgb_weight: float = 0.0
    thermal_weight: float = 0.0


NOT_INITIALISED = Outcome(TrackState.NOT_INITIALISED)


class TrackingSession:
    """Applies init/reset requests and tracks one frame pair at a time."""

    def __init__(self, factory: TrackerFactory) -> None:
        self._lock = threading.Lock()
        self._factory = factory
        self._rebuild = True          # build on first use (or at start, by ensure_tracker)
        self._tracker: RGBTTracker | None = None
        self._pending_box: tuple[float, ...] | None = None
        self._pending_reset = False
        self._initialised = False
        self.last_state = TrackState.NOT_INITIALISED

    def request_box(self, box) -> None:
        """(Re)initialise on the next pair with ``box`` = (x, y, w, h) in RGB pixels."""
        values = tuple(float(v) for v in box)
        if len(values) != 4 or not np.all(np.isfinite(values)) or values[2] <= 0 or values[3] <= 0:
            raise BoxError(f"a box needs 4 finite values with positive width and height, got {values}")
        with self._lock:
            self._pending_box = values
            self._pending_reset = False

    def request_reset(self) -> None:
        """Forget the target: publish 'not initialised' until the next box."""
        with self._lock:
            self._pending_reset = True
            self._pending_box = None

    def replace_factory(self, factory: TrackerFactory) -> None:
        """Use a new tracker (e.g. new tracker parameters) from the next initialisation on."""
        with self._lock:
            self._factory = factory
            self._rebuild = True

    def ensure_tracker(self) -> RGBTTracker:
        """Build the tracker now if needed (the node calls this at start to fail early)."""
        with self._lock:
            factory, rebuild = self._factory, self._rebuild
            self._rebuild = False
        if rebuild or self._tracker is None:
            self._tracker = factory()
        return self._tracker

    def step(self, rgb: np.ndarray, thermal: np.ndarray) -> Outcome:
        """Apply pending requests, then initialise on or track this pair."""
        with self._lock:
            box, reset = self._pending_box, self._pending_reset
            self._pending_box, self._pending_reset = None, False
        if reset:
            self._initialised = False
        if box is not None:
            return self._initialise(rgb, thermal, box)
        if not self._initialised:
            self.last_state = TrackState.NOT_INITIALISED
            return NOT_INITIALISED
        result = self._tracker.track(rgb, thermal)
        self.last_state = result.state
        return Outcome(result.state, tuple(float(v) for v in np.asarray(result.box).reshape(4)),
                       float(result.score), float(result.rgb_weight), float(result.thermal_weight))

    def _initialise(self, rgb: np.ndarray, thermal: np.ndarray, box: tuple[float, ...]) -> Outcome:
        height, width = rgb.shape[:2]
        clipped = intersect_image(box, width, height)
        if clipped is None:  # keep tracking the previous target, if any
            raise BoxError(f"box {box} does not overlap the {width}x{height} image")
        tracker = self.ensure_tracker()  # a new one if the tracker parameters changed
        self._initialised = False       # stays False if initialize raises
        tracker.initialize(rgb, thermal, np.asarray(clipped, dtype=np.float64))
        self._initialised = True
        self.last_state = TrackState.TRACKING
        return Outcome(TrackState.TRACKING, clipped)


def intersect_image(box, width: int, height: int) -> tuple[float, float, float, float] | None:
    """The part of ``box`` inside the image, or None if less than one pixel wide or tall."""
    x, y, w, h = box
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return (x0, y0, x1 - x0, y1 - y0)
