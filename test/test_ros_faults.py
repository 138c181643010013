"""Fault injection into one running tracking node (a separate process, isolated ROS domain).

Each test injects one fault into the same node, which tracks a synthetic target (test_ros_stream),
then checks what the node did (rejected and counted, warned, reported in /diagnostics, refused
with a reason) and that nothing was lost: the node is still alive, keeps its target and answers
the next valid pair. The node runs with use_sim_time (so /clock can jump) and with its own logger
at debug (``launch_support.log_level_arguments``, the launch file's way), which must not turn on
rcl's debug output. The last test stops it with SIGINT during a first-frame initialisation.
README "Fault injection" lists these faults with the process- and offline-level ones.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from test_ros_node import LIGHT_TRACKER  # noqa: E402
from test_ros_stream import SIZE, Driver, Record, image  # noqa: E402

from m5l_tracker_ros import launch_support, workspace  # noqa: E402

pytestmark = pytest.mark.ros

NAMESPACE = "/m5l_faults"
NODE = f"{NAMESPACE}/m5l_tracker"
TRACKING, NOT_INITIALISED = 1, 0
TEST_DIR = Path(__file__).resolve().parent


def wait_for(predicate, timeout: float, step=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if step is None:
            time.sleep(0.05)
        else:
            step()
    return False


class Harness:
    """The node process, the in-process driver and what it recorded."""

    def __init__(self, process: subprocess.Popen, log_path: Path, driver: Driver, record: Record, context):
        from rclpy.parameter_client import AsyncParameterClient
        from rosgraph_msgs.msg import Clock
        self.process, self.log_path, self.driver, self.record = process, log_path, driver, record
        self.clock_pub = driver.node.create_publisher(Clock, "/clock", 10)
        self.params = AsyncParameterClient(driver.node, NODE)
        self.context = context

    # --- publishing -----------------------------------------------------------------------------

    def frames(self):
        return self.driver.scene.frames(self.driver.box())

    def publish(self, rgb_msg=None, thermal_msg=None) -> None:
        time.sleep(1 / 30)
        if rgb_msg is not None:
            self.driver.rgb_pub.publish(rgb_msg)
        if thermal_msg is not None:
            self.driver.thermal_pub.publish(thermal_msg)

    def valid_pair(self, stamp_ns: int, rgb=None, thermal=None, thermal_offset_ns: int = 2_000_000) -> None:
        scene_rgb, scene_thermal = self.frames()
        rgb = scene_rgb if rgb is None else rgb
        thermal = scene_thermal if thermal is None else thermal
        self.record.valid[stamp_ns] = self.driver.box()
        self.publish(image(rgb, "rgb8", stamp_ns), image(thermal, "mono16", stamp_ns + thermal_offset_ns))

    def stamp(self) -> int:
        """A fresh stamp after every one published so far (the driver's 30 Hz sequence)."""
        self.driver.frame += 1
        return self.driver.next_stamp()

    # --- checking -------------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.process.poll() is None

    def answers_again(self, timeout: float = 60) -> bool:
        """Nothing lost: valid pairs after the fault are tracked (state kept) by a live node."""
        first = self.driver.next_stamp()
        ok = self.driver.run_until(lambda: any(o[1] == TRACKING for o in self.record.since(first)), timeout,
                                   move=False)
        return ok and self.alive()

    def outputs_for(self, stamps) -> list:
        wanted = set(stamps)
        with self.record.lock:
            return [o for o in self.record.outputs if o[0] in wanted]

    def diagnostics_since(self, index: int) -> list:
        with self.record.lock:
            return self.record.diagnostics[index:]

    def counter(self, key: str) -> int:
        with self.record.lock:
            return max((int(values.get(key, 0)) for _, values, _ in self.record.diagnostics), default=0)

    def await_counter(self, key: str, above: int, timeout: float = 15) -> bool:
        return wait_for(lambda: self.counter(key) > above, timeout)

    def result(self, future, timeout: float = 15):
        assert wait_for(future.done, timeout), "no answer from the node"
        return future.result()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_faults")
    domain = 1 + (os.getpid() + 17) % 100
    env = workspace.package_env()
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault(workspace.FASTDDS_PROFILE_VARIABLE, str(workspace.fastdds_profile()))
    workspace.load_built_messages()
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "device": "cpu", "sync_slop": 0.01, "stream_timeout": 0.5, "diagnostics_period": 0.25,
        "log_throttle": 0.5, "use_sim_time": True, "max_image_side": 4096, "tracker": LIGHT_TRACKER}}}))
    log_path = tmp / "node.log"
    with open(log_path, "w") as log:
        command = workspace.node_command(workspace.REPO_ROOT, params, "-r", f"__ns:={NAMESPACE}",
                                         *launch_support.log_level_arguments("debug", NAMESPACE))
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    record = Record()
    driver = Driver(context, record, NAMESPACE)
    harness = Harness(process, log_path, driver, record, context)
    harness.domain, harness.env = domain, env
    try:
        assert wait_for(lambda: driver.matched() or process.poll() is not None, 120), "node never appeared"
        assert process.poll() is None, f"node exited at start:\n{log_path.read_text()}"
        time.sleep(1.0)  # discovery settles
        assert harness.params.wait_for_services(30)
        from sensor_msgs.msg import RegionOfInterest
        x, y, w, h = (int(round(v)) for v in driver.box())
        driver.init_pub.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
        assert harness.answers_again(90), "never tracked:\n" + harness.log()
        yield harness
    finally:
        driver.close()
        rclpy.shutdown(context=context)
        if process.poll() is None:
            process.kill()
            process.wait(10)


