"""Boxes for dropped pairs: the optical-flow chain of m5l_core.tracking.propagate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from m5l_core.tracking.config import SearchConfig, TrackerConfig
from m5l_core.tracking.propagate import FlowPropagator

SHAPE = (240, 320)
STEP = np.array([3.0, -2.0])     # the scene moves this many pixels per frame


def textured_frame(offset: np.ndarray) -> np.ndarray:
    """A smooth random texture shifted by ``offset`` (x, y), as RGB: every pixel moves alike."""
    rng = np.random.default_rng(0)
    big = rng.integers(0, 255, (SHAPE[0] // 8 + 8, SHAPE[1] // 8 + 8), dtype=np.uint8)
    texture = cv2.GaussianBlur(cv2.resize(big, None, fx=8, fy=8, interpolation=cv2.INTER_CUBIC), (5, 5), 1.5)
    shift = np.float32([[1, 0, offset[0]], [0, 1, offset[1]]])
    moved = cv2.warpAffine(texture, shift, (texture.shape[1], texture.shape[0]), flags=cv2.INTER_LINEAR)
    crop = moved[16:16 + SHAPE[0], 16:16 + SHAPE[1]]
    return np.repeat(crop[:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def frames():
    return [textured_frame(STEP * i) for i in range(8)]


BOX = np.array([140.0, 100.0, 30.0, 24.0])


def test_dropped_pairs_wait_for_the_tracked_pair_before_them_then_follow_its_box(frames):
    propagator = FlowPropagator()
    propagator.started(0.0)
    for index in (1, 2):                          # dropped while frame 0 is being tracked
        propagator.dropped(index / 30, frames[index], f"pair {index}")
    assert propagator.predictions() == [], "frame 0's result is not in yet"
    propagator.result(0.0, frames[0], BOX)
    predicted = propagator.predictions()
    assert [p.payload for p in predicted] == ["pair 1", "pair 2"]
    for index, prediction in zip((1, 2), predicted, strict=True):
        assert prediction.stamp == index / 30
        assert np.allclose(prediction.box[:2], BOX[:2] + index * STEP, atol=0.5)
        assert np.array_equal(prediction.box[2:], BOX[2:]), "only the position moves"
    assert propagator.predictions() == [], "each dropped pair is predicted once"


def test_a_pair_dropped_after_the_next_tracked_one_waits_for_that_ones_result(frames):
    propagator = FlowPropagator()
    propagator.started(0.0)
    propagator.result(0.0, frames[0], BOX)
    propagator.started(3 / 30)                    # the tracker took frame 3 ...
    propagator.dropped(4 / 30, frames[4], "pair 4")   # ... and frame 4 was dropped meanwhile
    assert propagator.predictions() == []
    moved = BOX + [10, 5, 0, 0]
    propagator.result(3 / 30, frames[3], moved)
    (prediction,) = propagator.predictions()
    assert np.allclose(prediction.box[:2], moved[:2] + STEP, atol=0.5), "from frame 3's box, not frame 0's"


def test_a_dropped_pair_after_the_last_result_is_predicted_at_once(frames):
    propagator = FlowPropagator()
    propagator.started(0.0)
    propagator.result(0.0, frames[0], BOX)
    propagator.dropped(1 / 30, frames[1], "pair 1")
    assert len(propagator.predictions()) == 1


def test_no_prediction_after_a_failed_frame_or_before_the_latest_result(frames):
    propagator = FlowPropagator()
    propagator.started(0.0)
    propagator.dropped(1 / 30, frames[1], "pair 1")
    propagator.result(0.0, frames[0], None)       # lost: the tracker does not know where the target is
    assert propagator.predictions() == []
    propagator.started(2 / 30)
    propagator.result(2 / 30, frames[2], BOX)
    propagator.dropped(1 / 30, frames[1], "late")  # older than the latest result
    assert propagator.predictions() == []
    propagator.reset()
    propagator.dropped(3 / 30, frames[3], "pair 3")
    assert propagator.predictions() == [], "a reset forgets the last result"


def test_an_implausible_move_or_a_box_outside_the_image_stops_the_chain(frames):
    propagator = FlowPropagator(max_move=0.05)    # 5 % of a side per frame: the 3.6 px step is too far
    propagator.result(0.0, frames[0], BOX)
    propagator.dropped(1 / 30, frames[1], "pair 1")
    assert propagator.predictions() == []
    outside = FlowPropagator()
    outside.result(0.0, frames[0], np.array([400.0, 300.0, 30.0, 24.0]))
    outside.dropped(1 / 30, frames[1], "pair 1")
    assert outside.predictions() == []


def test_settings_come_from_the_tracker_and_bad_ones_are_refused():
    search = SearchConfig(flow_grid=6, flow_window=15, flow_levels=2, flow_max_move=3.0, flow_window_fit=0.5)
    propagator = FlowPropagator.for_tracker(TrackerConfig(search=search))
    assert (propagator.grid, propagator.window, propagator.levels, propagator.max_move,
            propagator.window_fit) == (6, 15, 2, 3.0, 0.5)
    assert FlowPropagator.for_tracker(None).grid == SearchConfig().flow_grid
    with pytest.raises(ValueError, match="grid >= 2"):
        FlowPropagator(grid=1)
    with pytest.raises(ValueError, match="window_fit >= 0"):
        FlowPropagator(window_fit=-1.0)
