"""Issue #12: the learning budget, quick start, calibrated failures, re-detection (time-aware search:
test_time_aware_search.py).

All with the tiny random network of test_tracking.py (no dependence on the bundled model) on
synthetic frames; the scene for failures and re-detection is drawn here: a red target with a
white cross (hot in thermal) on a smooth textured background, which leaves the view and comes
back at the far side of the image.
"""

from __future__ import annotations

import gc
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from test_tracking import fast_config, synthetic, tiny_model

from m5l_core.geometry import overlap_ratio
from m5l_core.tracking import M5LTracker
from m5l_core.tracking import tracker as tracker_module
from m5l_core.tracking.api import TrackerError
from m5l_core.tracking.config import BudgetConfig
from m5l_core.tracking.learner import Learner
from m5l_core.tracking.online import TrainingRun, learner_copy, online_parameters

SIDE = 28
GONE = (8, 20)   # frames without the target: [8, 20)


def scene(frames: int = 36, gone: tuple[int, int] = GONE, seed: int = 0):
    """(rgb frames, thermal frames, ground truth with NaN rows while the target is out of view)."""
    rng = np.random.default_rng(seed)
    height, width = 240, 320
    background = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3)).astype(np.float32), (0, 0), 6)
    background = (background - background.mean()) * 3 + 110
    warm = cv2.GaussianBlur(rng.integers(0, 256, (height, width)).astype(np.float32), (0, 0), 8) * 0.5 + 20
    patch = np.empty((SIDE, SIDE, 3), np.float32)
    patch[...] = (230, 40, 40)
    patch[SIDE // 2 - 3:SIDE // 2 + 3, :] = patch[:, SIDE // 2 - 3:SIDE // 2 + 3] = 255
    rgb, thermal, gt = [], [], []
    for t in range(frames):
        frame, heat = background.copy(), warm.copy()
        if gone[0] <= t < gone[1]:
            gt.append((np.nan,) * 4)
        else:
            x, y = (40 + 2 * t, 50 + t) if t < gone[0] else (250 - (t - gone[1]), 180)
            frame[y:y + SIDE, x:x + SIDE] = patch
            heat[y:y + SIDE, x:x + SIDE] = 220
            gt.append((x, y, SIDE, SIDE))
        rgb.append(np.clip(frame, 0, 255).astype(np.uint8))
        thermal.append(np.clip(heat, 0, 255).astype(np.uint8))
    return rgb, thermal, np.array(gt, dtype=np.float64)


def tracker(**sections) -> M5LTracker:
    model, config = tiny_model()
    return M5LTracker(model, config, fast_config(**sections), "cpu", seed=0)


def track_scene(t: M5LTracker, frames):
    rgb, thermal, gt = frames
    t.initialize(rgb[0], thermal[0], gt[0])
    return [t.track(rgb[i], thermal[i]) for i in range(1, len(rgb))]


def ious(results, gt) -> np.ndarray:
    return np.array([float(overlap_ratio(r.box, g)) if np.isfinite(g[0]) else np.nan
                     for r, g in zip(results, gt[1:], strict=True)])


@pytest.fixture(scope="module")
def frames():
    return scene()


@pytest.fixture(scope="module")
def without_redetection(frames):
    return track_scene(tracker(redetect={"enabled": False}), frames)


@pytest.fixture(scope="module")
def clean():
    return synthetic(n_frames=10, speed_range=(3.0, 5.0))


# -- 1. the learning budget -----------------------------------------------------------------------

def test_learner_runs_the_budget_per_frame_and_newer_updates_replace_pending_ones():
    log = []

    def job(name, steps):
        for i in range(steps):
            log.append(f"{name}{i}")
            yield

    learner = Learner(BudgetConfig(steps_per_frame=1.5))
    learner.submit("init", job("i", 3))
    learner.submit("update", job("a", 5))
    assert [learner.run_frame(0.0) for _ in range(2)] == [1, 2]       # fractions accumulate
    learner.submit("update", job("b", 3))                              # replaces the pending "a"
    assert [learner.run_frame(0.0) for _ in range(2)] == [1, 2]
    assert log == ["i0", "a0", "i1", "i2", "b0", "b1"]                  # jobs take turns
    assert learner.run_frame(0.0) == 1 and log[-1] == "b2"
    assert [learner.run_frame(0.0) for _ in range(5)] == [0] * 5
    learner.submit("update", job("c", 10))
    assert learner.run_frame(0.0) <= 2, "idle frames bank no steps for a later burst"
    blocking = Learner(BudgetConfig(steps_per_frame=0))
    blocking.submit("update", job("d", 4))
    assert blocking.run_frame(0.0) == 4 and blocking.pending == ()


def test_budgeted_learning_is_deterministic_and_bounded_per_frame(clean):
    runs = []
    for _ in range(2):
        t = tracker(budget={"steps_per_frame": 1.0})
        t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
        boxes, steps = [], []
        for i in range(1, len(clean)):
            before = t.counters["learning_steps"]
            boxes.append(t.track(clean.rgb[i], clean.thermal[i]).box)
            steps.append(t.counters["learning_steps"] - before)
        runs.append(np.stack(boxes))
        # the first box goes out without learning; then one step per frame while work is pending
        assert steps == [0] + [1] * (len(steps) - 1)
    np.testing.assert_array_equal(runs[0], runs[1])
    blocking = tracker(budget={"steps_per_frame": 0.0})
    blocking.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    for i in (1, 2):
        blocking.track(clean.rgb[i], clean.thermal[i])
    assert blocking.learner.pending == ()       # RT-MDNet order: everything before the next frame


def test_a_learner_thread_runs_jobs_without_frames_and_publishes_outside_the_trackers_section():
    inside, published, stepped = threading.Event(), [], threading.Event()
    learner = Learner(BudgetConfig(mode="thread"), publish=lambda: published.append(inside.is_set()))

    def job(steps):
        for _ in range(steps):
            stepped.set()
            yield
    with learner.exclusive():
        inside.set()
        learner.submit("update", job(5))
        assert stepped.wait(5.0), "steps run while the tracker holds its section"
        time.sleep(0.1)
        assert published == [], "but nothing is published into it"
        inside.clear()
    learner.run_all()
    assert learner.pending == () and learner.steps == 5
    assert len(published) >= 5 and not any(published)
    assert learner.run_frame(0.0) == 0, "frames never run learning steps in thread mode"

    def broken():
        yield
        raise RuntimeError("boom")
    learner.submit("update", broken())
    learner.run_all()
    assert isinstance(learner.take_error(), RuntimeError) and learner.take_error() is None
    thread = learner._thread
    learner.stop()
    assert thread is not None and not thread.is_alive()



def test_the_learner_thread_rests_after_each_step_and_a_stop_ends_the_rest():
    step_ends = []

    def job():
        for _ in range(3):
            time.sleep(0.02)
            step_ends.append(time.perf_counter())
            yield
    learner = Learner(BudgetConfig(mode="thread", thread_duty=0.5))
    learner.submit("update", job())
    learner.run_all()
    rests = np.diff(step_ends)
    assert learner.steps == 3 and np.all(rests >= 0.035), "a 20 ms step is followed by ~20 ms of rest"
    resting = Learner(BudgetConfig(mode="thread", thread_duty=0.05))   # a 20 ms step: 380 ms of rest
    resting.submit("update", job())
    deadline = time.perf_counter() + 5.0
    while resting.steps < 1 and time.perf_counter() < deadline:
        time.sleep(0.005)
    started = time.perf_counter()
    resting.stop()
    assert time.perf_counter() - started < 0.3 and resting.steps == 1

def test_a_tracker_with_a_learner_thread_tracks_learns_and_leaves_no_thread_behind(clean):
    t = tracker(budget={"mode": "thread"}, init={"iterations": 20, "quick_iterations": 2},
                update={"long_term_interval": 3})
    results = track_scene(t, (clean.rgb, clean.thermal, clean.gt_rgb))
    t.finish_learning()
    assert t.learner.pending == () and t._regressor.fitted
    assert t.counters["learning_steps"] > 0
    assert t.counters["long_term_updates"] + t.counters["short_term_updates"] > 0
    assert np.nanmean(ious(results, clean.gt_rgb)) > 0.5
    thread = t.learner._thread
    assert thread is not None and thread.is_alive()
    del t
    gc.collect()
    thread.join(5.0)
    assert not thread.is_alive(), "a dropped tracker stops its learner thread"


def test_with_a_learner_thread_a_frames_samples_are_pooled_by_the_learner_and_all_kept(clean):
    """The tracking thread pools only the candidates; each confident frame's samples are pooled on
    the learner thread, and none is lost to a newer frame's (they do not replace each other)."""
    t = tracker(budget={"mode": "thread"}, init={"iterations": 20, "quick_iterations": 2},
                search={"success_threshold": -100.0})   # every successful frame collects samples
    pooled_by = []
    pool = t.network.pool

    def recording_pool(feats, region, boxes, model=None):
        pooled_by.append((threading.current_thread().name, len(boxes)))
        return pool(feats, region, boxes, model=model)

    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    t.network.pool = recording_pool
    results = [t.track(rgb, thermal) for rgb, thermal in zip(clean.rgb[1:], clean.thermal[1:], strict=True)]
    tracking = [n for name, n in pooled_by if name == threading.current_thread().name]
    assert set(tracking) == {t.config.search.n_candidates}
    t.finish_learning()
    learner = [n for name, n in pooled_by if name == "m5l-learner"]
    confident = sum(r.success and r.score > t.config.search.success_threshold for r in results)
    assert confident > 0 and t._pos_memory.added == 1 + confident   # the first frame's, then each one's
    assert len(learner) >= confident


def test_with_a_learner_thread_an_update_trains_on_the_samples_queued_before_it(clean, monkeypatch):
    """A confident frame's samples wait in the learner's queue to be pooled; an update queued after
    them takes its samples when it starts, so they are in it, as in the deterministic schedules."""
    t = tracker(budget={"mode": "thread"}, init={"iterations": 2, "quick_iterations": 2},
                search={"success_threshold": -100.0})   # every successful frame collects samples
    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    t.finish_learning()
    trained_on = []

    class RecordingRun(TrainingRun):
        def __init__(self, classifier, optimizer, pos, *args, **kwargs):
            trained_on.append(len(pos))
            super().__init__(classifier, optimizer, pos, *args, **kwargs)

    monkeypatch.setattr(tracker_module, "TrainingRun", RecordingRun)
    release = threading.Event()

    def busy_learner():
        release.wait(10.0)
        yield

    t.learner.submit("busy", busy_learner())
    first_frame_positives = len(t._pos_memory.latest())
    assert t.track(clean.rgb[1], clean.thermal[1]).success
    assert "collect" in t.learner.pending           # the frame's samples are not pooled yet
    t._queue_update(confident=False)                # what the next failed frame queues
    release.set()
    t.finish_learning()
    assert len(t._pos_memory.latest()) > first_frame_positives
    assert trained_on == [len(t._pos_memory.latest(t.config.update.short_term_frames))]
    t.close()


def test_the_learner_copy_owns_what_online_learning_changes_and_shares_the_rest():
    model = tiny_model()[0].eval()
    clone = learner_copy(model)
    own = {id(p) for p in online_parameters(clone)}
    assert own.isdisjoint(id(p) for p in online_parameters(model))
    shared = [p for p in clone.parameters() if id(p) not in own]
    assert shared and all(any(p is q for q in model.parameters()) for p in shared)
    with torch.no_grad():
        clone.fc4.weight.add_(1.0)
    assert not torch.equal(clone.fc4.weight, model.fc4.weight)
    clone.dropout.train(True)
    assert not model.dropout.training and "fc4" in dict(model.named_children())


def test_a_job_failing_on_the_learner_thread_is_raised_by_the_next_frame(clean):
    t = tracker(budget={"mode": "thread"})
    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])

    def broken():
        raise RuntimeError("out of memory")
        yield
    t.learner.submit("update", broken())
    t.finish_learning()
    with pytest.raises(TrackerError, match="learner thread: out of memory"):
        t.track(clean.rgb[1], clean.thermal[1])
    t.close()


