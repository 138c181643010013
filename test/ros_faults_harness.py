"""One running tracking node (a separate process, isolated ROS domain) for fault injection.

Each test module's ``node`` fixture starts one (:func:`running_node`), tracking a synthetic target
(test_ros_stream), and hands the tests a :class:`Harness`: the process, an in-process driver that
publishes pairs, what the node sent back, and checks that nothing was lost (the node is alive,
keeps its target and answers the next valid pair). The node runs with use_sim_time (so /clock can
jump) and with its own logger at debug (``launch_support.log_level_arguments``, the launch file's
way), which must not turn on rcl's debug output. The faults: test_ros_faults_streams.py (what
arrives on the image topics) and test_ros_faults_control.py (boxes, parameters, signals); README
"Fault injection" lists them with the process- and offline-level ones.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from test_ros_node import LIGHT_TRACKER, node_env  # noqa: E402
from test_ros_stream import Driver, Record, image  # noqa: E402

from m5l_tracker_ros import launch_support, workspace  # noqa: E402

NAMESPACE = "/m5l_faults"
NODE = f"{NAMESPACE}/m5l_tracker"
TRACKING, NOT_INITIALISED, PREDICTED = 1, 0, 3   # PREDICTED: a dropped pair's optical-flow box
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


def running_node(tmp_path_factory):
    """The body of each test module's ``node`` fixture: start the node, initialise it on the driver's
    target, yield the :class:`Harness` once it tracks, stop everything afterwards."""
    tmp = tmp_path_factory.mktemp("ros_faults")
    domain = 1 + (os.getpid() + 17) % 100
    env = node_env(domain)
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
