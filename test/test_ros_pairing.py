"""Approximate-time pairing of RGB and thermal images, without a ROS graph."""

import random
from types import SimpleNamespace

import pytest

from m5l_tracker_ros.pairing import ApproximatePairer, stamp_to_ns

MS = 1_000_000


def make_pairer(queue_size=10, slop_s=0.010):
    emitted = []
    pairer = ApproximatePairer(2, queue_size, slop_s, lambda *msgs: emitted.append(msgs))
    return pairer, emitted


def test_pairs_are_emitted_in_input_order_whatever_arrives_first():
    pairer, emitted = make_pairer()
    assert not pairer.add(1, 100 * MS, "thermal-100")
    assert pairer.add(0, 103 * MS, "rgb-103")
    assert emitted == [("rgb-103", "thermal-100")]
    assert pairer.queued(0) == pairer.queued(1) == 0


def test_the_nearest_partner_is_chosen():
    pairer, emitted = make_pairer(slop_s=0.050)
    pairer.add(0, 70 * MS, "rgb-70")
    pairer.add(0, 110 * MS, "rgb-110")   # pairs with nothing yet: no thermal queued
    pairer.add(1, 105 * MS, "thermal-105")
    assert emitted == [("rgb-110", "thermal-105")]
    assert pairer.queued(0) == 1        # rgb-70 stays queued for a later partner


def test_stamps_a_slop_or_more_apart_do_not_pair_and_wait_for_a_partner():
    pairer, emitted = make_pairer(slop_s=0.010)
    pairer.add(0, 100 * MS, "rgb-100")
    pairer.add(1, 110 * MS, "thermal-110")        # exactly the slop apart: not paired (strict)
    assert emitted == []
    pairer.add(0, 112 * MS, "rgb-112")
    assert emitted == [("rgb-112", "thermal-110")]


def test_a_full_queue_evicts_its_oldest_stamp_and_counts_it():
    pairer, emitted = make_pairer(queue_size=3)
    for t in (0, 100, 200, 300, 400):
        pairer.add(0, t * MS, f"rgb-{t}")
    assert pairer.queued(0) == 3 and pairer.evicted == [2, 0]
    pairer.add(1, 1 * MS, "thermal-1")             # its partner rgb-0 was evicted
    assert emitted == []
    pairer.add(1, 401 * MS, "thermal-401")
    assert emitted == [("rgb-400", "thermal-401")]


def test_a_message_with_the_same_stamp_replaces_the_queued_one():
    pairer, emitted = make_pairer()
    pairer.add(0, 5 * MS, "old")
    pairer.add(0, 5 * MS, "new")
    pairer.add(1, 5 * MS, "thermal")
    assert emitted == [("new", "thermal")]


def test_a_stream_that_stops_and_resumes_pairs_again():
    pairer, emitted = make_pairer(queue_size=5, slop_s=0.005)
    for i in range(30):                 # thermal silent for frames 10..19
        t = i * 33 * MS
        pairer.add(0, t, ("rgb", i))
        if not 10 <= i < 20:
            pairer.add(1, t + 2 * MS, ("thermal", i))
    frames = [rgb[1] for rgb, _ in emitted]
    assert frames == [i for i in range(30) if not 10 <= i < 20]
    assert all(rgb[1] == thermal[1] for rgb, thermal in emitted)


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="queue_size"):
        ApproximatePairer(2, 0, 0.01, print)
    with pytest.raises(ValueError, match="slop"):
        ApproximatePairer(2, 5, 0.0, print)


def test_stamp_to_ns_reads_builtin_time_fields():
    assert stamp_to_ns(SimpleNamespace(sec=3, nanosec=7)) == 3_000_000_007


def _random_arrivals(seed, n=200):
    rng = random.Random(seed)
    arrivals = []
    for i in range(n):
        t = i * 33 * MS
        arrivals.append((rng.uniform(0, 8), 0, t))
        if rng.random() > 0.1:
            arrivals.append((rng.uniform(0, 8), 1, t + rng.randint(-12, 12) * MS))
    return [(index, t) for _, index, t in sorted(arrivals, key=lambda a: a[2] + a[0] * MS)]