# -- 2. quick start -----------------------------------------------------------------------------

def test_quick_start_gives_a_box_on_the_second_frame_and_finishes_in_the_budget(clean):
    t = tracker(init={"iterations": 20, "quick_iterations": 2}, budget={"pool_batch": 64})
    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    assert t.learner.pending == ("init",) and not t._regressor.fitted
    first = t.track(clean.rgb[1], clean.thermal[1])
    assert overlap_ratio(first.box, clean.gt_rgb[1]) > 0.5
    for i in range(2, len(clean)):
        t.track(clean.rgb[i], clean.thermal[i])
    t.finish_learning()
    assert t.learner.pending == () and t._regressor.fitted
    full = tracker(init={"iterations": 20, "quick_iterations": 20})
    full.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    assert full.learner.pending == () and full._regressor.fitted


def test_the_quick_crop_starts_on_a_smaller_crop_and_the_whole_crop_follows_in_the_budget(clean):
    pixels = {}
    for quick_crop in (False, True):
        t = tracker(init={"iterations": 20, "quick_iterations": 2, "quick_crop": quick_crop})
        seen = []
        features = t.network.features

        def spy(rgb, thermal, model=None, seen=seen, features=features):
            seen.append(rgb.shape[2] * rgb.shape[3])
            return features(rgb, thermal, model)

        t.network.features = spy
        t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
        pixels[quick_crop] = list(seen)
        first = t.track(clean.rgb[1], clean.thermal[1])
        assert overlap_ratio(first.box, clean.gt_rgb[1]) > 0.5
        t.finish_learning()
        assert t.learner.pending == () and t._regressor.fitted
        if quick_crop:   # the learner's first step ran the conv layers on the whole crop
            assert pixels[False][0] in seen[2:]
    assert len(pixels[False]) == len(pixels[True]) == 1
    assert pixels[True][0] < 0.6 * pixels[False][0]


