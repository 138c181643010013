"""Online tracking: the one tracker API, the M5L tracker, its config and loading.

    from m5l_core.tracking import load_tracker, TrackerConfig
    tracker = load_tracker(checkpoint=None, config=TrackerConfig(), device="auto", seed=0)
    tracker.initialize(rgb, thermal, (x, y, w, h))
    result = tracker.track(rgb, thermal)     # TrackResult(box, score, success, weights, timings)
"""

from m5l_core.tracking.api import RGBTTracker, TrackerError, TrackResult, TrackState
from m5l_core.tracking.config import (
    BoxRegressionConfig,
    InitConfig,
    OnlineOptimConfig,
    RuntimeConfig,
    SearchConfig,
    TrackerConfig,
    UpdateConfig,
)
from m5l_core.tracking.loading import default_model_path, load_tracker
from m5l_core.tracking.tracker import M5LTracker

__all__ = [
    "BoxRegressionConfig", "InitConfig", "M5LTracker", "OnlineOptimConfig", "RGBTTracker", "RuntimeConfig",
    "SearchConfig", "TrackResult", "TrackState", "TrackerConfig", "TrackerError", "UpdateConfig",
    "default_model_path", "load_tracker",
]
