"""The tracking node as users run it: a separate process in an isolated ROS domain.

A synthetic RGB (rgb8, reliable) + thermal (mono16, best effort) stream at 30 Hz with a moving
target goes in (test_ros_stream.py); /m5l/target_bbox, ~/debug_image and /diagnostics are
checked through phases: tracking, a burst of malformed images, a thermal stream that stops and
resumes, a reset and a new box on ~/init. The tracker is the real one (m5l_core.tracking).
Assertions are on counts and stamps, never on timing.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from test_ros_stream import BASE_NS, SIZE, TARGET, Driver, Record, target_box  # noqa: E402

from m5l_tracker_ros import workspace  # noqa: E402

pytestmark = pytest.mark.ros

# The real tracker with RT-MDNet's procedure, lightened so that two CPU cores keep up in a test.
LIGHT_TRACKER = {
    "search": {"n_candidates": 64},
    "init": {"n_pos": 100, "n_neg": 500, "iterations": 10},
    "optim": {"neg_candidates": 256},
    "update": {"n_pos": 10, "n_neg": 40, "iterations": 3},
    "bbreg": {"n_samples": 200},
}


def checkpoint_for_test() -> str:
    """The bundled model config/track.yaml gives the node; it is committed, so its absence is a
    packaging bug."""
    from m5l_core.tracking.loading import checkpoint_path
    shipped = yaml.safe_load((workspace.REPO_ROOT / "config" / "track.yaml").read_text())
    name = shipped["/**"]["ros__parameters"]["checkpoint"]
    assert checkpoint_path(name).is_file(), f"bundled model missing: {checkpoint_path(name)}"
    return name


def write_params(path, initial_box, checkpoint: str) -> None:
    params = {"initial_bbox": [float(v) for v in initial_box], "device": "cpu", "checkpoint": checkpoint,
              "sync_slop": 0.01, "stream_timeout": 0.5, "debug_image": True, "diagnostics_period": 0.25,
              "log_throttle": 1.0,
              "tracker": LIGHT_TRACKER}
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))


@dataclass
class Scenario:
    record: Record
    phases: dict          # phase name -> first stamp
    reset_ok: bool
    alive_at_end: bool
    exit_code: int | None
    log: str


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _states(record: Record, since: int) -> set:
    return {o[1] for o in record.since(since)}


def play(driver: Driver, record: Record) -> tuple[dict, bool]:
    """The phases; each waits for the node's answer instead of assuming a speed."""
    TRACKING, NOT_INITIALISED = 1, 0
    phases = {"warmup": driver.next_stamp()}
    # The initial box (a parameter) applies to the first pair: the target stays still until then.
    assert driver.run_until(lambda: TRACKING in _states(record, 0), 90, move=False), "never tracked"
    phases["track"] = driver.run(90)
    phases["malformed"] = driver.next_stamp()
    for i in range(30):
        driver.step(kind="float_thermal" if i % 3 == 2 else "malformed", move=False)
    phases["thermal_off"] = driver.run(45, kind="rgb_only", move=False)
    phases["thermal_back"] = driver.run(75)
    phases["reset"] = driver.next_stamp()
    reset_ok = driver.reset()
    driver.run_until(lambda: NOT_INITIALISED in _states(record, phases["reset"]), 30, move=False)
    from sensor_msgs.msg import RegionOfInterest
    x, y, w, h = (int(round(v)) for v in driver.box())
    phases["init"] = driver.next_stamp()
    driver.init_pub.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
    driver.run_until(lambda: TRACKING in _states(record, phases["init"]), 30, move=False)
    phases["after_init"] = driver.run(45)
    driver.run(10, move=False)  # let the last outputs arrive
    return phases, reset_ok


def node_env(domain: int) -> dict[str, str]:
    """The node's environment on its own DDS domain (localhost discovery, unbuffered log), with this
    test process set up to talk to it (same discovery range, the FastDDS profile, built messages)."""
    env = workspace.package_env()
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault(workspace.FASTDDS_PROFILE_VARIABLE, str(workspace.fastdds_profile()))
    workspace.load_built_messages()
    return env


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_node")
    domain = 1 + os.getpid() % 100
    env = node_env(domain)
    params = tmp / "params.yaml"
    write_params(params, target_box(0), checkpoint_for_test())
    log_path = tmp / "node.log"
    with open(log_path, "w") as log:
        command = workspace.node_command(workspace.REPO_ROOT, params, "-r", "__ns:=/m5l_test")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    record = Record()
    driver = Driver(context, record, "/m5l_test")
    try:
        assert _wait(lambda: driver.matched() or process.poll() is not None, 120), "node never appeared"
        assert process.poll() is None, f"node exited at start:\n{log_path.read_text()}"
        time.sleep(1.0)  # discovery settles: the first frames would otherwise be lost
        phases, reset_ok = play(driver, record)
        alive = process.poll() is None
    finally:
        driver.close()
        rclpy.shutdown(context=context)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            exit_code = process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            exit_code = None
    return Scenario(record, phases, reset_ok, alive, exit_code, log_path.read_text())


