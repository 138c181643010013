"""Issue #12, time-aware search: the spread and the velocity prediction after stamp gaps, and the
optical-flow proposal (flow.py) that follows a camera turn or a fast target across dropped frames.

With the tiny random network of test_tracking.py, as in test_realtime_tracking.py.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_realtime_tracking import SIDE, tracker
from test_tracking import synthetic

from m5l_core.geometry import overlap_ratio
from m5l_core.tracking.config import SearchConfig
from m5l_core.tracking.flow import fitted_window, grey, median_flow, points_scale, reliable_points
from m5l_core.tracking.motion import MotionModel


@pytest.fixture(scope="module")
def clean():
    return synthetic(n_frames=10, speed_range=(3.0, 5.0))


def test_the_spread_grows_with_the_stamp_gap_up_to_its_bound():
    motion = MotionModel(SearchConfig(gap_free=0.05, gap_exponent=1.0, max_trans=2.0))
    motion.reset(np.array([0.0, 0, 10, 10]), 0.0)
    spreads = {}
    for stamp in (0.04, 0.14, 1.14):
        motion.advance(stamp)
        spreads[round(motion.gap, 2)] = motion.spread(0.6)
    assert spreads == pytest.approx({0.04: 0.6, 0.1: 0.6 * 2, 1.0: 2.0})
    motion.advance(None)                          # no stamp: the next frame, nothing grows
    assert motion.spread(0.6) == 0.6


def test_the_search_moves_with_the_targets_velocity_only_after_a_gap():
    motion = MotionModel(SearchConfig(gap_free=0.05, velocity_weight=0.5))
    box = np.array([0.0, 0.0, 10.0, 10.0])
    motion.reset(box, 0.0)
    motion.advance(0.033)
    motion.good_frame(box + [3.0, -1.5, 0, 0])        # ~91 px/s right, ~45 px/s up
    motion.advance(0.066)                             # the next frame: around the last box
    np.testing.assert_array_equal(motion.predict(box), box)
    motion.advance(0.266)                             # 0.2 s later: half of 0.2 s of that motion
    shift = 0.5 * np.array([3.0, -1.5]) / 0.033 * 0.2
    np.testing.assert_allclose(motion.predict(box), [*shift, 10.0, 10.0])

def textured(seed: int = 0, shape=(240, 320)) -> np.ndarray:
    """Noise with fine and coarse structure (as real images have, for every pyramid level)."""
    rng = np.random.default_rng(seed)
    layers = [cv2.GaussianBlur(rng.integers(0, 256, (*shape, 3)).astype(np.float32), (0, 0), sigma)
              for sigma in (2, 10)]
    noise = sum((layer - layer.mean()) / layer.std() for layer in layers)
    return np.clip(noise * 30 + 128, 0, 255).astype(np.uint8)


def test_median_flow_follows_a_shift_of_the_boxs_content_and_gives_up_on_a_blank_image():
    image = textured()
    shifted = np.roll(image, (-4, 7), axis=(0, 1))                 # content 7 px right, 4 px up
    box = np.array([120.0, 90.0, 40.0, 30.0])
    shift = median_flow(grey(image), grey(shifted), box, grid=10, window=21, levels=4)
    np.testing.assert_allclose(shift, [7.0, -4.0], atol=0.5)
    far = np.roll(image, (30, -45), axis=(0, 1))                   # beyond one window: the pyramid
    np.testing.assert_allclose(median_flow(grey(image), grey(far), box, 10, 21, 4), [-45.0, 30.0], atol=1.0)
    blank = np.full_like(image, 90)
    assert median_flow(grey(blank), grey(blank), box, 10, 21, 4) is None


def test_median_flow_gives_no_move_when_the_boxs_points_scatter():
    """The box's content is replaced by noise (a small target over water after a gap: its points
    lock onto unrelated texture and scatter): no proposal; content moving together gives its move."""
    image = textured(seed=1)
    box = np.array([120.0, 90.0, 60.0, 40.0])
    replaced = image.copy()
    replaced[60:160, 90:210] = np.random.default_rng(3).integers(0, 256, (100, 120, 3))
    assert median_flow(grey(image), grey(replaced), box, 10, 21, 4) is not None          # no check
    assert median_flow(grey(image), grey(replaced), box, 10, 21, 4, max_disagreement=0.2) is None
    together = np.roll(image, 12, axis=1)
    np.testing.assert_allclose(median_flow(grey(image), grey(together), box, 10, 21, 4, max_disagreement=0.2),
                               [12.0, 0.0], atol=0.5)


def test_the_window_fitted_to_a_small_target_follows_it_and_not_the_stripes_beside_it():
    """A 7 px wide target moves 3 px while two bright stripes beside it (a boat's wake) move 12 px
    with the smooth ground: a 21 px window takes in the stripes and follows them, a window of the
    target's width follows the target."""
    rng = np.random.default_rng(0)
    ground = cv2.GaussianBlur(rng.integers(0, 256, (240, 320)).astype(np.float32), (0, 0), 12)
    ground = (ground - ground.mean()) / ground.std() * 8 + 120
    target = textured(seed=9, shape=(28, 7))[..., 0].astype(np.float32)
    box = np.array([150.0, 100.0, 7.0, 28.0])

    def frame(ground_dx: int, target_dx: int) -> np.ndarray:
        image = np.roll(ground, ground_dx, axis=1)
        for stripe in (140, 162):
            image[:, stripe + ground_dx:stripe + ground_dx + 4] += 80
        x = int(box[0]) + target_dx
        image[100:128, x:x + 7] = target
        return np.clip(image, 0, 255).astype(np.uint8)

    before, after = frame(0, 0), frame(12, 3)
    np.testing.assert_allclose(median_flow(before, after, box, 10, 21, 4, fit=1.0), [3.0, 0.0], atol=1.0)
    assert median_flow(before, after, box, 10, 21, 4)[0] > 9.0
    assert fitted_window(box, 21, 1.0) == 7 and fitted_window(box, 21, 0.0) == 21
    assert fitted_window(np.array([0.0, 0, 2, 2]), 21, 1.0) == 5            # never under 5 px
    assert fitted_window(np.array([0.0, 0, 60, 90]), 21, 1.0) == 21         # a large box: unchanged


def panned_scene(pan=(40, 25)):
    """A red target with a white cross in a textured world, seen by a camera that stands still for
    two frames, then turns so that everything moves ``pan`` pixels (1.7 target sides)."""
    world = textured(seed=5, shape=(400, 520))
    heat_world = np.full(world.shape[:2], 40, np.uint8)
    x, y = 200, 160
    world[y:y + SIDE, x:x + SIDE] = (230, 40, 40)
    world[y + SIDE // 2 - 3:y + SIDE // 2 + 3, x:x + SIDE] = 255
    world[y:y + SIDE, x + SIDE // 2 - 3:x + SIDE // 2 + 3] = 255
    heat_world[y:y + SIDE, x:x + SIDE] = 220
    cameras = [(100, 80), (100, 80), (100 - pan[0], 80 - pan[1])]
    rgb = [world[cy:cy + 240, cx:cx + 320].copy() for cx, cy in cameras]
    thermal = [heat_world[cy:cy + 240, cx:cx + 320].copy() for cx, cy in cameras]
    return rgb, thermal, np.array([(x - cx, y - cy, SIDE, SIDE) for cx, cy in cameras], dtype=np.float64)


@pytest.mark.parametrize("share", [0.5, 0.0])
def test_the_flow_proposal_finds_a_target_after_the_camera_turned_during_a_gap(share):
    rgb, thermal, gt = panned_scene()
    t = tracker(search={"flow_share": share, "max_trans": 1.0})
    t.initialize(rgb[0], thermal[0], gt[0], stamp=0.0)
    t.track(rgb[1], thermal[1], stamp=1 / 30)
    found = t.track(rgb[2], thermal[2], stamp=1 / 30 + 0.5)          # 14 frames dropped
    overlap = float(overlap_ratio(found.box, gt[2]))
    if share:
        assert overlap > 0.5
    else:
        assert overlap < 0.3, "the capped spread alone (1 side) cannot reach 1.7 sides"


@pytest.mark.parametrize("every_frame", [True, False])
def test_the_flow_proposal_on_every_frame_serves_sequences_without_stamps(every_frame):
    rgb, thermal, gt = panned_scene()
    t = tracker(search={"flow_every_frame": every_frame})
    t.initialize(rgb[0], thermal[0], gt[0])
    t.track(rgb[1], thermal[1])
    overlap = float(overlap_ratio(t.track(rgb[2], thermal[2]).box, gt[2]))
    assert (overlap > 0.5) == every_frame


def test_a_frame_searching_two_places_is_capped_like_a_widened_search():
    rgb, thermal, gt = panned_scene()
    areas = {}
    for ratio in (100.0, 1.1):
        t = tracker(search={"max_area_ratio": ratio})
        t.initialize(rgb[0], thermal[0], gt[0])
        t.track(rgb[1], thermal[1])
        ordinary = t.last_region.area
        t.track(rgb[2], thermal[2])                  # the proposal 1.7 sides away: two places
        areas[ratio] = t.last_region.area / ordinary
    assert areas[100.0] > 1.3, "the test needs a proposal that enlarges the crop"
    assert areas[1.1] <= 1.1 * 1.05


def test_without_a_gap_the_gap_only_flow_proposal_changes_nothing(clean):
    boxes = {}
    for share in (0.5, 0.0):
        t = tracker(search={"flow_share": share, "flow_every_frame": False})
        t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0], stamp=0.0)
        boxes[share] = [t.track(clean.rgb[i], clean.thermal[i], stamp=i / 30).box for i in range(1, 6)]
    np.testing.assert_array_equal(boxes[0.5], boxes[0.0])


def test_frames_at_the_camera_rate_are_tracked_as_without_stamps(clean):
    """A lockstep replay (stamps 1/30 s apart) equals the offline runner (no stamps), flow included."""
    boxes = {}
    for stamped in (True, False):
        t = tracker(search={"flow_every_frame": True})
        t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0], stamp=0.0 if stamped else None)
        boxes[stamped] = [t.track(clean.rgb[i], clean.thermal[i], stamp=i / 30 if stamped else None).box
                          for i in range(1, 6)]
    np.testing.assert_array_equal(boxes[True], boxes[False])


