"""OpenCV's classic single-object trackers (CSRT, KCF) behind the project's tracker API.

They track on the RGB frames only (the thermal frame is accepted and ignored), so the benchmark
runner, its result files and ``m5l-eval`` compare them with M5L on exactly the same footing:

    tracker = OpenCVTracker("csrt")
    tracker.initialize(rgb, thermal, (x, y, w, h))
    result = tracker.track(rgb, thermal)        # TrackResult; the last box is kept on a failure

CSRT and KCF live in OpenCV's contrib modules (``opencv-contrib-python-headless``).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from m5l_core.tracking.api import TrackerError, TrackResult

CLASSIC_TRACKERS: dict[str, str] = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF"}


def opencv_tracker_class(kind: str):
    """The OpenCV class of ``kind``, or a TrackerError saying what to install."""
    if kind not in CLASSIC_TRACKERS:
        raise TrackerError(f"unknown classic tracker {kind!r} (choose one of {', '.join(CLASSIC_TRACKERS)})")
    found = getattr(cv2, CLASSIC_TRACKERS[kind], None)
    if found is None:
        raise TrackerError(f"OpenCV {cv2.__version__} has no {CLASSIC_TRACKERS[kind]}: install "
                           "opencv-contrib-python-headless instead of opencv-python-headless")
    return found


def whole_pixel_box(box) -> tuple[int, int, int, int]:
    """OpenCV's trackers take an integer rectangle; a box without area is an error."""
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    if values.shape != (4,) or not np.all(np.isfinite(values)) or values[2] <= 0 or values[3] <= 0:
        raise TrackerError(f"initial box must be finite x, y, w, h with w, h > 0, got {list(values)}")
    x1, y1 = np.round(values[:2])
    x2, y2 = np.round(values[:2] + values[2:])
    return int(x1), int(y1), max(1, int(x2 - x1)), max(1, int(y2 - y1))


class OpenCVTracker:
    """``initialize``/``track`` around a fresh OpenCV tracker per target.

    ``stamp`` is accepted for the API's sake and ignored: OpenCV's trackers only see frames.
    """

    def __init__(self, kind: str = "csrt"):
        self.kind = kind
        self._factory = opencv_tracker_class(kind)
        self._tracker = None
        self._box = np.zeros(4)

    def initialize(self, rgb: np.ndarray, thermal: np.ndarray, box, stamp: float | None = None) -> None:
        rect = whole_pixel_box(box)
        self._tracker = self._factory.create()
        self._tracker.init(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), rect)
        self._box = np.asarray(box, dtype=np.float64).reshape(4).copy()

    def track(self, rgb: np.ndarray, thermal: np.ndarray, stamp: float | None = None) -> TrackResult:
        if self._tracker is None:
            raise TrackerError("track() called before initialize()")
        start = time.perf_counter()
        found, rect = self._tracker.update(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        seconds = time.perf_counter() - start
        if found:
            self._box = np.asarray(rect, dtype=np.float64)
        # CSRT reports its correlation peak; KCF only whether it found the target.
        score = float(self._tracker.getTrackingScore()) if hasattr(self._tracker, "getTrackingScore") \
            else float(found)
        return TrackResult(box=self._box.copy(), score=score, success=bool(found), rgb_weight=1.0,
                           thermal_weight=0.0, timings={"update": seconds})
