"""A ``rosbags`` typestore that knows the standard ROS 2 messages and ``TrackedTarget``.

``TrackedTarget`` is registered from the same ``msg/TrackedTarget.msg`` text that colcon
generates the rclpy class from, so bags with the node's outputs can be written and read
without a ROS install, and their type hash matches the one a real ``ros2 bag record`` stores.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from m5l_tracker_ros.bag.errors import BagError

TRACKED_TARGET = "m5l_tracker_ros/msg/TrackedTarget"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

_MSG_RELATIVE = Path("msg") / "TrackedTarget.msg"


def tracked_target_msg_candidates() -> list[Path]:
    """Where ``TrackedTarget.msg`` may live: the source tree, then every ament prefix."""
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / _MSG_RELATIVE]  # repository root (editable / symlink install)
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    # <prefix>/lib/pythonX.Y/site-packages/m5l_tracker_ros/bag/typestore.py -> <prefix>
    installed = Path(__file__).absolute().parents
    if len(installed) > 5:
        prefixes.append(installed[5])
    candidates += [p / "share" / "m5l_tracker_ros" / _MSG_RELATIVE for p in prefixes]
    return candidates


def tracked_target_msg_text() -> str:
    for path in tracked_target_msg_candidates():
        if path.is_file():
            return path.read_text(encoding="utf-8")
    tried = ", ".join(str(p) for p in tracked_target_msg_candidates())
    raise BagError(f"cannot find TrackedTarget.msg (tried {tried})")


@cache
def typestore() -> Typestore:
    """The shared typestore (built once; registering is not free)."""
    store_id = getattr(Stores, "ROS2_KILTED", Stores.ROS2_JAZZY)
    store = get_typestore(store_id)
    store.register(get_types_from_msg(tracked_target_msg_text(), TRACKED_TARGET))
    return store