# -- 4. failure signal --------------------------------------------------------------------------

def test_failure_flag_is_calibrated_on_target_and_raised_when_the_target_is_gone(frames, without_redetection):
    gt = frames[2]
    results = without_redetection
    overlap = ious(results, gt)
    on_target = overlap > 0.5
    flagged = np.array([not r.success for r in results])
    assert on_target[:GONE[0] - 1].all()
    assert not flagged[:GONE[0] - 1].any(), "on-target frames must not be LOST"
    assert flagged[GONE[0] - 1:GONE[1] - 1].all(), "frames without the target must be LOST"
    # the plain threshold (RT-MDNet) flags the same on-target frames: the tiny net is unsure
    plain = track_scene(tracker(failure={"calibrated": False}, redetect={"enabled": False}), frames)
    assert any(not r.success for r in plain[:GONE[0] - 1])


# -- 5. re-detection ----------------------------------------------------------------------------

def test_redetection_finds_the_target_after_it_leaves_and_returns(frames, without_redetection):
    gt = frames[2]
    back = GONE[1] - 1   # index in results of the first frame with the target back
    found = track_scene(tracker(redetect={"after_lost": 3}), frames)
    overlap = ious(found, gt)
    assert np.nanmax(overlap[back:back + 12]) > 0.5, "re-acquired within a sweep of the image"
    assert np.all(overlap[-5:] > 0.5) and all(r.success for r in found[-5:])
    assert np.all(ious(without_redetection, gt)[back:] < 0.1), "without re-detection it stays lost"



