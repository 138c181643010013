"""Issue #12: the conv layers' time budget bounds a frame's crop in the realtime schedules only.

The tracker tests use the tiny random network of test_tracking.py. A budget far below any real
frame's conv time (a microsecond) holds every measured crop to the floor whatever this machine's
speed, so nothing here depends on timing.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_realtime_tracking import tracker
from test_tracking import run, synthetic

from m5l_core.tracking.crop_budget import MIN_FRAMES, MIN_SHARE, RECENT_FRAMES, STEP, CropBudget

ORDINARY = 100_000.0


def test_the_bound_is_the_budget_at_the_median_time_per_pixel():
    budget = CropBudget(conv_ms=50.0, active=True)
    for seconds in (0.05, 0.04, 0.5):          # 0.5 ms, 0.4 ms and 5 ms per 1000 pixels
        assert budget.max_pixels(ORDINARY) == np.inf   # too few frames measured yet
        budget.record(100_000, seconds)
    # median 0.5 us per pixel: the one slow frame (a crop size met the first time) does not count
    assert budget.max_pixels(ORDINARY) == pytest.approx(100_000)


def test_a_slow_machine_crops_coarser_but_never_below_the_floor():
    budget = CropBudget(conv_ms=50.0, active=True)
    for _ in range(RECENT_FRAMES):
        budget.record(100_000, 0.2)
    assert budget.max_pixels(ORDINARY) == pytest.approx(25_000)
    assert budget.max_pixels(4 * ORDINARY) == pytest.approx(MIN_SHARE * 4 * ORDINARY)
    for _ in range(RECENT_FRAMES):              # the load went away: the old frames no longer count
        budget.record(100_000, 0.025)
    assert budget.max_pixels(ORDINARY) == pytest.approx(200_000)


def test_below_an_ordinary_crop_the_bound_moves_in_steps():
    budget = CropBudget(conv_ms=50.0, active=True)
    for seconds in (0.05 / 0.9, 0.05 / 0.85, 0.05 / 0.95):   # 90k, 85k and 95k pixels would fit
        budget.record(100_000, seconds)
        bound = budget.max_pixels(ORDINARY)
    assert bound == pytest.approx(ORDINARY / STEP)             # one step down, whichever of them
    for _ in range(3):                                        # most recent frames: 70k fit
        budget.record(100_000, 0.05 / 0.7)
    assert budget.max_pixels(ORDINARY) == pytest.approx(ORDINARY / STEP ** 2)


@pytest.mark.parametrize("conv_ms, active", [(0.0, True), (50.0, False)])
def test_off_or_in_the_deterministic_schedule_it_never_bounds(conv_ms, active):
    budget = CropBudget(conv_ms, active)
    for _ in range(RECENT_FRAMES):
        budget.record(100_000, 10.0)
    assert budget.max_pixels(ORDINARY) == np.inf


def crop_areas(t, sequence) -> list[float]:
    t.initialize(sequence.rgb[0], sequence.thermal[0], sequence.gt_rgb[0])
    areas = []
    for i in range(1, len(sequence)):
        t.track(sequence.rgb[i], sequence.thermal[i])
        areas.append(t.last_region.area)
    t.close()
    return areas


@pytest.fixture(scope="module")
def sequence():
    return synthetic(n_frames=10, width=320, height=240)


def test_in_the_thread_schedule_a_tight_budget_holds_crops_to_the_floor(sequence):
    free = crop_areas(tracker(budget={"mode": "thread"}), sequence)
    t = tracker(budget={"mode": "thread", "conv_ms": 1e-3})
    bounded = crop_areas(t, sequence)
    assert bounded[:MIN_FRAMES] == free[:MIN_FRAMES]        # nothing measured yet: as without
    ordinary = [t._ordinary_region(box).area for box in sequence.gt_rgb[MIN_FRAMES:-1]]
    late = np.array(bounded[MIN_FRAMES:])
    assert np.all(late < 0.5 * np.array(free[MIN_FRAMES:]))
    # the floor: a quarter of an ordinary crop (its target's side halved), give or take the margin
    assert np.all(late > 0.15 * np.array(ordinary))


def test_the_steps_schedule_ignores_the_budget_and_stays_reproducible(sequence):
    boxes = [r.box for r in run(tracker(), sequence)]
    budgeted = [r.box for r in run(tracker(budget={"conv_ms": 1e-3}), sequence)]
    np.testing.assert_array_equal(np.stack(boxes), np.stack(budgeted))