# --- malformed images -----------------------------------------------------------------------------

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
    assert {o[1] for o in node.outputs_for(stamps)} <= {TRACKING, 2}
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
    assert {o[1] for o in outputs} <= {TRACKING, 2}
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

def _init(node, x, y, w, h) -> None:
    from sensor_msgs.msg import RegionOfInterest
    node.driver.init_pub.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))


def test_init_boxes_outside_the_image_or_of_zero_size_are_ignored_and_the_target_kept(node):
    _init(node, 5000, 5000, 20, 20)   # outside the 192x144 image: refused at the next pair
    assert wait_for(lambda: "does not overlap" in node.log(), 15, step=lambda: node.valid_pair(node.stamp()))
    time.sleep(0.6)                   # the same warning kind is throttled (log_throttle 0.5 s)
    _init(node, 10, 10, 0, 15)        # zero width: refused on arrival
    assert wait_for(lambda: "~/init ignored" in node.log(), 15)
    assert node.answers_again()


def test_non_finite_or_zero_initial_bbox_parameters_are_refused_or_wait(node):
    from rclpy.parameter import Parameter
    def set_box(box):
        return node.result(node.params.set_parameters([Parameter("initial_bbox", value=box)])).results[0]

    refused = set_box([math.nan, 1.0, 5.0, 5.0])
    assert not refused.successful and "finite" in refused.reason
    assert not set_box([1.0, 1.0, math.inf, 5.0]).successful
    zero = set_box([0, 0, 0, 0])
    assert zero.successful   # zero size = wait for ~/init: the current target stays
    assert node.answers_again()


def test_a_reset_storm_is_answered_and_tracking_restarts_on_the_next_box(node):
    from std_srvs.srv import Trigger
    for _ in range(5):   # 50 resets, 10 in flight at a time (ROS 2 service queues hold 10)
        futures = [node.driver.reset_client.call_async(Trigger.Request()) for _ in range(10)]
        assert all(node.result(f).success for f in futures)
    first = node.stamp()
    assert node.driver.run_until(lambda: any(o[1] == NOT_INITIALISED for o in node.record.since(first)), 30,
                                 move=False)
    _init(node, *(int(round(v)) for v in node.driver.box()))
    assert node.answers_again()


def test_an_init_storm_ends_tracking_the_last_box(node):
    rng = np.random.default_rng(1)
    seen = len(node.record.outputs)
    for _ in range(49):
        _init(node, *(int(v) for v in rng.integers(0, 100, 2)), 20, 20)
    x, y, w, h = (int(round(v)) for v in node.driver.box())
    _init(node, x, y, w, h)
    time.sleep(0.5)
    assert re.findall(r"new target box (\S+ \S+)", node.log())[-1] == f"{x},{y} {w}x{h}"   # the last one won
    time.sleep(0.5)
    assert node.answers_again()
    with node.record.lock:
        after = node.record.outputs[seen:]
    assert after[-1][1] == TRACKING and after[-1][2][2:] != (20.0, 20.0)   # not on a storm box


def test_a_parameter_storm_is_answered_valid_values_applied_invalid_ones_refused(node):
    from rclpy.parameter import Parameter
    def set_one(name, value):
        return node.params.set_parameters([Parameter(name, value=value)])

    outcomes = []
    for i in range(60):   # 180 requests, 3 in flight at a time (ROS 2 service queues hold 10)
        futures = [(True, set_one("stream_timeout", 0.5 + 0.01 * i)),
                   (False, set_one("stream_timeout", -1.0)),
                   (False, set_one("device", "cuda"))]   # read-only
        outcomes += [(valid, node.result(f).results[0].successful) for valid, f in futures]
    assert len(outcomes) == 180 and all(valid == ok for valid, ok in outcomes)
    final = node.result(node.params.get_parameters(["stream_timeout"]))
    assert final.values[0].double_value == pytest.approx(0.5 + 0.01 * 59)
    assert node.result(set_one("stream_timeout", 0.5)).results[0].successful
    assert node.answers_again()


def test_the_debug_log_level_is_the_nodes_own(node):
    log = node.log()
    assert "diagnostics:" in log               # the node's debug messages...
    assert not re.search(r"\[rcl(\.|\])", log)  # ...and none of rcl's
    assert "Traceback" not in log and "\x1b[" not in log


def test_sigint_during_a_first_frame_initialisation_exits_0_at_once(node):
    """Last: stops the shared node. A slow initialisation (many iterations) is under way when SIGINT comes."""
    from rclpy.parameter import Parameter
    names = node.result(node.params.list_parameters(["tracker.init"], 3)).result.names
    slow = [Parameter(name, value=1000) for name in names   # all of the fine-tuning inside initialize()
            if name in ("tracker.init.iterations", "tracker.init.quick_iterations")]
    assert all(r.successful for r in node.result(node.params.set_parameters(slow)).results)
    _init(node, *(int(round(v)) for v in node.driver.box()))
    time.sleep(0.3)
    first = node.stamp()
    node.valid_pair(first)
    node.valid_pair(node.stamp())
    time.sleep(1.5)
    assert node.outputs_for([first]) == [], "initialisation ended before the signal: make it slower"
    signalled = time.monotonic()
    node.process.send_signal(signal.SIGINT)
    node.process.wait(10)
    took = time.monotonic() - signalled
    print(f"exit {took:.2f} s after SIGINT during a first-frame initialisation")
    log = node.log()
    assert node.process.returncode == 0, log
    assert "Traceback" not in log and "terminate called" not in log, log
    assert took < 3.0, f"exit took {took:.2f} s"