def test_same_pairs_as_message_filters_where_it_is_installed():
    message_filters = pytest.importorskip("message_filters")
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    class Source(message_filters.SimpleFilter):
        pass

    for seed in range(3):
        sources = [Source(), Source()]
        theirs, ours = [], []
        sync = message_filters.ApproximateTimeSynchronizer(sources, 6, 0.015)
        sync.registerCallback(lambda a, b, out=theirs: out.append((a.frame_id, b.frame_id)))
        pairer = ApproximatePairer(2, 6, 0.015, lambda a, b, out=ours: out.append((a.frame_id, b.frame_id)))
        refused_by_them, refused_by_us = [], []
        for index, t in _random_arrivals(seed):   # frame 0's thermal may be stamped before 0
            msg = SimpleNamespace(header=Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9)),
                                  frame_id=f"{index}:{t}")
            _offer(refused_by_them, t, sources[index].signalMessage, msg)
            _offer(refused_by_us, t, _add_by_header, pairer, index, msg)
        assert ours == theirs and len(ours) > 100
        assert refused_by_us == refused_by_them


def _add_by_header(pairer, index, msg) -> None:
    pairer.add(index, stamp_to_ns(msg.header.stamp), msg)


def _offer(refused: list, stamp_ns: int, add, *args) -> None:
    try:
        add(*args)
    except ValueError:
        refused.append(stamp_ns)


def test_stamps_before_the_epoch_are_refused_like_message_filters_does():
    # message_filters turns stamps into rclpy Time, which raises "Seconds value must not be negative".
    pairer, emitted = make_pairer()
    with pytest.raises(ValueError, match="must not be negative"):
        stamp_to_ns(SimpleNamespace(sec=-1, nanosec=995_000_000))
    with pytest.raises(ValueError, match="must not be negative"):
        pairer.add(1, -5 * MS, "thermal-before-epoch")
    assert pairer.queued(1) == 0
    pairer.add(0, 0, "rgb-0")
    assert emitted == [] and pairer.queued(0) == 1


class FakeNode:
    """Just what PairedImageInput uses of a node: subscriptions and a logger."""

    def __init__(self):
        self.callbacks = {}

    def create_subscription(self, msg_type, topic, callback, qos):
        self.callbacks[topic] = callback

    def get_logger(self):
        import logging
        return logging.getLogger("fake")


class FakeMessageFilters:
    """Stands in for message_filters: a synchronizer wired to its inputs the upstream way."""

    class ApproximateTimeSynchronizer:
        def __init__(self, inputs, queue_size, slop):
            self.callbacks = []
            self.pairer = ApproximatePairer(len(inputs), queue_size, slop,
                                            lambda *msgs: [cb(*msgs) for cb in self.callbacks])
            for index, source in enumerate(inputs):
                source.registerCallback(self.add, index)   # upstream passes (queue, index)

        def add(self, msg, index):
            self.pairer.add(index, stamp_to_ns(msg.header.stamp), msg)

        def registerCallback(self, callback):  # noqa: N802 - upstream name
            self.callbacks.append(callback)


@pytest.mark.parametrize("backend", [None, FakeMessageFilters])
def test_image_input_pairs_admitted_images_with_either_backend(backend):
    pytest.importorskip("rclpy")
    from m5l_tracker_ros.ros_io import PairedImageInput, image_qos
    node, pairs, seen = FakeNode(), [], []

    def admit(index, msg):
        seen.append((index, msg.frame_id))
        return msg.frame_id != "bad"

    PairedImageInput(node, ("rgb", "thermal"), image_qos("sensor_data", 5), 10, 0.01, pairs.append, admit,
                     backend)
    rgb, thermal = node.callbacks["rgb"], node.callbacks["thermal"]

    def msg(t_ms, frame_id):
        return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=t_ms * MS)),
                               frame_id=frame_id)

    rgb(msg(100, "bad"))
    thermal(msg(101, "t101"))        # its partner was refused: nothing to pair with
    rgb(msg(133, "r133"))
    thermal(msg(134, "t134"))
    assert [(p.rgb.frame_id, p.thermal.frame_id) for p in pairs] == [("r133", "t134")]
    assert len(seen) == 4