def test_a_skipped_second_widens_the_crop_within_the_cost_bound(clean):
    t = tracker(search={"max_area_ratio": 2.0, "max_trans": 2.0})
    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0], stamp=0.0)
    t.track(clean.rgb[1], clean.thermal[1], stamp=1 / 30)
    ordinary = t.last_region
    t.track(clean.rgb[2], clean.thermal[2], stamp=1 / 30 + 1.0)
    skipped = t.last_region
    assert skipped.box[2] > 1.8 * ordinary.box[2]                        # searches farther...
    ordinary_px, skipped_px = (np.prod(r.out_size) for r in (ordinary, skipped))
    assert skipped_px <= 2.0 * ordinary_px * 1.1                          # ...at bounded cost


@pytest.mark.parametrize("gap_scale", [False, True])
def test_the_scale_jitter_grows_with_the_stamp_gap_like_the_spread(clean, gap_scale):
    t = tracker(search={"gap_scale": gap_scale, "max_trans": 2.0, "flow_share": 0.0})
    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0], stamp=0.0)

    def size_range(stamp: float) -> float:
        candidates, _ = t._candidates(stamp, clean.rgb[1])   # advances the motion model to ``stamp``
        return float(candidates[:, 2].max() / candidates[:, 2].min())

    base = t.config.search.scale
    at_camera_rate = size_range(1 / 30)
    assert at_camera_rate <= base ** 2 * 1.001                 # scale ** +-1: the RT-MDNet jitter
    after_a_gap = size_range(1 / 30 + 0.5)                       # the spread grew to its bound
    assert after_a_gap > base ** 2 * 1.05 if gap_scale else after_a_gap <= base ** 2 * 1.001


