"""Use the colcon build in ``install/`` without sourcing its setup script.

``make run``, the tests and the bag tools start the node from the repository's own build
(``scripts/build_ros.sh``). They need the environment that ``install/setup.bash`` would set,
plus the Fast DDS profile for large images; :func:`package_env` computes it.
:func:`load_built_messages` makes the generated messages importable in a process that is
already running (a test), where changing ``LD_LIBRARY_PATH`` no longer affects the loader.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

PACKAGE = "m5l_tracker_ros"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Fast DDS 3 (Kilted on) reads the first; Fast DDS 2 (Jazzy and older) only the second, which
# Kilted still honours but warns about, so it is set only for those distributions.
FASTDDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
LEGACY_PROFILE_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


class WorkspaceError(RuntimeError):
    """The package has not been built into install/."""


def install_prefix(root: Path = REPO_ROOT) -> Path:
    prefix = Path(root) / "install" / PACKAGE
    if not (prefix / "lib" / PACKAGE / "track_node").exists():
        raise WorkspaceError(f"{prefix}: package not built; run `make setup` or scripts/build_ros.sh")
    return prefix


def site_packages(prefix: Path) -> Path:
    found = sorted(prefix.glob("lib/python3*/site-packages"))
    if not found:
        raise WorkspaceError(f"{prefix}: no lib/python3*/site-packages")
    return found[0]


def fastdds_profile(root: Path = REPO_ROOT) -> Path:
    return Path(root) / "config" / "fastdds_large_images.xml"


def _prepend(env: dict[str, str], name: str, value: Path | str) -> None:
    parts = [p for p in env.get(name, "").split(os.pathsep) if p and p != str(value)]
    env[name] = os.pathsep.join([str(value), *parts])


def package_env(root: Path = REPO_ROOT, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment in which ``install/`` works like a sourced workspace, with the Fast DDS profile."""
    prefix = install_prefix(root)
    env = dict(os.environ if base is None else base)
    _prepend(env, "PYTHONPATH", site_packages(prefix))
    _prepend(env, "LD_LIBRARY_PATH", prefix / "lib")
    _prepend(env, "AMENT_PREFIX_PATH", prefix)
    _prepend(env, "PATH", Path(sys.executable).parent)  # the node's interpreter first, like an activated venv
    env.update(profile_variables(fastdds_profile(root), env.get("ROS_DISTRO", "")))
    return env


def profile_variables(profile: Path | str, ros_distro: str) -> dict[str, str]:
    """The environment variable(s) naming a Fast DDS profile file for this ROS distribution."""
    names = [FASTDDS_PROFILE_VARIABLE]
    if ros_distro.lower() in FAST_DDS_2_DISTROS:
        names.append(LEGACY_PROFILE_VARIABLE)
    return {name: str(profile) for name in names}


def node_command(root: Path = REPO_ROOT, params_file: Path | None = None, *ros_args: str) -> list[str]:
    """Command that starts the installed node (as ``ros2 run`` would) with a params file."""
    command = [sys.executable, str(install_prefix(root) / "lib" / PACKAGE / "track_node"), "--ros-args"]
    if params_file is not None:
        command += ["--params-file", str(params_file)]
    return command + list(ros_args)


def load_built_messages(root: Path = REPO_ROOT) -> None:
    """Make ``m5l_tracker_ros.msg`` importable in this running process."""
    prefix = install_prefix(root)
    site = site_packages(prefix)
    if str(site) not in sys.path:
        sys.path.append(str(site))
    import m5l_tracker_ros
    installed = str(site / PACKAGE)
    if installed not in m5l_tracker_ros.__path__:
        m5l_tracker_ros.__path__.append(installed)
    # The loader read LD_LIBRARY_PATH at start-up: load the message libraries by path, so the
    # extension modules find them by soname; rosidl's type-support lookup reads the variable live.
    _prepend(os.environ, "LD_LIBRARY_PATH", prefix / "lib")
    pending = sorted((prefix / "lib").glob("lib*.so"))
    while pending:
        failed = []
        for library in pending:
            try:
                ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(library)  # a dependency not loaded yet: retry after the others
        if len(failed) == len(pending):
            raise WorkspaceError(f"cannot load {', '.join(p.name for p in failed)}")
        pending = failed
