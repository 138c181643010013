#!/usr/bin/env bash
# Start the tracking node with a params file (default config/track.yaml).
#
# With a sourced ROS 2 that has `ros2`: ros2 launch m5l_tracker_ros track.launch.py.
# Without (this project's machines): the same installed executable, run by the venv's Python
# with the environment of install/local_setup.sh and the Fast DDS profile for large images.
#
# Usage: scripts/ros_run.sh [PARAMS_FILE] [extra --ros-args arguments, e.g. -p device:=cpu]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-.venv}
PARAMS=$(realpath "${1:-config/track.yaml}")
shift || true

if [[ ! -x install/m5l_tracker_ros/lib/m5l_tracker_ros/track_node ]]; then
  echo "error: the package is not built; run 'make setup' (or scripts/build_ros.sh)" >&2
  exit 2
fi

# Fast DDS 3 (Kilted) reads FASTDDS_...; Fast DDS 2 (Jazzy) only FASTRTPS_... (Kilted warns about it).
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$ROOT/config/fastdds_large_images.xml}
case "${ROS_DISTRO:-}" in
  humble|iron|jazzy) export FASTRTPS_DEFAULT_PROFILES_FILE=${FASTRTPS_DEFAULT_PROFILES_FILE:-$FASTDDS_DEFAULT_PROFILES_FILE} ;;
esac

set +u  # colcon's setup scripts read unset variables
# shellcheck disable=SC1091
. "$ROOT/install/local_setup.sh"
set -u

if [[ -n "${ROS_DISTRO:-}" ]] && command -v ros2 >/dev/null 2>&1; then
  exec ros2 launch m5l_tracker_ros track.launch.py params_file:="$PARAMS" \
    fastdds_profile:="$FASTDDS_DEFAULT_PROFILES_FILE" "$@"
fi
exec "$VENV/bin/python" install/m5l_tracker_ros/lib/m5l_tracker_ros/track_node \
  --ros-args --params-file "$PARAMS" "$@"