def centre_errors(scenario: Scenario, start: int, end: int, state_of_interest: int = 1) -> list[float]:
    errors = []
    for stamp, state, box, _, _ in scenario.record.since(start):
        if stamp < end and state == state_of_interest:
            gx, gy, gw, gh = scenario.record.valid[stamp]
            errors.append(math.hypot(box[0] + box[2] / 2 - gx - gw / 2, box[1] + box[3] / 2 - gy - gh / 2))
    return errors


def diagnostic_counter(scenario: Scenario, key: str) -> int:
    return max((int(values.get(key, 0)) for _, values, _ in scenario.record.diagnostics), default=0)


def test_the_node_runs_through_every_phase_and_stops_cleanly_on_sigint(scenario):
    assert scenario.alive_at_end, scenario.log
    assert scenario.exit_code == 0, scenario.log
    assert "Traceback" not in scenario.log, scenario.log


def test_every_output_carries_the_stamp_and_frame_of_a_published_rgb_image(scenario):
    outputs = scenario.record.outputs
    assert len(outputs) >= 20
    assert {o[0] for o in outputs} <= set(scenario.record.valid)
    assert {o[4] for o in outputs} == {"rgb_camera"}
    assert all(math.isfinite(o[3]) and o[3] >= 0 for o in outputs)


def test_boxes_follow_the_moving_target(scenario):
    errors = centre_errors(scenario, scenario.phases["track"], scenario.phases["malformed"])
    assert len(errors) >= 5
    assert np.median(errors) < TARGET / 2, errors


def test_dropped_pairs_get_predicted_boxes_that_follow_the_target(scenario):
    outputs = scenario.record.outputs
    predicted = {o[0] for o in outputs if o[1] == 3}
    assert not predicted & {o[0] for o in outputs if o[1] != 3}, "one output per pair"
    if diagnostic_counter(scenario, "dropped_pairs") >= 5:   # pairs were dropped while tracking
        assert predicted and diagnostic_counter(scenario, "predicted") >= 1
        errors = centre_errors(scenario, scenario.phases["track"], scenario.phases["malformed"], 3)
        assert not errors or np.median(errors) < TARGET / 2, errors


def test_malformed_images_are_rejected_counted_and_never_tracked(scenario):
    stamps = {o[0] for o in scenario.record.outputs}
    assert not stamps & scenario.record.malformed
    assert diagnostic_counter(scenario, "rejected_rgb_images") >= 1
    assert diagnostic_counter(scenario, "rejected_thermal_images") >= 1
    # 32FC1 thermal with NaN pixels is valid: those pairs are tracked.
    burst = [o for o in scenario.record.since(scenario.phases["malformed"])
             if o[0] < scenario.phases["thermal_off"]]
    assert burst and {o[1] for o in burst} <= {1, 2, 3}


def test_a_stopped_thermal_stream_is_reported_and_tracking_resumes(scenario):
    phases = scenario.phases
    while_off = [message for message, _, stamp in scenario.record.diagnostics
                 if phases["thermal_off"] <= stamp < phases["thermal_back"]]
    assert any("thermal stream stale" in message for message in while_off)
    assert not any("rgb stream stale" in message for message in while_off)
    back = [message for message, _, stamp in scenario.record.diagnostics
            if phases["thermal_back"] + 15 * 10**8 <= stamp < phases["reset"]]
    assert back and not any("stale" in message for message in back)
    stamps = {o[0] for o in scenario.record.outputs}
    assert not stamps & scenario.record.rgb_only
    resumed = [o for o in scenario.record.since(phases["thermal_back"]) if o[0] < phases["reset"]]
    assert len(resumed) >= 2


def test_reset_forgets_the_target_and_a_box_on_init_restarts_tracking(scenario):
    assert scenario.reset_ok
    phases = scenario.phases
    after_reset = [o for o in scenario.record.since(phases["reset"]) if o[0] < phases["init"]]
    assert any(state == 0 and box == (0.0, 0.0, 0.0, 0.0) for _, state, box, _, _ in after_reset)
    errors = centre_errors(scenario, scenario.phases["init"], BASE_NS + 10**15)
    assert len(errors) >= 3 and np.median(errors) < TARGET / 2, errors


def test_diagnostics_report_rate_latency_and_drops(scenario):
    keys = set().union(*(values for _, values, _ in scenario.record.diagnostics))
    assert {"fps", "latency_mean_ms", "dropped_pairs", "state", "thermal_age_s"} <= keys
    assert any(float(values["fps"]) > 0 for _, values, _ in scenario.record.diagnostics)


def test_the_debug_image_shows_the_processed_rgb_image(scenario):
    debug = scenario.record.debug_images
    assert debug and {d[0] for d in debug} <= set(scenario.record.valid)
    assert {d[1:] for d in debug} == {("rgb8", *SIZE)}