def test_a_flow_proposal_beyond_the_targets_reach_for_the_gap_is_dropped():
    """45 px in one frame is 1.5 sides of a 30 px box: kept; with flow_max_move 1 per frame's worth
    of gap it is dropped, and after a gap 9 frames long (3 frames' worth at exponent 0.5) kept."""
    image = textured(seed=5)
    far = np.roll(image, 45, axis=1)
    box = np.array([140.0, 100.0, 30.0, 30.0])

    def proposal(max_move: float, gap: float):
        motion = MotionModel(SearchConfig(flow_max_move=max_move, flow_every_frame=True, gap_free=0.05))
        motion.reset(box, 0.0, image)
        motion.advance(gap, far)
        motion.follow(box)
        return motion.flow_proposal(box, 0.6)

    np.testing.assert_allclose(proposal(0.0, 1 / 30)[:2], box[:2] + [45.0, 0.0], atol=1.0)
    assert proposal(1.0, 1 / 30) is None
    np.testing.assert_allclose(proposal(1.0, 9 * 0.05)[:2], box[:2] + [45.0, 0.0], atol=1.0)


def zoomed(image: np.ndarray, centre: tuple[float, float], factor: float) -> np.ndarray:
    """``image`` magnified by ``factor`` about ``centre`` (a camera zooming in)."""
    matrix = cv2.getRotationMatrix2D(centre, 0.0, factor)
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


