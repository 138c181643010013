#!/usr/bin/env bash
# Build the ROS 2 package (messages + Python + node + launch/config) into install/ with colcon.
#
# Two toolchains:
#   * a sourced ROS 2 (Jazzy, Kilted): the usual colcon build, nothing patched;
#   * no ROS install (this project's machines): the ROS 2 Kilted build wheels in the venv.
#     Those wheels carry CMake exports that hard-code the include dirs of the machine that
#     built them (/opt/python/cp311-cp311/...); they are rewritten once to this venv's paths.
#
# Usage: scripts/build_ros.sh [VENV]   (default .venv; run from anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${1:-.venv}
VENV=$(cd "$VENV" && pwd)
PY=$VENV/bin/python

# Idempotent: files already pointing at this venv are left alone.
fix_wheel_cmake_exports() {
  "$PY" - "$VENV" <<'PYEOF'
import sys
import sysconfig
from pathlib import Path

import numpy

venv = Path(sys.argv[1])
replacements = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}
fixed = 0
for path in sorted((venv / "share").glob("*/cmake/*.cmake")):
    text = path.read_text()
    new = text
    for old, repl in replacements.items():  # numpy first: it contains no prefix of the other
        new = new.replace(old, repl)
    if new != text:
        path.write_text(new)
        fixed += 1
print(f"build_ros: rewrote wheel include paths in {fixed} cmake files")
PYEOF
}

if [[ -n "${ROS_DISTRO:-}" && -z "${M5L_FORCE_VENV_ROS:-}" ]]; then
  echo "build_ros: using the sourced ROS 2 $ROS_DISTRO"
  COLCON=$(command -v colcon)
  CMAKE_ARGS=(-DPython3_EXECUTABLE="$(command -v python3)")
else
  echo "build_ros: using the ROS 2 wheels in $VENV"
  fix_wheel_cmake_exports
  export AMENT_PREFIX_PATH=$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
  export CMAKE_PREFIX_PATH=$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  export PATH=$VENV/bin:$PATH
  COLCON=$VENV/bin/colcon
  CMAKE_ARGS=(-DPython3_EXECUTABLE="$PY")
fi

# --symlink-install: the installed Python modules are links to the sources, so editing them
# needs no rebuild (adding or removing a file does).
"$COLCON" --log-base log build \
  --base-paths "$ROOT" --build-base build --install-base install \
  --symlink-install --event-handlers console_direct- \
  --cmake-args "${CMAKE_ARGS[@]}" -DBUILD_TESTING=OFF
