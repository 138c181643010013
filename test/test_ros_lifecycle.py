"""The managed node (track_lifecycle_node) driven through its life cycle by lifecycle_msgs service calls.

One node process in an isolated domain: configure loads the model, activate subscribes and
publishes, deactivate pauses without losing the target, cleanup frees the model, and SIGTERM
while active ends the process with status 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
lifecycle_msgs = pytest.importorskip("lifecycle_msgs")

from ros_faults_harness import wait_for  # noqa: E402
from test_ros_node import LIGHT_TRACKER  # noqa: E402
from test_ros_stream import Driver, Record  # noqa: E402

from m5l_tracker_ros import workspace  # noqa: E402

pytestmark = pytest.mark.ros

NAMESPACE = "/m5l_managed"
TRACKING, NOT_INITIALISED, PREDICTED = 1, 0, 3


class Manager:
    """What `ros2 lifecycle set/get` do: the node's change_state and get_state services."""

    def __init__(self, driver: Driver) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState
        self.change = driver.node.create_client(ChangeState, f"{NAMESPACE}/m5l_tracker/change_state")
        self.get = driver.node.create_client(GetState, f"{NAMESPACE}/m5l_tracker/get_state")

    def _call(self, client, request, timeout: float = 90, attempts: int = 1):
        for _ in range(attempts):
            future = client.call_async(request)
            if wait_for(future.done, timeout / attempts):
                return future.result()
        raise AssertionError(f"{client.srv_name}: no answer")

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState
        # A reply can be lost while the server has not yet matched this client's reply reader (under
        # load the node logs "failed to send response (timeout)"); asking for the state again is
        # harmless, unlike repeating a transition.
        return self._call(self.get, GetState.Request(), attempts=3).current_state.label

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success


def test_configure_activate_deactivate_cleanup_and_sigterm(tmp_path):
    from lifecycle_msgs.msg import Transition
    domain = 1 + (os.getpid() + 33) % 100
    env = workspace.package_env()
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    workspace.load_built_messages()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "device": "cpu", "sync_slop": 0.01, "diagnostics_period": 0.25, "tracker": LIGHT_TRACKER}}}))
    log_path = tmp_path / "node.log"
    command = workspace.node_command(workspace.REPO_ROOT, params, "-r", f"__ns:={NAMESPACE}")
    command[1] = command[1].replace("track_node", "track_lifecycle_node")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    record = Record()
    driver = Driver(context, record, NAMESPACE)
    manager = Manager(driver)
    try:
        assert manager.get.wait_for_service(timeout_sec=120), log_path.read_text()
        assert manager.state() == "unconfigured"
        assert driver.rgb_pub.get_subscription_count() == 0    # nothing subscribed before activation

        assert manager.transition(Transition.TRANSITION_CONFIGURE), log_path.read_text()
        assert manager.state() == "inactive" and "model loaded" in log_path.read_text()
        assert manager.transition(Transition.TRANSITION_ACTIVATE)
        assert wait_for(driver.matched, 30)
        time.sleep(1.0)
        from sensor_msgs.msg import RegionOfInterest
        x, y, w, h = (int(round(v)) for v in driver.box())
        driver.init_pub.publish(RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h))
        assert driver.run_until(lambda: any(o[1] == TRACKING for o in record.outputs), 90, move=False)

        assert manager.transition(Transition.TRANSITION_DEACTIVATE)
        assert manager.state() == "inactive"
        assert wait_for(lambda: driver.rgb_pub.get_subscription_count() == 0, 10)   # paused: unsubscribed
        paused = driver.run(15, move=False)
        time.sleep(0.5)
        assert record.since(paused) == []

        assert manager.transition(Transition.TRANSITION_ACTIVATE)
        assert wait_for(driver.matched, 30)
        resumed = driver.next_stamp()
        def tracked():
            return [o for o in record.since(resumed) if o[1] != PREDICTED]

        assert driver.run_until(tracked, 60, move=False)
        assert tracked()[0][1] == TRACKING   # the target was kept: no new box needed

        assert manager.transition(Transition.TRANSITION_DEACTIVATE)
        assert manager.transition(Transition.TRANSITION_CLEANUP)
        assert manager.state() == "unconfigured" and "model freed" in log_path.read_text()
        assert manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.transition(Transition.TRANSITION_ACTIVATE)
        assert manager.state() == "active"
    finally:
        driver.close()
        rclpy.shutdown(context=context)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)   # SIGTERM while active: a clean stop as well
        try:
            code = process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = None
    log = log_path.read_text()
    assert code == 0, log
    assert "SIGTERM: stopping" in log and "Traceback" not in log, log
