"""Boxes for the pairs the tracker had no time for: the box of the tracked pair before them, moved
by optical flow.

A live node tracks the newest pair and drops the ones that arrive meanwhile (at 30 Hz on a
2-core CPU, about two of every three). Each dropped pair used to leave the robot with the last
tracked box, which lags a moving target by the frames in between: replayed every 3rd frame, the
VOT bag's tracked frames were within 20 px of the truth 92 % of the time and the held ones 55 %.
The median flow of a grid over the box (the same Lucas-Kanade points as the tracker's flow
proposal, :mod:`m5l_core.tracking.flow`) follows the target from a tracked frame through the
dropped frames after it, frame by frame, at a few milliseconds a frame.

A dropped pair waits for the result of the tracked pair before it (:meth:`FlowPropagator.result`):
flowing from an older result into it instead, as soon as it was dropped, placed boxes worse than
holding the last one (the result before it arrives a few frames late, and a rider 6 px wide is
lost over such gaps). So a prediction comes out about when that result does, never later than
the next one, and it is the freshest box there is for its frame.

A predicted box is not a tracking result: the node publishes it with its own state, it is never
fed back into the tracker, and it only moves the box (its size stays the tracker's). After a
failed frame the dropped pairs after it get nothing, and the chain stops where too few points
track both ways or a move is implausibly large.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from m5l_core.tracking.config import SearchConfig
from m5l_core.tracking.flow import grey, points_move, reliable_points

MARGIN_SIDES = 1.0    # the flow runs on the box grown by this many of its sides on every side ...
MARGIN_PX = 48        # ... and at least this many pixels: one frame's move, at a fraction of the cost
MIN_WINDOW_PX = 8
FLOW_SIDE_PX = 48     # larger boxes are followed at the scale that gives them this mean side
MAX_WAITING = 32      # dropped pairs kept waiting for a result (a stalled tracker must not grow memory)


@dataclass(frozen=True)
class Prediction:
    stamp: float
    box: np.ndarray       # (4,) x, y, w, h
    payload: Any          # what the caller handed over with the dropped pair (its message, say)


class FlowPropagator:
    """Thread-safe: the tracking thread reports :meth:`started` and :meth:`result`, the thread that
    drops pairs reports :meth:`dropped`, and any thread collects :meth:`predictions`."""

    def __init__(self, grid: int = 10, window: int = 21, levels: int = 4, max_move: float = 4.0,
                 window_fit: float = 1.0):
        if grid < 2 or window < 3 or levels < 0 or max_move < 0 or window_fit < 0:
            raise ValueError(f"flow propagation needs grid >= 2, window >= 3, levels >= 0, max_move >= 0 and "
                             f"window_fit >= 0; got {grid}, {window}, {levels}, {max_move}, {window_fit}")
        self.grid, self.window, self.levels, self.max_move = grid, window, levels, max_move
        self.window_fit = window_fit
        self._lock = threading.Lock()
        self._in_flight: list[float] = []                            # tracked pairs awaiting results
        self._anchor: tuple[float, np.ndarray, np.ndarray | None] | None = None   # stamp, grey, box
        self._waiting: list[tuple[float, np.ndarray, Any]] = []      # dropped pairs, by stamp

    @classmethod
    def for_tracker(cls, tracker_config) -> FlowPropagator:
        """With the flow settings (grid, window, its fit, levels, max move) of a ``TrackerConfig``'s
        search; the defaults for a tracker without them (a classic tracker, a test's fake)."""
        search = getattr(tracker_config, "search", None)
        if not isinstance(search, SearchConfig):
            return cls()
        return cls(search.flow_grid, search.flow_window, search.flow_levels, search.flow_max_move,
                   search.flow_window_fit)

    def started(self, stamp: float) -> None:
        """The tracker took the pair of ``stamp`` (seconds): pairs dropped after it wait for its result."""
        with self._lock:
            bisect.insort(self._in_flight, stamp)

    def result(self, stamp: float, rgb: np.ndarray, box) -> None:
        """The tracker's box for the pair of ``stamp`` on its RGB image; None when it found no target."""
        image = grey(rgb)
        with self._lock:
            # a pair whose step raised never reports: everything up to this one is done
            self._in_flight = [s for s in self._in_flight if s > stamp]
            box = None if box is None else np.asarray(box, dtype=np.float64).copy()
            self._anchor = (stamp, image, box)

    def dropped(self, stamp: float, rgb: np.ndarray, payload: Any = None) -> None:
        """A pair the tracker will not see; its prediction waits for the tracked pair before it."""
        image = grey(rgb)
        with self._lock:
            bisect.insort(self._waiting, (stamp, image, payload), key=lambda item: item[0])
            del self._waiting[:-MAX_WAITING]

    def reset(self) -> None:
        """A new target, or none: forget results and waiting pairs."""
        with self._lock:
            self._in_flight, self._anchor, self._waiting = [], None, []

    def predictions(self) -> list[Prediction]:
        """Every prediction that can be made now: the dropped pairs after the latest result and
        before the next tracked pair, the result's box moved through them frame by frame."""
        with self._lock:
            if self._anchor is None:
                return []
            stamp, previous, box = self._anchor
            until = min((s for s in self._in_flight if s > stamp), default=np.inf)
            ready = [item for item in self._waiting if stamp < item[0] < until]
            # pairs before the latest result can no longer get a fresher box than it: dropped
            self._waiting = [item for item in self._waiting if item[0] >= until]
        out = []
        for frame_stamp, image, payload in ready:
            box = None if box is None else self._step(previous, image, box)
            if box is None:
                break
            out.append(Prediction(frame_stamp, box, payload))
            previous = image
        return out

    def _step(self, previous: np.ndarray, current: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """``box`` moved by the median flow from one frame to the next, within a window around it."""
        if previous.shape != current.shape:
            return None
        x0, y0, x1, y1 = _window(box, previous.shape)
        if min(x1 - x0, y1 - y0) < MIN_WINDOW_PX:   # the box left the image
            return None
        # A large box is followed on a smaller copy of its window (mean side FLOW_SIDE_PX): the
        # grid's points are as many, and a 190 px box costs 3 ms a frame instead of 16.
        scale = min(1.0, FLOW_SIDE_PX / float(np.mean(box[2:])))
        before, after = (_scaled(image[y0:y1, x0:x1], scale) for image in (previous, current))
        local = (box - [x0, y0, 0, 0]) * scale
        points = reliable_points(before, after, local, self.grid, self.window, self.levels, self.window_fit)
        move = None if points is None else points_move(*points, local)
        if move is None:
            return None
        move = move / scale
        if self._beyond_reach(move, box):
            return None
        return np.concatenate([box[:2] + move, box[2:]])

    def _beyond_reach(self, move: np.ndarray, box: np.ndarray) -> bool:
        """Farther than ``max_move`` mean sides of the box in one frame (0 = no bound): points that
        locked onto something else, as the tracker's flow proposal judges them."""
        return self.max_move > 0 and float(np.hypot(*move)) > self.max_move * float(np.mean(box[2:]))


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _window(box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Pixel bounds (x0, y0, x1, y1) of the box grown by its margin, inside an image of ``shape``."""
    height, width = shape[:2]
    margin = np.maximum(MARGIN_SIDES * box[2:], MARGIN_PX)
    x0, y0 = (int(v) for v in np.floor(np.maximum(box[:2] - margin, 0)))
    x1 = int(np.ceil(min(box[0] + box[2] + margin[0], width)))
    y1 = int(np.ceil(min(box[1] + box[3] + margin[1], height)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)
