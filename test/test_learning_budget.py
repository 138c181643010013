"""Issue #12, the learning budget (learner.py): steps per frame, the learner thread, and what the
tracker's jobs learn from on it. The tiny random network of test_tracking.py on synthetic frames.
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
import torch
from test_realtime_tracking import ious, track_scene, tracker
from test_tracking import synthetic, tiny_model

from m5l_core.tracking import updates as updates_module
from m5l_core.tracking.api import TrackerError
from m5l_core.tracking.config import BudgetConfig
from m5l_core.tracking.learner import Learner
from m5l_core.tracking.online import OnlineClassifier, TrainingRun, learner_copy, online_parameters


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

    monkeypatch.setattr(updates_module, "TrainingRun", RecordingRun)
    release = threading.Event()

    def busy_learner():
        release.wait(10.0)
        yield

    t.learner.submit("busy", busy_learner())
    first_frame_positives = len(t._pos_memory.latest())
    assert t.track(clean.rgb[1], clean.thermal[1]).success
    assert "collect" in t.learner.pending           # the frame's samples are not pooled yet
    t.updates.queue(confident=False)                # what the next failed frame queues
    release.set()
    t.finish_learning()
    assert len(t._pos_memory.latest()) > first_frame_positives
    assert trained_on == [len(t._pos_memory.latest(t.config.update.short_term_frames))]
    t.close()


def test_a_learner_thread_mines_its_hard_negatives_from_its_own_smaller_pool(clean, monkeypatch):
    """``budget.thread_neg_candidates``: every SGD step on the learner thread scores that many
    negatives; the steps schedule keeps ``optim.neg_candidates`` (its boxes must not change)."""
    mined = []
    hard_negatives = OnlineClassifier._hard_negatives

    def recording(self, candidates):
        mined.append((threading.current_thread().name, len(candidates)))
        return hard_negatives(self, candidates)

    monkeypatch.setattr(OnlineClassifier, "_hard_negatives", recording)
    for mode, expected in (("thread", 100), ("steps", tracker().config.optim.neg_candidates)):
        mined.clear()
        t = tracker(budget={"mode": mode, "thread_neg_candidates": 100},
                    init={"iterations": 6, "quick_iterations": 2})
        t.initialize(clean.rgb[0], clean.thermal[0], clean.gt_rgb[0])
        t.track(clean.rgb[1], clean.thermal[1])
        t.finish_learning()
        t.close()
        later = [n for _, n in mined[2:]]            # after the quick fit's two steps
        assert len(later) >= 4 and set(later) == {expected}, mode
        assert {name for name, _ in mined[2:]} == {"m5l-learner" if mode == "thread" else "MainThread"}


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
