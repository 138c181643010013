"""launch/track.launch.py: its arguments everywhere; a real `ros2 launch` where ROS 2 has launch_ros.

The node itself is tested without launch in test_ros_node.py; here the launch file is run as
users run it. This machine has no launch/launch_ros/ros2cli, so that test is skipped here.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILE = ROOT / "launch" / "track.launch.py"
ARGUMENTS = {"params_file", "namespace", "rgb_topic", "thermal_topic", "checkpoint", "device", "use_sim_time",
             "fastdds_profile", "log_level"}


def declared_arguments(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}


def test_the_launch_file_declares_the_documented_arguments():
    assert declared_arguments(LAUNCH_FILE) == ARGUMENTS
    text = LAUNCH_FILE.read_text()
    assert "fastdds_large_images.xml" in text and "FASTDDS_DEFAULT_PROFILES_FILE" in text
    assert (ROOT / "config" / "fastdds_large_images.xml").is_file()
    # Every argument is documented in the module docstring users read first.
    doc = ast.get_docstring(ast.parse(text))
    assert all(name in doc for name in ARGUMENTS)


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None or shutil.which("ros2") is None,
                    reason="needs a ROS 2 installation with launch_ros and ros2cli")
def test_ros2_launch_starts_a_node_that_answers_and_stops_on_sigint(tmp_path):
    import rclpy
    from test_ros_node import LIGHT_TRACKER, checkpoint_for_test
    from test_ros_stream import Driver, Record

    from m5l_tracker_ros import workspace
    domain = 1 + (os.getpid() + 50) % 100
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"tracker": LIGHT_TRACKER}}}))
    env = workspace.package_env()
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    command = ["ros2", "launch", "m5l_tracker_ros", "track.launch.py", "namespace:=/m5l_launch",
               f"params_file:={params}", f"checkpoint:={checkpoint_for_test()}", "device:=cpu"]
    log = open(tmp_path / "launch.log", "w")  # noqa: SIM115 - closed after the process ends
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    workspace.load_built_messages()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    record = Record()
    driver = Driver(context, record, "/m5l_launch")
    try:
        deadline = time.monotonic() + 120
        while not driver.matched() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        # No initial box in this params file: the node answers "not initialised" for each pair.
        assert driver.run_until(lambda: len(record.outputs) >= 3, 60), (tmp_path / "launch.log").read_text()
        assert {o[1] for o in record.outputs} == {0} and {o[0] for o in record.outputs} <= set(record.valid)
    finally:
        driver.close()
        rclpy.shutdown(context=context)
        process.send_signal(signal.SIGINT)  # SIGTERM on a launch would orphan its node
        code = process.wait(30)
        log.close()
    assert code == 0, (tmp_path / "launch.log").read_text()
