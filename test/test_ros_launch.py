"""launch/track.launch.py: its arguments and actions everywhere; `ros2 launch` where ROS 2 has launch_ros.

The node itself is tested without launch in test_ros_node.py and test_ros_faults_*.py. Here the
launch file's `_setup` runs against recording stand-ins of launch/launch_ros (this machine has
neither), and, where launch_ros and ros2cli are installed, as users run it.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from m5l_tracker_ros import launch_support

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILE = ROOT / "launch" / "track.launch.py"
ARGUMENTS = {"params_file", "namespace", "rgb_topic", "thermal_topic", "checkpoint", "device", "use_sim_time",
             "fastdds_profile", "log_level", "lifecycle"}


def declared_arguments(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}


def ros2launch_accepts(argument: str) -> bool:
    """ros2launch.api.parse_launch_arguments' rule: `name:=` with nothing after it is malformed."""
    count = argument.count(":=")
    return not (count == 0 or argument.startswith(":=") or (count == 1 and argument.endswith(":=")))


def launch_command(namespace: str, params: Path, lifecycle: bool, log_level: str = "info") -> list[str]:
    """The `ros2 launch` line of the launch test: the bundled model is the default, so no checkpoint."""
    return ["ros2", "launch", "m5l_tracker_ros", "track.launch.py", f"namespace:={namespace}",
            f"params_file:={params}", "device:=cpu", f"lifecycle:={str(lifecycle).lower()}",
            f"log_level:={log_level}"]


def test_the_launch_file_declares_the_documented_arguments():
    assert declared_arguments(LAUNCH_FILE) == ARGUMENTS
    text = LAUNCH_FILE.read_text()
    assert "fastdds_large_images.xml" in text and "FASTDDS_DEFAULT_PROFILES_FILE" in text
    assert (ROOT / "config" / "fastdds_large_images.xml").is_file()
    # Every argument is documented in the module docstring users read first.
    doc = ast.get_docstring(ast.parse(text))
    assert all(name in doc for name in ARGUMENTS)


def test_no_documented_or_tested_launch_line_needs_an_empty_argument(tmp_path):
    readme_lines = [line for line in (ROOT / "README.md").read_text().splitlines() if "ros2 launch" in line]
    words = [word for line in readme_lines for word in line.split() if ":=" in word]
    for lifecycle in (True, False):
        words += launch_command("/ns", tmp_path / "p.yaml", lifecycle)
    assert not ros2launch_accepts("checkpoint:=")  # the rule itself, as real ros2 launch applies it
    assert all(ros2launch_accepts(word) for word in words if ":=" in word), words


def test_arguments_left_out_keep_the_params_file_and_keep_keeps_the_environment():
    given = {"rgb_topic": "/cam/rgb", "thermal_topic": "", "checkpoint": "keep", "device": "cpu",
             "use_sim_time": "True"}
    assert launch_support.parameter_overrides(given) == {"rgb_topic": "/cam/rgb", "device": "cpu",
                                                          "use_sim_time": True}
    assert launch_support.profile_to_set("keep") is None
    assert launch_support.profile_to_set("/p.xml") == "/p.xml"


def test_the_log_level_names_the_node_logger_only():
    assert launch_support.log_level_arguments("DEBUG", "") == ["--log-level", "m5l_tracker:=debug"]
    assert launch_support.log_level_arguments("warn", "/robot/front/") == [
        "--log-level", "robot.front.m5l_tracker:=warn"]


# --- the launch file's actions, with recording stand-ins for launch and launch_ros -------------------

