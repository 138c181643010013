"""Faults on the image topics of one running node (ros_faults_harness.py): malformed images,
odd pixel values, resolution changes, stamps out of order, duplicated or before the epoch, clock
jumps, outages, bursts, unpaired images, transport losses and a publisher that dies. Each test
checks what the node did (rejected and counted, warned, reported in /diagnostics) and that it still
answers the next valid pair.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from ros_faults_harness import NAMESPACE, PREDICTED, TEST_DIR, TRACKING, running_node, wait_for  # noqa: E402
from test_ros_stream import SIZE, image  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    yield from running_node(tmp_path_factory)


def _reject_one(node, stream: str, bad_msg_of) -> None:
    """Publish bursts where one stream's image is malformed; the node rejects, counts and goes on."""
    key = f"rejected_{stream}_images"
    before = node.counter(key)
    stamps = []
    for _ in range(5):
        stamp = node.stamp()
        rgb, thermal = node.frames()
        good = (image(rgb, "rgb8", stamp), image(thermal, "mono16", stamp + 2_000_000))
        bad = bad_msg_of(rgb if stream == "rgb" else thermal, stamp)
        node.publish(*((bad, good[1]) if stream == "rgb" else (good[0], bad)))
        stamps.append(stamp)
    assert node.await_counter(key, before), node.log()
    assert node.outputs_for(stamps) == []
    assert node.answers_again()


def test_truncated_image_data_is_rejected(node):
    _reject_one(node, "rgb", lambda a, s: image(a, "rgb8", s, data=image(a, "rgb8", s).data[:1000]))


def test_a_wrong_step_is_rejected(node):
    _reject_one(node, "thermal", lambda a, s: image(a, "mono16", s, step=a.strides[0] - 2))


def test_a_zero_size_image_is_rejected(node):
    _reject_one(node, "rgb", lambda a, s: image(a, "rgb8", s, height=0, width=0, step=0, data=b""))


def test_an_oversize_image_is_rejected(node):
    _reject_one(node, "thermal", lambda a, s: image(a, "mono16", s, width=100_000, height=1))


def test_unsupported_encodings_are_rejected(node):
    _reject_one(node, "rgb", lambda a, s: image(a, "yuv422", s))
    _reject_one(node, "thermal", lambda a, s: image(a, "bgra8", s))


def test_stamps_before_the_epoch_are_rejected_as_message_filters_would(node):
    _reject_one(node, "rgb", lambda a, s: _restamp(image(a, "rgb8", s), -5))


def _restamp(msg, sec: int):
    msg.header.stamp.sec = sec
    return msg


def test_an_all_nan_thermal_frame_is_rejected_and_nan_or_inf_pixels_are_tracked(node):
    _reject_one(node, "thermal", lambda a, s: image(np.full(a.shape, np.nan, np.float32), "32FC1", s))
    stamps = []
    for _ in range(20):
        stamp = node.stamp()
        rgb, thermal = node.frames()
        values = thermal.astype(np.float32) / 100.0
        values[::5, ::7], values[1::9, ::4] = np.nan, np.inf
        node.publish(image(rgb, "rgb8", stamp), image(values, "32FC1", stamp + 2_000_000))
        stamps.append(stamp)
    assert wait_for(lambda: node.outputs_for(stamps), 30)
    assert {o[1] for o in node.outputs_for(stamps)} <= {TRACKING, 2, PREDICTED}
    assert all(math.isfinite(v) for o in node.outputs_for(stamps) for v in o[2])


def test_a_constant_thermal_frame_is_tracked_on_rgb(node):
    stamps = [node.stamp() for _ in range(20)]
    for stamp in stamps:
        node.valid_pair(stamp, thermal=np.full(SIZE, 3000, np.uint16))
    assert wait_for(lambda: node.outputs_for(stamps), 30)
    assert all(math.isfinite(v) for o in node.outputs_for(stamps) for v in o[2])
    assert node.answers_again()


def test_a_resolution_change_mid_stream_is_followed(node):
    import cv2
    errors_before = node.counter("tracker_errors")
    stamps = [node.stamp() for _ in range(20)]
    for stamp in stamps:   # both cameras switch to 320x240, same field of view
        rgb, thermal = node.frames()
        node.valid_pair(stamp, cv2.resize(rgb, (320, 240)), cv2.resize(thermal, (320, 240)))
    assert wait_for(lambda: node.outputs_for(stamps), 30), node.log()
    outputs = node.outputs_for(stamps)
    assert {o[1] for o in outputs} <= {TRACKING, 2, PREDICTED}
    bx, by, bw, bh = outputs[0][2]   # initialised again with the last box scaled by 5/3
    assert bx >= 0 and bx + bw <= 320 and by >= 0 and by + bh <= 240 and bw > 40 and bh > 40
    assert "frame size changed from 192x144 to 320x240" in node.log()
    assert node.answers_again()    # and back to 192x144
    assert node.counter("tracker_errors") == errors_before


# --- stamps and time -------------------------------------------------------------------------------

def test_stamps_going_backwards_are_paired_and_tracked(node):
    start = node.stamp()
    stamps = [start - 10 * 10**9 - i * 33_333_333 for i in range(20)]   # 10 s back, then further back
    for stamp in stamps:
        node.valid_pair(stamp)
    assert wait_for(lambda: node.outputs_for(stamps), 30), node.log()
    assert node.answers_again()


