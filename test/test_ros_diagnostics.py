"""Stream watching, rates and the /diagnostics status, with a fake clock."""

import pytest

pytest.importorskip("diagnostic_msgs")

from diagnostic_msgs.msg import DiagnosticStatus

from m5l_core.tracking.api import TrackState
from m5l_tracker_ros.diagnostics import NodeStats, RateWindow, StreamWatch, build_status


def test_a_stream_is_reported_stale_once_and_recovered_once():
    watch = StreamWatch("thermal")
    assert watch.update(0.0, 1.0) is None          # never seen: no warning at start-up
    watch.arrived(0.0)
    assert watch.update(0.5, 1.0) is None
    assert watch.update(1.5, 1.0) == "stale"
    assert watch.update(3.0, 1.0) is None          # still stale: said once
    watch.arrived(3.1)
    assert watch.update(3.2, 1.0) == "recovered"
    assert watch.received == 2


def test_rate_window_counts_recent_events_only():
    now = [0.0]
    window = RateWindow(2.0, clock=lambda: now[0])
    for t in (0.0, 0.5, 1.0, 1.5):
        now[0] = t
        window.add(t / 10)
    assert window.rate() == 2.0 and window.mean_max() == pytest.approx((0.075, 0.15))
    now[0] = 3.2
    assert window.rate() == 0.5 and window.mean_max() == (0.15, 0.15)


def status(stats, rgb_age, thermal_age, timeout=1.0):
    streams = []
    for name, age in (("rgb", rgb_age), ("thermal", thermal_age)):
        watch = StreamWatch(name)
        if age is not None:
            watch.arrived(10.0 - age)
        streams.append(watch)
    return build_status("node: tracking", stats, streams, timeout, 3, 4, 10.0)


def test_status_is_ok_while_tracking_with_live_streams_and_warns_otherwise():
    stats = NodeStats()
    stats.record_result(TrackState.TRACKING, 0.02)
    stats.record_rejected("thermal")
    ok = status(stats, 0.1, 0.1)
    values = {kv.key: kv.value for kv in ok.values}
    assert ok.level == DiagnosticStatus.OK
    assert values["dropped_pairs"] == "3" and values["unpaired_images"] == "4"
    assert values["rejected_thermal_images"] == "1" and values["state"] == "tracking"
    stale = status(stats, 0.1, 2.5)
    assert stale.level == DiagnosticStatus.WARN and stale.message == "thermal stream stale"
    assert "no rgb images yet" in status(stats, None, 0.1).message
    stats.record_result(TrackState.LOST, 0.02)
    assert "target lost" in status(stats, 0.1, 0.1).message


def stamps_of(frames, period_ns=33_333_333, jitter_ns=0, seed=0):
    import random
    rng = random.Random(seed)
    return [f * period_ns + rng.randint(-jitter_ns, jitter_ns) for f in frames]


def monitor_fed(stamps):
    from m5l_tracker_ros.delivery import DeliveryMonitor
    monitor = DeliveryMonitor()
    for stamp in stamps:
        monitor.add(stamp)
    return monitor


def test_a_complete_stream_with_jitter_is_fully_delivered():
    delivery = monitor_fed(stamps_of(range(100), jitter_ns=3_000_000)).estimate(1.0)
    assert delivery.ratio > 0.9 and abs(delivery.published_hz - 30) < 3


def test_a_stream_losing_three_of_four_images_in_transport_is_reported_with_the_fix():
    import random

    from m5l_tracker_ros.delivery import transport_advice
    rng = random.Random(1)
    delivered = [f for f in range(400) if rng.random() < 0.25]
    watch = StreamWatch("rgb")
    for stamp in stamps_of(delivered, jitter_ns=2_000_000):
        watch.arrived(0.0, stamp)
    delivery = watch.poor_delivery(1.0, 0.5)
    assert delivery is not None and 0.15 < delivery.ratio < 0.35 and abs(delivery.published_hz - 30) < 3
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in transport_advice("rgb", delivery)
    stats = NodeStats()
    reported = build_status("n", stats, [watch, StreamWatch("thermal")], 1e9, 0, None, 0.0, 0.5)
    assert "rgb images lost in transport" in reported.message


def test_outages_duplicates_and_stamps_going_back_are_not_transport_losses():
    # 3 s without images (an outage: stale), duplicated stamps, then a replay from the start.
    stamps = stamps_of(range(50)) + stamps_of(range(140, 200)) + stamps_of([199, 199])
    assert monitor_fed(stamps).estimate(1.0).ratio > 0.95
    replayed = monitor_fed(stamps + stamps_of(range(5)))
    assert replayed.estimate(1.0) is None  # starts afresh, too few images yet


def test_the_status_reports_where_the_trackers_time_went_per_stage():
    now = [0.0]
    stats = NodeStats(results=RateWindow(2.0, clock=lambda: now[0]))
    for features, scoring in ((0.060, 0.010), (0.040, 0.020)):
        stats.record_result(TrackState.TRACKING, 0.08, {"features": features, "scoring": scoring})
    stats.record_result(TrackState.TRACKING, 0.05)          # a frame without timings (initialisation)
    values = {kv.key: kv.value for kv in status(stats, 0.1, 0.1).values}
    assert values["stage_features_mean_ms"] == "50.0" and values["stage_scoring_mean_ms"] == "15.0"


def test_the_status_reports_the_trackers_totals_as_of_its_last_result():
    stats = NodeStats()
    stats.record_result(TrackState.TRACKING, 0.08, {}, {"frames": 1, "learning_steps": 4})
    stats.record_result(TrackState.TRACKING, 0.08, {}, {"frames": 2, "learning_steps": 9})
    stats.record_result(TrackState.TRACKING, 0.05)          # an initialisation: none given, the last stay
    values = {kv.key: kv.value for kv in status(stats, 0.1, 0.1).values}
    assert (values["total_frames"], values["total_learning_steps"]) == ("2", "9")
