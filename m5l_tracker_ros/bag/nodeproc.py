"""Starting and stopping the tracking node as a child process for a replay.

The node runs from the repository's colcon build (``install/``, see
:mod:`m5l_tracker_ros.workspace`) with the venv's Python, or with ``ros2 run`` where the package
is installed in a sourced workspace instead; always with the Fast DDS profile for large images.
Its log goes to a file that is quoted when it dies. SIGINT stops it (the node exits 0 within
a second on SIGINT or SIGTERM, see ``m5l_tracker_ros.process``), then SIGKILL if it does not exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.workspace import (
    PACKAGE,
    WorkspaceError,
    fastdds_profile,
    node_command,
    package_env,
    profile_variables,
)

STOP_TIMEOUT_S = 10.0


def ros_argument(value) -> str:
    """A Python value as the YAML text of a ``-p name:=value`` override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_argument(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def with_large_image_profile(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """``env`` naming the package's Fast DDS profile for large images, unless it names one already.

    Every process of a replay needs it: the publisher's side decides whether a frame fits the
    shared-memory segment (GUIDE §3: with the defaults most frames are lost).
    """
    profile = fastdds_profile()
    if profile.is_file():
        for name, value in profile_variables(profile, env.get("ROS_DISTRO", "")).items():
            env.setdefault(name, value)
    return env


class NodeProcess:
    """``with NodeProcess(...) as node:`` runs the node for the duration of the block."""

    def __init__(self, log_path: Path, params_file: Path | None = None,
                 parameters: Mapping[str, object] | None = None, extra_ros_args: list[str] | None = None):
        self.log_path = Path(log_path)
        self.params_file = params_file
        self.parameters = dict(parameters or {})
        self.extra_ros_args = list(extra_ros_args or [])
        self._process: subprocess.Popen | None = None

    def _ros_args(self) -> list[str]:
        args = ["--params-file", str(self.params_file)] if self.params_file is not None else []
        for name, value in self.parameters.items():
            args += ["-p", f"{name}:={ros_argument(value)}"]
        return args + self.extra_ros_args

    def command_and_env(self) -> tuple[list[str], dict[str, str]]:
        """This repository's colcon build; else, in a sourced ROS workspace, ``ros2 run``."""
        try:
            return node_command() + self._ros_args(), package_env()
        except WorkspaceError as err:
            if shutil.which("ros2") is None:
                raise BagError(f"{err} (and no `ros2` to run an installed m5l_tracker_ros)") from None
        env = with_large_image_profile(dict(os.environ))
        return ["ros2", "run", PACKAGE, "track_node", "--ros-args", *self._ros_args()], env

    def start(self) -> NodeProcess:
        command, env = self.command_and_env()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
        return self

    def check_alive(self) -> None:
        """Raise a BagError quoting the node's log if it has exited."""
        if self._process is not None and self._process.poll() is not None:
            raise BagError(f"the tracker node exited with status {self._process.returncode}; "
                           f"its log ({self.log_path}) ends with:\n{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> int | None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