def test_duplicated_stamps_give_one_pair_each(node):
    stamps = []
    for _ in range(10):
        stamp = node.stamp()
        for _ in range(3):
            node.valid_pair(stamp)
        stamps.append(stamp)
    assert wait_for(lambda: node.outputs_for(stamps), 30)
    per_stamp = [len(node.outputs_for([s])) for s in stamps]
    assert max(per_stamp) <= 3 and node.alive()
    assert node.answers_again()


def test_a_clock_jump_or_pause_under_use_sim_time_changes_nothing(node):
    from builtin_interfaces.msg import Time
    from rosgraph_msgs.msg import Clock
    index = len(node.record.diagnostics)
    for sec in (1000, 1001, 5000, 10, 11):   # forward by an hour, back to 10 s
        node.clock_pub.publish(Clock(clock=Time(sec=sec)))
        node.valid_pair(node.stamp())
        time.sleep(0.3)
    time.sleep(1.0)                          # /clock paused
    assert len(node.diagnostics_since(index)) >= 4   # diagnostics run on steady time
    assert node.answers_again()


# --- streams -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", ["thermal", "rgb"])
def test_an_outage_is_reported_stale_and_tracking_resumes_when_the_stream_returns(node, stream):
    index = len(node.record.diagnostics)
    for _ in range(40):
        stamp = node.stamp()
        rgb, thermal = node.frames()
        node.publish(None if stream == "rgb" else image(rgb, "rgb8", stamp),
                     None if stream == "thermal" else image(thermal, "mono16", stamp + 2_000_000))
    assert any(f"{stream} stream stale" in m for m, _, _ in node.diagnostics_since(index))
    assert node.answers_again()


def test_a_200_hz_burst_is_absorbed_by_dropping_and_counting_older_pairs(node):
    dropped = node.counter("dropped_pairs")
    stamps = [node.stamp() for _ in range(200)]
    rgb, thermal = node.frames()
    for stamp in stamps:
        time.sleep(0.005)
        node.record.valid[stamp] = node.driver.box()
        node.driver.rgb_pub.publish(image(rgb, "rgb8", stamp))
        node.driver.thermal_pub.publish(image(thermal, "mono16", stamp + 1_000_000))
    assert node.await_counter("dropped_pairs", dropped + 50, 30)
    assert wait_for(lambda: node.outputs_for(stamps[-20:]), 30)   # the newest pairs are tracked
    assert node.answers_again()


def test_pairs_that_never_match_within_the_slop_are_counted_as_unpaired(node):
    unpaired = node.counter("unpaired_images")
    stamps = [node.stamp() for _ in range(40)]
    for stamp in stamps:
        node.valid_pair(stamp, thermal_offset_ns=20_000_000)   # 20 ms apart, slop 10 ms
    assert node.await_counter("unpaired_images", unpaired)
    assert node.outputs_for(stamps) == []
    assert node.answers_again()


def test_transport_losses_are_reported_with_the_fix(node):
    rng = np.random.default_rng(0)
    delivered = [node.stamp() for _ in range(240)]
    delivered = [s for s in delivered if rng.random() < 0.25][:50]
    index = len(node.record.diagnostics)
    for stamp in delivered:   # what a publisher without the large-image profile gets through
        node.valid_pair(stamp)
    assert wait_for(lambda: any("lost in transport" in m for m, _, _ in node.diagnostics_since(index)), 10)
    assert wait_for(lambda: "FASTDDS_DEFAULT_PROFILES_FILE" in node.log(), 10)
    assert node.answers_again()


def test_a_killed_publisher_is_reported_stale_and_a_new_one_is_followed(node, tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(TEST_DIR)!r})
        import rclpy
        from test_ros_stream import Scene, image, target_box
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        rclpy.init(domain_id={node.domain})
        pub_node = rclpy.create_node("m5l_doomed_camera")
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        rgb_pub = pub_node.create_publisher(Image, "{NAMESPACE}/rgb/image_raw", qos)
        th_pub = pub_node.create_publisher(Image, "{NAMESPACE}/thermal/image_raw", qos)
        rgb, thermal = Scene().frames(target_box({node.driver.motion}))
        stamp = 7_000_000 * 10**9
        while True:
            time.sleep(1 / 30)
            stamp += 33_333_333
            rgb_pub.publish(image(rgb, "rgb8", stamp))
            th_pub.publish(image(thermal, "mono16", stamp + 2_000_000))
    """)
    camera = subprocess.Popen([sys.executable, "-c", script], env=node.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    try:
        from_camera = lambda: [o for o in node.record.since(7_000_000 * 10**9) if o[0] < 8_000_000 * 10**9]  # noqa: E731
        assert wait_for(lambda: from_camera(), 60)
        index = len(node.record.diagnostics)
    finally:
        camera.kill()   # SIGKILL: no goodbye on the graph
        camera.wait(10)
    assert wait_for(lambda: any("stream stale" in m for m, _, _ in node.diagnostics_since(index)), 10)
    assert node.answers_again()


# --- boxes, resets, parameters ------------------------------------------------------------------------
