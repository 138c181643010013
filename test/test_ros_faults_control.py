"""Faults on the control side of one running node (ros_faults_harness.py): initial boxes outside the
image or not finite, reset, init and parameter storms, the node's own log level, and SIGINT during
a first-frame initialisation (the last test: it stops the node).
"""

from __future__ import annotations

import math
import re
import signal
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from ros_faults_harness import NOT_INITIALISED, PREDICTED, TRACKING, running_node, wait_for  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    yield from running_node(tmp_path_factory)


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
        after = [o for o in node.record.outputs[seen:] if o[1] != PREDICTED]   # tracked pairs
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
