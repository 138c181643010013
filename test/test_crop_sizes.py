"""Crop sizes reused from earlier frames (``search.size_reuse``, crop_sizes.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_realtime_tracking import tracker
from test_tracking import synthetic

from m5l_core.geometry import overlap_ratio
from m5l_core.tracking.config import RuntimeConfig
from m5l_core.tracking.crop_sizes import CropSizes
from m5l_core.tracking.runtime import NetworkInput
from m5l_core.tracking.search import SearchRegion


def region(width: int, height: int, scale: float = 2.0, x: float = 50.0, y: float = 40.0) -> SearchRegion:
    """A crop of ``width`` x ``height`` pixels at ``scale`` crop pixels per frame pixel."""
    return SearchRegion(box=np.array([x, y, width / scale, height / scale]), out_size=(width, height),
                        context=1.2, feature_offset=0.0)


def test_a_new_size_is_rounded_up_and_the_crop_padded_to_it_with_the_pixel_mean():
    before = region(300, 250)
    after = CropSizes(1.25).fit(before)
    assert after.input_size == (320, 256)
    # the crop itself, and so every RoI and which samples it holds, stays as it was
    assert after.out_size == before.out_size and np.array_equal(after.box, before.box)
    crop = np.full((250, 300, 3), 200, np.uint8)
    rgb, thermal = NetworkInput(torch.device("cpu"), RuntimeConfig())(crop, crop,
                                                                      size=after.input_size)
    assert rgb.shape == (1, 3, 256, 320) and thermal.shape == (1, 3, 256, 320)
    assert torch.all(rgb[..., 250:, :] == 0) and torch.all(rgb[..., :, 300:] == 0), "the mean: zero"
    assert torch.all(rgb[..., :250, :300] != 0)
    with pytest.raises(ValueError, match="cannot be padded"):
        NetworkInput(torch.device("cpu"), RuntimeConfig())(crop, size=(288, 256))


def test_a_size_met_before_is_reused_while_it_costs_at_most_the_slack():
    sizes = CropSizes(1.25)
    assert sizes.fit(region(300, 250)).input_size == (320, 256)
    assert sizes.fit(region(290, 240, x=80.0)).input_size == (320, 256), "smaller: reused"
    assert sizes.fit(region(330, 250)).input_size == (352, 256), "wider than any: a new size"
    assert sizes.fit(region(310, 256)).input_size == (320, 256), "the smallest that holds it"
    assert sizes.fit(region(210, 200)).input_size == (224, 224), "reuse would cost > 1.25x: new"


def test_small_crops_stay_exact_where_rounding_would_exceed_the_slack_and_a_pixel_bound_holds():
    assert CropSizes(1.25).fit(region(40, 36)).input_size is None
    assert CropSizes(1.25).fit(region(300, 250), max_pixels=300 * 250).input_size is None
    assert CropSizes(1.25).fit(region(320, 256)).input_size is None, "already a rounded size"


def test_a_slack_of_one_crops_every_frame_at_its_own_size():
    before = region(301, 251)
    assert CropSizes(1.0).fit(before) is before


def input_size(region: SearchRegion) -> tuple[int, int]:
    return region.input_size or tuple(region.out_size)


@pytest.fixture(scope="module")
def clean():
    return synthetic(n_frames=14, speed_range=(3.0, 5.0))


def track_with_gaps(t, seq) -> tuple[list, set]:
    """Every other frame with its stamp, as a live node that keeps up with half the camera's rate."""
    t.initialize(seq.rgb[0], seq.thermal[0], seq.gt_rgb[0], stamp=0.0)
    results, sizes = [], set()
    for i in range(2, len(seq.rgb), 2):
        results.append(t.track(seq.rgb[i], seq.thermal[i], stamp=i / 30))
        sizes.add(input_size(t.last_region))
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
    assert input_size(t.last_region) == quick