def test_a_learner_thread_redetects_without_the_tracking_thread_scoring_tiles():
    rgb, thermal, gt = scene(frames=48)
    t = tracker(redetect={"after_lost": 3}, budget={"mode": "thread"})
    t.initialize(rgb[0], thermal[0], gt[0])
    results, tile_seconds = [], []
    for i in range(1, len(rgb)):
        results.append(t.track(rgb[i], thermal[i]))
        tile_seconds.append(results[-1].timings.get("redetect", 0.0))
        t.finish_learning()   # let the tile job finish before the next frame: a repeatable test
    t.close()
    overlap = ious(results, gt)
    back = GONE[1] - 1
    assert t.counters["redetections"] >= 1
    assert np.nanmax(overlap[back:back + 20]) > 0.5 and np.all(overlap[-5:] > 0.5)
    assert max(tile_seconds) < 0.01, "the tracking thread only queues tiles"

def test_a_redetection_tile_costs_about_an_ordinary_frame(frames):
    """A tile larger than max_area_ratio ordinary crops is cropped at a coarser scale."""
    rgb, thermal, gt = frames
    t = tracker(redetect={"tile": 8.0})
    t.initialize(rgb[0], thermal[0], gt[0])
    ordinary = t._capped_region(t._candidates(None, rgb[1])[0], t.config.search.trans)
    t.redetection.sweep.start(gt[0][2:])
    tile = t.redetection.sweep.next_tile()
    uncapped, capped = t._region(tile), t._capped_region(tile)
    assert uncapped.area > 3 * ordinary.area, "the test needs a tile larger than the cap"
    assert capped.area <= 1.05 * t.config.search.max_area_ratio * ordinary.area


def test_a_pixel_bound_caps_every_frames_crop_and_the_target_is_still_held(clean):
    free = tracker()
    free.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    free.track(clean.rgb[1], clean.thermal[1])
    bound = int(0.75 * free.last_region.area)
    t = tracker(search={"max_crop_pixels": bound})
    t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
    for i in range(1, len(clean.rgb)):
        result = t.track(clean.rgb[i], clean.thermal[i])
        assert t.last_region.area <= 1.05 * bound
    assert float(overlap_ratio(result.box, clean.gt_rgb[-1])) > 0.5


def test_candidates_keep_the_aspect_unless_aspect_jitter_is_asked_for(clean):
    for aspect, varies in ((1.0, False), (1.2, True)):
        t = tracker(search={"aspect": aspect})
        t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
        candidates = t._candidates(None, clean.rgb[1])[0]
        box = clean.gt_rgb[0]
        change = np.log(candidates[:, 2] / candidates[:, 3] / (box[2] / box[3]))
        assert (np.ptp(change) > 0.1) == varies
        assert np.all(np.abs(change) <= 2 * np.log(aspect) + 1e-6), "width x r, height / r"
