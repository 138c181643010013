"""Crop sizes reused from earlier frames (``search.size_reuse``, crop_sizes.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_realtime_tracking import tracker
from test_tracking import synthetic

from m5l_core.crops import boxes_to_rois
from m5l_core.geometry import overlap_ratio
from m5l_core.tracking.crop_sizes import CropSizes
from m5l_core.tracking.search import SearchRegion


def region(width: int, height: int, scale: float = 2.0, x: float = 50.0, y: float = 40.0) -> SearchRegion:
    """A crop of ``width`` x ``height`` pixels at ``scale`` crop pixels per frame pixel."""
    return SearchRegion(box=np.array([x, y, width / scale, height / scale]), out_size=(width, height),
                        context=1.2, feature_offset=0.0)


def test_a_new_size_is_rounded_up_and_grown_about_the_centre_at_the_same_scale():
    before = region(300, 250)
    after = CropSizes(1.25).fit(before)
    assert after.out_size == (320, 256)
    assert np.allclose(np.array(after.out_size) / after.box[2:], 2.0), "the scale stays"
    assert np.allclose(after.box[:2] + after.box[2:] / 2, before.box[:2] + before.box[2:] / 2)
    # a candidate lands on the same image content: its RoI moves by the added margin only
    box = np.array([[90.0, 70.0, 30.0, 20.0]])
    shift = (np.array(after.out_size) - np.array(before.out_size)) / 2
    old = boxes_to_rois(box, before.box, before.out_size, 0, context=1.2)[0, 1:]
    new = boxes_to_rois(box, after.box, after.out_size, 0, context=1.2)[0, 1:]
    assert np.allclose(new - old, np.tile(shift, 2))
    # online learning keeps the samples of the crop before it grew
    boxes = np.random.default_rng(0).uniform([0, 0, 5, 5], [300, 250, 60, 60], (400, 4))
    assert np.array_equal(after.contains(boxes), before.contains(boxes))
    whole_crop = dataclasses.replace(after, sample_box=None)
    assert whole_crop.contains(boxes).sum() > before.contains(boxes).sum() > 0, "a test that can fail"


def test_a_size_met_before_is_reused_while_it_costs_at_most_the_slack():
    sizes = CropSizes(1.25)
    assert sizes.fit(region(300, 250)).out_size == (320, 256)
    assert sizes.fit(region(290, 240, x=80.0)).out_size == (320, 256), "smaller: reused"
    assert sizes.fit(region(330, 250)).out_size == (352, 256), "wider than any: a new size"
    assert sizes.fit(region(310, 256)).out_size == (320, 256), "the smallest that holds it"
    assert sizes.fit(region(210, 200)).out_size == (224, 224), "reuse would cost > 1.25x: new"


def test_small_crops_stay_exact_where_rounding_would_exceed_the_slack_and_a_pixel_bound_holds():
    assert CropSizes(1.25).fit(region(40, 36)).out_size == (40, 36)
    assert CropSizes(1.25).fit(region(300, 250), max_pixels=300 * 250).out_size == (300, 250)


def test_a_slack_of_one_crops_every_frame_at_its_own_size():
    before = region(301, 251)
    assert CropSizes(1.0).fit(before) is before


@pytest.fixture(scope="module")
def clean():
    return synthetic(n_frames=14, speed_range=(3.0, 5.0))


def track_with_gaps(t, seq) -> tuple[list, set]:
    """Every other frame with its stamp, as a live node that keeps up with half the camera's rate."""
    t.initialize(seq.rgb[0], seq.thermal[0], seq.gt_rgb[0], stamp=0.0)
    results, sizes = [], set()
    for i in range(2, len(seq.rgb), 2):
        results.append(t.track(seq.rgb[i], seq.thermal[i], stamp=i / 30))
        sizes.add(t.last_region.out_size)
    return results, sizes


def test_the_tracker_meets_fewer_sizes_still_holds_the_target_and_stays_deterministic(clean):
    free, free_sizes = track_with_gaps(tracker(), clean)
    reused, sizes = track_with_gaps(tracker(search={"size_reuse": 1.25}), clean)
    again, _ = track_with_gaps(tracker(search={"size_reuse": 1.25}), clean)
    assert len(free_sizes) >= 4 and len(sizes) <= len(free_sizes) // 2
    assert [r.box.tolist() for r in reused] == [r.box.tolist() for r in again]
    assert float(overlap_ratio(reused[-1].box, clean.gt_rgb[-2])) > 0.5


def test_the_first_frame_after_the_quick_crop_reuses_its_size(clean):
    t = tracker(search={"size_reuse": 1.25}, init={"quick_crop": True})
    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    quick = t.crop_sizes._sizes[0]
    t.track(clean.rgb[1], clean.thermal[1])
    assert t.last_region.out_size == quick
