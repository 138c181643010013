"""What ``launch/track.launch.py`` computes from its arguments, without importing launch.

Kept apart from the launch file so that it is tested where ``launch``/``launch_ros`` are not
installed, and so that the launch file only wires actions.

* ``ros2 launch`` refuses an empty value (``checkpoint:=`` is "malformed"), so no argument needs
  one: an argument left out keeps the params file's value, and ``fastdds_profile:=keep`` leaves
  the environment's profile variables alone.
* ``--log-level LEVEL`` would set every logger of the process, rcl's included (hundreds of
  lines per second at debug); the node's own logger is named after its namespace and name.
"""

from __future__ import annotations

from collections.abc import Mapping

from m5l_tracker_ros.params import NODE_NAME

# Launch arguments passed to the node as parameters when given.
PASSED_AS_PARAMETERS = ("rgb_topic", "thermal_topic", "checkpoint", "device")
KEEP = "keep"
TRUE_WORDS = ("true", "1", "yes", "on")
EXECUTABLES = {True: "track_lifecycle_node", False: "track_node"}


def is_true(value: str) -> bool:
    return value.strip().lower() in TRUE_WORDS


def logger_name(namespace: str, node_name: str = NODE_NAME) -> str:
    """rcl's name for a node's logger: namespace parts and node name joined by dots."""
    return ".".join([part for part in namespace.split("/") if part] + [node_name])


def log_level_arguments(level: str, namespace: str, node_name: str = NODE_NAME) -> list[str]:
    """``--ros-args`` that set the level of the node's logger only."""
    return ["--log-level", f"{logger_name(namespace, node_name)}:={level.strip().lower()}"]


def parameter_overrides(arguments: Mapping[str, str]) -> dict[str, object]:
    """Node parameters from the launch arguments that were given (defaults are empty: keep the file's)."""
    overrides: dict[str, object] = {name: arguments[name] for name in PASSED_AS_PARAMETERS
                                    if arguments.get(name, "").strip() not in ("", KEEP)}
    overrides["use_sim_time"] = is_true(arguments.get("use_sim_time", "false"))
    return overrides


def profile_to_set(value: str) -> str | None:
    """The Fast DDS profile file to name in the environment, or None to keep the environment's."""
    value = value.strip()
    return None if value in ("", KEEP) else value
