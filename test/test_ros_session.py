"""Tracker life cycle (init, reset, re-creation) and the newest-pair worker, without ROS."""

import threading

import numpy as np
import pytest

from m5l_core.tracking.api import TrackResult, TrackState
from m5l_tracker_ros.session import BoxError, TrackingSession, intersect_image
from m5l_tracker_ros.worker import LatestWorker


class FakeTracker:
    def __init__(self, name="t"):
        self.name, self.inits, self.tracks, self.closed = name, [], 0, False

    def close(self):
        self.closed = True

    def initialize(self, rgb, thermal, box):
        self.inits.append(np.asarray(box).tolist())

    def track(self, rgb, thermal):
        self.tracks += 1
        return TrackResult(np.array([1.0, 2.0, 3.0, 4.0]), 0.5, self.tracks % 2 == 1, 0.7, 0.3)


@pytest.fixture
def frames():
    return np.zeros((40, 60, 3), np.uint8), np.zeros((40, 60), np.uint8)


def test_not_initialised_until_a_box_then_tracking(frames):
    built = []
    session = TrackingSession(lambda: built.append(FakeTracker()) or built[-1])
    assert session.step(*frames).state == TrackState.NOT_INITIALISED
    session.request_box((5, 6, 10, 12))
    first = session.step(*frames)
    assert first.state == TrackState.TRACKING and first.box == (5.0, 6.0, 10.0, 12.0)
    second = session.step(*frames)
    assert second.box == (1.0, 2.0, 3.0, 4.0) and second.rgb_weight == 0.7
    assert session.step(*frames).state == TrackState.LOST
    assert len(built) == 1 and built[0].inits == [[5.0, 6.0, 10.0, 12.0]]


def test_an_outcome_carries_a_copy_of_the_trackers_totals(frames):
    tracker = FakeTracker()
    tracker.counters = {"frames": 1, "learning_steps": 7}
    session = TrackingSession(lambda: tracker)
    session.request_box((5, 6, 10, 12))
    assert session.step(*frames).counters == {}         # an initialisation tracks no frame
    outcome = session.step(*frames)
    tracker.counters["frames"] = 2
    assert outcome.counters == {"frames": 1, "learning_steps": 7}


class StampedTracker(FakeTracker):
    """Takes image stamps (time-aware search) and can be warmed up."""

    def __init__(self):
        super().__init__()
        self.stamps, self.warm = [], 0

    def warm_up(self):
        self.warm += 1

    def initialize(self, rgb, thermal, box, stamp=None):
        super().initialize(rgb, thermal, box)
        self.stamps.append(stamp)

    def track(self, rgb, thermal, stamp=None):
        self.stamps.append(stamp)
        return super().track(rgb, thermal)


def test_stamps_reach_trackers_that_take_them_and_new_trackers_are_warmed_up(frames):
    stamped = StampedTracker()
    session = TrackingSession(lambda: stamped)
    session.ensure_tracker()
    session.request_box((5, 6, 10, 12))
    for stamp in (10.0, 10.04, 11.5):
        session.step(*frames, stamp)
    session.step(*frames)
    assert stamped.stamps == [10.0, 10.04, 11.5, None] and stamped.warm == 1
    legacy = FakeTracker()   # track(rgb, thermal) without stamps still works
    session = TrackingSession(lambda: legacy)
    session.request_box((5, 6, 10, 12))
    assert session.step(*frames, 1.0).state == TrackState.TRACKING
    assert session.step(*frames, 1.1).box == (1.0, 2.0, 3.0, 4.0) and legacy.tracks == 1


def test_reset_forgets_the_target_until_the_next_box(frames):
    tracker = FakeTracker()
    session = TrackingSession(lambda: tracker)
    session.request_box((0, 0, 8, 8))
    session.step(*frames)
    session.request_reset()
    assert session.step(*frames).state == TrackState.NOT_INITIALISED
    assert session.step(*frames).state == TrackState.NOT_INITIALISED
    session.request_box((1, 1, 8, 8))
    assert session.step(*frames).state == TrackState.TRACKING
    assert tracker.inits == [[0, 0, 8, 8], [1, 1, 8, 8]]


