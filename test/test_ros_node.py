"""The tracking node as users run it: a separate process in an isolated ROS domain.

A synthetic RGB (rgb8, reliable) + thermal (mono16, best effort) stream at 30 Hz with a moving
target goes in; /m5l/target_bbox and /diagnostics are checked through phases: tracking, a burst
of malformed images, a thermal stream that stops and resumes, a reset and a new box on ~/init.
Assertions are on counts and stamps, never on timing.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from m5l_tracker_ros import workspace  # noqa: E402

pytestmark = pytest.mark.ros

SIZE = (144, 192)        # height, width
TARGET = 32              # side of the square target, pixels
PERIOD_NS = 33_333_333   # 30 Hz
BASE_NS = 1_000_000 * 10**9


def target_box(m: float) -> tuple[float, float, float, float]:
    """Ground-truth box at motion time ``m`` (frames of movement so far)."""
    x = 80 + 45 * math.sin(2 * math.pi * m / 240)
    y = 56 + 22 * math.sin(2 * math.pi * m / 180)
    return (x, y, TARGET, TARGET)


class Scene:
    """Textured target on a textured background; the thermal target is hot."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        h, w = SIZE
        yy, xx = np.mgrid[0:h, 0:w]
        grad = (60 + 40 * np.sin(xx / 17.0) * np.cos(yy / 23.0))[..., None]
        self.rgb_bg = np.clip(grad + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        self.th_bg = (3000 + 300 * np.sin(xx / 29.0) + rng.normal(0, 80, (h, w))).astype(np.uint16)
        checker = ((np.arange(TARGET)[:, None] // 8 + np.arange(TARGET)[None, :] // 8) % 2).astype(bool)
        self.rgb_patch = np.where(checker[..., None], [230, 60, 40], [250, 220, 60]).astype(np.uint8)
        self.th_patch = np.where(checker, 9000, 8000).astype(np.uint16)

    def frames(self, box) -> tuple[np.ndarray, np.ndarray]:
        x, y = int(round(box[0])), int(round(box[1]))
        rgb, thermal = self.rgb_bg.copy(), self.th_bg.copy()
        rgb[y:y + TARGET, x:x + TARGET] = self.rgb_patch
        thermal[y:y + TARGET, x:x + TARGET] = self.th_patch
        return rgb, thermal


def image(array, encoding, stamp_ns, **fields):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    array = np.ascontiguousarray(array)
    msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=0,
                step=array.strides[0], data=array.tobytes())
    msg.header.stamp = Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    msg.header.frame_id = "rgb_camera" if encoding == "rgb8" else "thermal_camera"
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


def malformed(case: int, rgb, thermal, stamp_ns):
    """(rgb_msg, thermal_msg) with exactly one malformed image, for burst frame ``case``."""
    good_rgb, good_th = image(rgb, "rgb8", stamp_ns), image(thermal, "mono16", stamp_ns)
    bad = [
        ("rgb", image(rgb, "yuv422", stamp_ns)),
        ("rgb", image(rgb, "rgb8", stamp_ns, step=10)),
        ("rgb", image(rgb, "rgb8", stamp_ns, data=b"\x01" * 100)),
        ("rgb", image(rgb, "rgb8", stamp_ns, height=0, width=0, step=0, data=b"")),
        ("rgb", image(thermal.astype(np.float32), "32FC1", stamp_ns)),
        ("thermal", image(thermal, "bgra8", stamp_ns)),
        ("thermal", image(np.full(thermal.shape, np.nan, np.float32), "32FC1", stamp_ns)),
        ("thermal", image(thermal, "mono16", stamp_ns, step=thermal.strides[0] + 1)),
        ("thermal", image(thermal, "mono16", stamp_ns, width=100_000, height=1)),
    ][case % 9]
    return (bad[1], good_th) if bad[0] == "rgb" else (good_rgb, bad[1])


@dataclass
class Record:
    """What the test saw: published stamps per kind, and every message from the node."""

    valid: dict = field(default_factory=dict)     # stamp_ns -> ground-truth box (both images valid)
    malformed: set = field(default_factory=set)
    rgb_only: set = field(default_factory=set)
    outputs: list = field(default_factory=list)   # (stamp_ns, state, box, latency, arrival index)
    diagnostics: list = field(default_factory=list)  # (message, values, stamp being published then)
    publishing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_target(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        with self.lock:
            self.outputs.append((stamp, msg.state, (msg.x, msg.y, msg.width, msg.height), msg.latency,
                                 msg.header.frame_id))

    def on_diagnostics(self, msg) -> None:
        with self.lock:
            self.diagnostics += [(s.message, {kv.key: kv.value for kv in s.values}, self.publishing)
                                 for s in msg.status]

    def since(self, stamp_ns: int) -> list:
        with self.lock:
            return [o for o in self.outputs if o[0] >= stamp_ns]


class Driver:
    """Publishes the synthetic stream at 30 Hz and listens to the node, in this process."""

    def __init__(self, context, record: Record, namespace: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from m5l_tracker_ros.msg import TrackedTarget
        from sensor_msgs.msg import Image, RegionOfInterest
        from std_srvs.srv import Trigger
        self.node = rclpy.create_node("m5l_test_driver", context=context)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        # One reliable and one best-effort camera: the node's sensor-data QoS must take both.
        self.rgb_pub = self.node.create_publisher(Image, f"{namespace}/rgb/image_raw", reliable)
        self.thermal_pub = self.node.create_publisher(Image, f"{namespace}/thermal/image_raw", best_effort)
        self.init_pub = self.node.create_publisher(RegionOfInterest, f"{namespace}/m5l_tracker/init",
                                                   reliable)
        self.reset_client = self.node.create_client(Trigger, f"{namespace}/m5l_tracker/reset")
        self.target_sub = self.node.create_subscription(TrackedTarget, "/m5l/target_bbox", record.on_target,
                                                        reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", record.on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.record, self.scene = record, Scene()
        self.frame, self.motion, self.next_tick = 0, 0.0, time.monotonic()

    def matched(self) -> bool:
        return (self.rgb_pub.get_subscription_count() > 0 and self.thermal_pub.get_subscription_count() > 0
                and self.target_sub.get_publisher_count() > 0 and self.init_pub.get_subscription_count() > 0)

    def box(self) -> tuple[float, float, float, float]:
        return target_box(self.motion)

    def step(self, kind: str = "valid", move: bool = True) -> int:
        """Publish one frame pair (kind: valid, float_thermal, malformed, rgb_only) at the 30 Hz tick."""
        stamp = self.next_stamp()
        box = self.box()
        rgb, thermal = self.scene.frames(box)
        if kind == "malformed":
            rgb_msg, thermal_msg = malformed(self.frame, rgb, thermal, stamp)
            self.record.malformed.add(stamp)
        else:
            rgb_msg = image(rgb, "rgb8", stamp)
            thermal_msg = (image(with_nans(thermal), "32FC1", stamp + 2_000_000) if kind == "float_thermal"
                           else image(thermal, "mono16", stamp + 2_000_000))
            if kind == "rgb_only":
                self.record.rgb_only.add(stamp)
            else:
                self.record.valid[stamp] = box
        self.next_tick = max(self.next_tick + PERIOD_NS / 1e9, time.monotonic() - 0.1)
        time.sleep(max(0.0, self.next_tick - time.monotonic()))
        self.record.publishing = stamp
        self.rgb_pub.publish(rgb_msg)
        if kind != "rgb_only":
            self.thermal_pub.publish(thermal_msg)
        self.frame += 1
        self.motion += 1.0 if move else 0.0
        return stamp

    def next_stamp(self) -> int:
        return BASE_NS + self.frame * PERIOD_NS

    def run(self, frames: int, **kw) -> int:
        first = self.next_stamp()
        for _ in range(frames):
            self.step(**kw)
        return first

    def run_until(self, predicate, timeout: float, **kw) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.step(**kw)
            if predicate():
                return True
        return False

    def reset(self) -> bool:
        from std_srvs.srv import Trigger
        future = self.reset_client.call_async(Trigger.Request())
        deadline = time.monotonic() + 10
        while not future.done() and time.monotonic() < deadline:
            self.step(move=False)
        return future.done() and future.result().success

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def with_nans(thermal: np.ndarray) -> np.ndarray:
    values = thermal.astype(np.float32) / 100.0 - 273.15   # a camera reporting degrees Celsius
    values[::7, ::11] = np.nan
    return values


# The real tracker with RT-MDNet's procedure, lightened so that two CPU cores keep up in a test.
LIGHT_TRACKER = {
    "search": {"n_candidates": 64},
    "init": {"n_pos": 100, "n_neg": 500, "iterations": 10},
    "optim": {"neg_candidates": 256},
    "update": {"n_pos": 10, "n_neg": 40, "iterations": 3},
    "bbreg": {"n_samples": 200},
}


def checkpoint_for_test(tmp) -> str:
    """The bundled default model; where it is not there yet, a freshly initialised network.

    Online fine-tuning of fc4-fc6 on the first frame is what locks on to the target, and the
    synthetic target is distinctive, so even untrained conv layers follow it.
    """
    from m5l_core.tracking import default_model_path
    if default_model_path().is_file():
        return ""
    import torch

    from m5l_core.models import M5LNet, ModelConfig, save_checkpoint
    torch.manual_seed(0)
    return str(save_checkpoint(tmp / "untrained.pt", M5LNet(ModelConfig()), ModelConfig()))


def write_params(path, initial_box, checkpoint: str) -> None:
    params = {"initial_bbox": [float(v) for v in initial_box], "device": "cpu", "checkpoint": checkpoint,
              "sync_slop": 0.01, "stream_timeout": 0.5, "diagnostics_period": 0.25, "log_throttle": 1.0,
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
    phases["thermal_back"] = driver.run(60)
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


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_node")
    domain = 1 + os.getpid() % 100
    env = workspace.package_env()
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault(workspace.FASTDDS_PROFILE_VARIABLE, str(workspace.fastdds_profile()))
    workspace.load_built_messages()
    params = tmp / "params.yaml"
    write_params(params, target_box(0), checkpoint_for_test(tmp))
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


def centre_errors(scenario: Scenario, start: int, end: int) -> list[float]:
    errors = []
    for stamp, state, box, _, _ in scenario.record.since(start):
        if stamp < end and state == 1:
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


def test_malformed_images_are_rejected_counted_and_never_tracked(scenario):
    stamps = {o[0] for o in scenario.record.outputs}
    assert not stamps & scenario.record.malformed
    assert diagnostic_counter(scenario, "rejected_rgb_images") >= 1
    assert diagnostic_counter(scenario, "rejected_thermal_images") >= 1
    # 32FC1 thermal with NaN pixels is valid: those pairs are tracked.
    burst = [o for o in scenario.record.since(scenario.phases["malformed"])
             if o[0] < scenario.phases["thermal_off"]]
    assert burst and {o[1] for o in burst} <= {1, 2}


def test_a_stopped_thermal_stream_is_reported_and_tracking_resumes(scenario):
    phases = scenario.phases
    while_off = [message for message, _, stamp in scenario.record.diagnostics
                 if phases["thermal_off"] <= stamp < phases["thermal_back"]]
    assert any("thermal stream stale" in message for message in while_off)
    assert not any("rgb stream stale" in message for message in while_off)
    back = [message for message, _, stamp in scenario.record.diagnostics
            if phases["thermal_back"] + 10**9 <= stamp < phases["reset"]]
    assert back and not any("stale" in message for message in back)
    stamps = {o[0] for o in scenario.record.outputs}
    assert not stamps & scenario.record.rgb_only
    resumed = centre_errors(scenario, scenario.phases["thermal_back"], scenario.phases["reset"])
    assert len(resumed) >= 3


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
