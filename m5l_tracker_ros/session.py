"""The tracker and its life cycle (box requests, reset, re-creation), without ROS or threads.

Requests (a new box, a reset, a new tracker configuration) may come from any thread; they
are applied by :meth:`TrackingSession.step` on the next frame pair, in the worker, so the
tracker itself is only ever touched by one thread.

Each pair's image stamp goes to the tracker, which widens its search after a gap (pairs dropped
while it was busy). Its online learning runs inside ``track`` within the tracker's per-frame
budget, so the session needs no scheduling of its own and a lockstep replay runs exactly the
offline runner's steps. The tracker built at start is warmed up (one throw-away initialisation
and frame), so the first real box does not pay for the math libraries' first calls.

A camera that changes resolution mid-stream (a driver reconfigured) keeps its field of view: the
tracker, which needs frames of one size, is initialised again on the new frame with the last box
scaled to it, and ``on_resize(old_size, new_size)`` is told.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from m5l_core.tracking.api import RGBTTracker, TrackState

TrackerFactory = Callable[[], RGBTTracker]
Size = tuple[int, int]  # width, height


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
    timings: dict[str, float] = field(default_factory=dict, compare=False)  # seconds per tracker stage
    # the tracker's running totals since its target was set (frames, failures, learning steps ...)
    counters: dict[str, int] = field(default_factory=dict, compare=False)


NOT_INITIALISED = Outcome(TrackState.NOT_INITIALISED)


class TrackingSession:
    """Applies init/reset requests and tracks one frame pair at a time."""

    def __init__(self, factory: TrackerFactory,
                 on_resize: Callable[[Size, Size], None] | None = None) -> None:
        self._on_resize = on_resize
        self._frame_size: Size | None = None   # of the frames the tracker was initialised on
        self._last_box: tuple[float, float, float, float] | None = None
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

    def ensure_tracker(self, warm_up: bool = True) -> RGBTTracker:
        """Build the tracker now if needed (the node calls this at start to fail early, and to warm
        it up while no target waits; a tracker rebuilt for new parameters at a box is not)."""
        with self._lock:
            factory, rebuild = self._factory, self._rebuild
            self._rebuild = False
        if rebuild or self._tracker is None:
            self.close()
            self._tracker = factory()
            warm = getattr(self._tracker, "warm_up", None)
            if warm_up and warm is not None:
                warm()
        return self._tracker

    def close(self) -> None:
        """Release the tracker (its learner thread, where it has one); the next step builds a new one."""
        tracker, self._tracker = self._tracker, None
        close = getattr(tracker, "close", None)
        if close is not None:
            close()

    def step(self, rgb: np.ndarray, thermal: np.ndarray, stamp: float | None = None) -> Outcome:
        """Apply pending requests, then initialise on or track this pair (``stamp``: its image
        stamp in seconds, or None)."""
        with self._lock:
            box, reset = self._pending_box, self._pending_reset
            self._pending_box, self._pending_reset = None, False
        if reset:
            self._initialised = False
        if box is not None:
            return self._initialise(rgb, thermal, box, stamp)
        if not self._initialised:
            self.last_state = TrackState.NOT_INITIALISED
            return NOT_INITIALISED
        size = (rgb.shape[1], rgb.shape[0])
        if size != self._frame_size:
            return self._follow_resize(rgb, thermal, size, stamp)
        result = self._tracker.track(rgb, thermal, **self._stamp_argument(self._tracker.track, stamp))
        self.last_state = result.state
        self._last_box = tuple(float(v) for v in np.asarray(result.box).reshape(4))
        return Outcome(result.state, self._last_box, float(result.score), float(result.rgb_weight),
                       float(result.thermal_weight), dict(result.timings),
                       dict(getattr(self._tracker, "counters", {})))

    def _follow_resize(self, rgb: np.ndarray, thermal: np.ndarray, size: Size,
                       stamp: float | None) -> Outcome:
        old = self._frame_size
        sx, sy = size[0] / old[0], size[1] / old[1]
        x, y, w, h = self._last_box
        outcome = self._initialise(rgb, thermal, (x * sx, y * sy, w * sx, h * sy), stamp)
        if self._on_resize is not None:
            self._on_resize(old, size)
        return outcome

    def _initialise(self, rgb: np.ndarray, thermal: np.ndarray, box: tuple[float, ...],
                    stamp: float | None) -> Outcome:
        height, width = rgb.shape[:2]
        clipped = intersect_image(box, width, height)
        if clipped is None:  # keep tracking the previous target, if any
            raise BoxError(f"box {box} does not overlap the {width}x{height} image")
        tracker = self.ensure_tracker(warm_up=False)  # a new one if the tracker parameters changed
        self._initialised = False       # stays False if initialize raises
        tracker.initialize(rgb, thermal, np.asarray(clipped, dtype=np.float64),
                           **self._stamp_argument(tracker.initialize, stamp))
        self._frame_size, self._last_box = (width, height), clipped
        self._initialised = True
        self.last_state = TrackState.TRACKING
        return Outcome(TrackState.TRACKING, clipped)


    @staticmethod
    def _stamp_argument(method: Callable, stamp: float | None) -> dict:
        """``{"stamp": stamp}`` for trackers that take stamps; trackers written before stamps
        (``track(rgb, thermal)``) still work, without the time-aware search."""
        if stamp is None or not _takes_stamp(method):
            return {}
        return {"stamp": stamp}


@functools.lru_cache(maxsize=64)
def _takes_stamp(method: Callable) -> bool:
    try:
        return "stamp" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def intersect_image(box, width: int, height: int) -> tuple[float, float, float, float] | None:
    """The part of ``box`` inside the image, or None if less than one pixel wide or tall."""
    x, y, w, h = box
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return (x0, y0, x1 - x0, y1 - y0)