class Recorded:
    """Any launch action or event: its type name and constructor arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _kind(name: str) -> type:
    return type(name, (Recorded,), {})


class FakeLaunchConfiguration:
    values: dict = {}

    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def fake_launch_modules() -> dict[str, types.ModuleType]:
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "EmitEvent", "OpaqueFunction", "RegisterEventHandler",
                           "SetEnvironmentVariable"],
        "launch.events": [],
        "launch.substitutions": ["PathJoinSubstitution"],
        "launch_ros": [], "launch_ros.actions": ["LifecycleNode", "Node"],
        "launch_ros.event_handlers": ["OnStateTransition"], "launch_ros.events": [],
        "launch_ros.events.lifecycle": ["ChangeState"], "launch_ros.substitutions": ["FindPackageShare"],
    }
    modules = {}
    for module_name, classes in names.items():
        module = types.ModuleType(module_name)
        for cls in classes:
            setattr(module, cls, _kind(cls))
        modules[module_name] = module
    modules["launch.substitutions"].LaunchConfiguration = FakeLaunchConfiguration
    modules["launch.events"].matches_action = lambda action: ("matches", action)
    return modules


@pytest.fixture
def launch_file(monkeypatch):
    pytest.importorskip("lifecycle_msgs")
    for name, module in fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("track_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup_actions(launch_file, **given) -> list:
    values = {"params_file": "/share/config/track.yaml", "namespace": "/m5l", "rgb_topic": "",
              "thermal_topic": "", "checkpoint": "", "device": "", "use_sim_time": "false",
              "fastdds_profile": "/share/fastdds.xml", "log_level": "info", "lifecycle": "true", **given}
    return launch_file._setup(values)


def test_by_default_the_managed_node_is_started_and_driven_to_active(launch_file):
    from lifecycle_msgs.msg import Transition
    actions = setup_actions(launch_file, log_level="debug")
    kinds = [type(a).__name__ for a in actions]
    assert kinds == ["SetEnvironmentVariable", "RegisterEventHandler", "LifecycleNode", "EmitEvent"]
    node = actions[2]
    assert node.kwargs["executable"] == "track_lifecycle_node" and node.kwargs["namespace"] == "/m5l"
    assert node.kwargs["ros_arguments"] == ["--log-level", "m5l.m5l_tracker:=debug"]
    assert "emulate_tty" not in node.kwargs  # log files without colour codes
    assert node.kwargs["parameters"] == ["/share/config/track.yaml", {"use_sim_time": False}]
    configure = actions[3].kwargs["event"]
    assert configure.kwargs["transition_id"] == Transition.TRANSITION_CONFIGURE
    assert configure.kwargs["lifecycle_node_matcher"] == ("matches", node)
    handler = actions[1].args[0]
    assert handler.kwargs["target_lifecycle_node"] is node
    assert (handler.kwargs["start_state"], handler.kwargs["goal_state"]) == ("configuring", "inactive")
    activate = handler.kwargs["entities"][0].kwargs["event"]
    assert activate.kwargs["transition_id"] == Transition.TRANSITION_ACTIVATE


def test_lifecycle_false_starts_the_plain_node_and_keep_leaves_the_profile_alone(launch_file):
    actions = setup_actions(launch_file, lifecycle="false", fastdds_profile="keep", checkpoint="/m.pt")
    assert [type(a).__name__ for a in actions] == ["Node"]
    assert actions[0].kwargs["executable"] == "track_node"
    assert actions[0].kwargs["parameters"][1] == {"checkpoint": "/m.pt", "use_sim_time": False}


# --- the real thing, where ROS 2 has launch_ros and ros2cli --------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None or shutil.which("ros2") is None,
                    reason="needs a ROS 2 installation with launch_ros and ros2cli")
@pytest.mark.parametrize("lifecycle", [True, False])
def test_ros2_launch_starts_a_node_that_answers_and_stops_on_sigint(tmp_path, lifecycle):
    import rclpy
    from test_ros_node import LIGHT_TRACKER
    from test_ros_stream import Driver, Record

    from m5l_tracker_ros import workspace
    domain = 1 + (os.getpid() + 50 + lifecycle) % 100
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"tracker": LIGHT_TRACKER}}}))
    env = workspace.package_env()
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    log_path = tmp_path / "launch.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed after the process ends
    process = subprocess.Popen(launch_command("/m5l_launch", params, lifecycle, "debug"), env=env, stdout=log,
                               stderr=subprocess.STDOUT)
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
        assert driver.run_until(lambda: len(record.outputs) >= 3, 60), log_path.read_text()
        assert {o[1] for o in record.outputs} == {0} and {o[0] for o in record.outputs} <= set(record.valid)
    finally:
        driver.close()
        rclpy.shutdown(context=context)
        process.send_signal(signal.SIGINT)  # SIGTERM on a launch would orphan its node
        code = process.wait(30)
        log.close()
    text = log_path.read_text()
    assert code == 0, text
    assert "diagnostics:" in text                      # the node's debug messages...
    assert not re.search(r"\[rcl(\.|\])", text), text  # ...and none of rcl's
    assert "\x1b[" not in text and "exit code -" not in text and "Traceback" not in text, text
