"""The one tracker API used alike by the ROS node, the benchmark runner and the demo.

    tracker.initialize(rgb, thermal, box)     # box = (x, y, w, h) in RGB pixels
    result = tracker.track(rgb, thermal)      # -> TrackResult
    result = tracker.track(rgb, thermal, stamp=t)   # with the image time in seconds (live streams)

``rgb`` is an ``HxWx3`` uint8 array in RGB order; ``thermal`` is ``HxW`` or ``HxWx1|3``,
uint8 or uint16 (see :mod:`m5l_core.preprocess` for the normalisation and registration).
``stamp`` is optional: without it every call is the next frame of the sequence; with it a
tracker may account for frames skipped in between (a live stream whose pairs were dropped).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class TrackState(enum.IntEnum):
    """Tracking state; the numbers are those of ``TrackedTarget.msg``."""

    NOT_INITIALISED = 0
    TRACKING = 1
    LOST = 2
    PREDICTED = 3   # a pair the tracker had no time for: the last box moved by optical flow (node only)


@dataclass(frozen=True)
class TrackResult:
    box: np.ndarray                 # (4,) x, y, w, h in RGB pixels
    score: float                    # positive-class score of the chosen box (fc6 logit difference)
    success: bool                   # score above the failure threshold
    rgb_weight: float               # modality weights of the attention fusion, reported, not normalised
    thermal_weight: float
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of this frame

    @property
    def state(self) -> TrackState:
        return TrackState.TRACKING if self.success else TrackState.LOST


class RGBTTracker(Protocol):
    def initialize(self, rgb: np.ndarray, thermal: np.ndarray, box, stamp: float | None = None) -> None: ...

    def track(self, rgb: np.ndarray, thermal: np.ndarray, stamp: float | None = None) -> TrackResult: ...


class TrackerError(ValueError):
    """The tracker was misused: ``track`` before ``initialize``, or an invalid initial box."""


def check_initial_box(box, image_shape) -> np.ndarray:
    """``box`` as a (4,) float array; TrackerError naming the box when it cannot start a track."""
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise TrackerError(f"initial box must be 4 finite numbers x, y, w, h; got {box.tolist()}")
    if box[2] <= 0 or box[3] <= 0:
        raise TrackerError(f"initial box must have a positive width and height; got {box.tolist()}")
    height, width = image_shape[:2]
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise TrackerError(f"initial box {box.tolist()} lies outside the {width}x{height} frame")
    return box