def test_a_box_partly_outside_is_clipped_and_one_outside_is_refused(frames):
    session = TrackingSession(FakeTracker)
    session.request_box((-5, 30, 20, 20))
    assert session.step(*frames).box == (0.0, 30.0, 15.0, 10.0)
    session.request_box((100, 100, 5, 5))
    with pytest.raises(BoxError, match="does not overlap"):
        session.step(*frames)
    assert session.step(*frames).state in (TrackState.TRACKING, TrackState.LOST)  # still on the old target
    with pytest.raises(BoxError):
        session.request_box((1, 1, 0, 5))
    assert intersect_image((58.5, 0, 10, 10), 60, 40) is not None


def test_a_new_factory_is_used_from_the_next_initialisation(frames):
    built = []

    def factory(name):
        return lambda: built.append(FakeTracker(name)) or built[-1]

    session = TrackingSession(factory("old"))
    session.request_box((0, 0, 8, 8))
    session.step(*frames)
    session.replace_factory(factory("new"))
    session.step(*frames)
    assert [t.name for t in built] == ["old"] and built[0].tracks == 1
    session.request_box((0, 0, 8, 8))
    session.step(*frames)
    assert [t.name for t in built] == ["old", "new"] and built[1].inits == [[0, 0, 8, 8]]
    assert built[0].closed and not built[1].closed, "the replaced tracker is released (learner thread)"
    session.close()
    assert built[1].closed


def test_worker_processes_the_newest_item_and_counts_the_dropped_ones():
    gate, started, seen = threading.Event(), threading.Event(), []

    def handle(item):
        started.set()
        gate.wait(5)
        seen.append(item)

    worker = LatestWorker(handle, capacity=1)
    worker.start()
    worker.submit(0)                       # taken at once, then blocks on the gate
    assert started.wait(5)
    dropped = [worker.submit(i) for i in range(1, 6)]
    gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    assert seen == [0, 5] and dropped == [0, 1, 1, 1, 1] and worker.dropped == 4


def test_worker_survives_a_failing_item_and_reports_it():
    errors = []

    def handle(item):
        if item == "bad":
            raise RuntimeError("bad item")

    worker = LatestWorker(handle, capacity=4, on_error=lambda item, err: errors.append((item, str(err))))
    worker.start()
    for item in ("a", "bad", "b"):
        worker.submit(item)
    assert worker.wait_idle(5)
    worker.stop()
    assert errors == [("bad", "bad item")] and worker.processed == 2 and worker.failed == 1


def test_a_resolution_change_initialises_again_with_the_box_scaled(frames):
    trackers, resizes = [], []
    session = TrackingSession(lambda: trackers.append(FakeTracker()) or trackers[-1],
                              on_resize=lambda old, new: resizes.append((old, new)))
    session.request_box((10, 8, 20, 12))
    session.step(*frames)
    assert session.step(*frames).box == (1.0, 2.0, 3.0, 4.0)        # tracked at 60x40
    bigger = np.zeros((80, 120, 3), np.uint8), np.zeros((80, 120), np.uint8)
    outcome = session.step(*bigger)
    assert outcome.state == TrackState.TRACKING and outcome.box == (2.0, 4.0, 6.0, 8.0)
    assert resizes == [((60, 40), (120, 80))] and trackers[0].inits[-1] == [2.0, 4.0, 6.0, 8.0]
    assert session.step(*bigger).box == (1.0, 2.0, 3.0, 4.0)        # then tracked at the new size


def test_dropped_items_are_handed_to_on_drop_in_order():
    gate, started, dropped = threading.Event(), threading.Event(), []

    def handle(item):
        started.set()
        gate.wait(5)

    worker = LatestWorker(handle, capacity=1, on_drop=dropped.append)
    worker.start()
    worker.submit(0)
    assert started.wait(5)
    for item in range(1, 5):
        worker.submit(item)
    gate.set()
    assert worker.wait_idle(5)
    worker.stop()
    assert dropped == [1, 2, 3] and worker.dropped == 3


def test_on_start_runs_once_on_the_worker_thread_before_the_first_item():
    seen = []
    worker = LatestWorker(lambda item: seen.append(("item", threading.current_thread().name)), name="w",
                          on_start=lambda: seen.append(("start", threading.current_thread().name)))
    worker.start()
    worker.submit(1)
    assert worker.wait_idle(5)
    worker.submit(2)
    assert worker.wait_idle(5)
    worker.stop()
    assert seen == [("start", "w"), ("item", "w"), ("item", "w")]