def test_the_flow_scale_follows_a_zoom_and_its_fit_tells_a_rigid_view_from_a_split_one():
    image = textured(seed=3)
    box = np.array([120.0, 80.0, 60.0, 60.0])
    points = reliable_points(grey(image), grey(zoomed(image, (150.0, 110.0), 1.08)), box, 10, 21, 4)
    scale, misfit = points_scale(*points, box)
    assert scale == pytest.approx(1.08, abs=0.01) and misfit < 0.01
    split = image.copy()                          # the box's left half goes left, its right half right
    split[:, :150] = np.roll(image, -12, axis=1)[:, :150]
    split[:, 150:] = np.roll(image, 12, axis=1)[:, 150:]
    scale, misfit = points_scale(*reliable_points(grey(image), grey(split), box, 10, 21, 4), box)
    assert misfit > 0.05


@pytest.mark.parametrize("zoom, weight, expected", [(1.05, 1.0, 1.05), (1.05, 0.5, 1.05 ** 0.5),
                                                    (1.05, 0.0, 1.0), (1.15, 1.0, 1.1)])
def test_the_box_searched_around_grows_with_the_flow_scale_within_one_frames_bound(zoom, weight, expected):
    image = textured(seed=4)
    box = np.array([130.0, 90.0, 40.0, 40.0])
    motion = MotionModel(SearchConfig(flow_scale=weight, flow_scale_fit=0.02, flow_every_frame=False,
                                      gap_free=0.05))
    motion.reset(box, 0.0, image)
    motion.advance(1 / 30, zoomed(image, (150.0, 110.0), zoom))
    motion.follow(box)
    resized = motion.rescaled(box)
    np.testing.assert_allclose(resized[2:], box[2:] * expected, rtol=0.01)
    np.testing.assert_allclose(resized[:2] + resized[2:] / 2, [150.0, 110.0], atol=1e-6)   # same centre


def test_the_box_keeps_its_size_where_the_points_fit_no_single_scale():
    image = textured(seed=4)
    box = np.array([130.0, 90.0, 40.0, 40.0])
    split = image.copy()                          # the box's halves move apart: "grows" without fitting
    split[:, :150] = np.roll(image, -6, axis=1)[:, :150]
    split[:, 150:] = np.roll(image, 6, axis=1)[:, 150:]
    motion = MotionModel(SearchConfig())          # the default: flow scale on, fit 0.005
    motion.reset(box, 0.0, image)
    motion.advance(1 / 30, split)
    motion.follow(box)
    np.testing.assert_array_equal(motion.rescaled(box), box)
    motion.advance(2 / 30, zoomed(split, (150.0, 110.0), 1.05))    # a plain zoom of the next frame
    motion.follow(box)
    assert motion.rescaled(box)[2] == pytest.approx(42.0, abs=0.4)
