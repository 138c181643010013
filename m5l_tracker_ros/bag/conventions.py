"""Topic names, metadata keys and file names shared by the three bag tools and the node.

The image and init topics are the node's defaults (``rgb/image_raw``, ``thermal/image_raw`` and
``~/init`` of the node ``m5l_tracker`` in the root namespace), so a bag made by
``m5l-make-bag`` also drives the node with a plain ``ros2 bag play``.
"""

from __future__ import annotations

from pathlib import Path

from m5l_tracker_ros.params import NodeConfig

NODE_NAME = "m5l_tracker"
_DEFAULTS = NodeConfig()
RGB_TOPIC = "/" + _DEFAULTS.rgb_topic.lstrip("/")
THERMAL_TOPIC = "/" + _DEFAULTS.thermal_topic.lstrip("/")
OUTPUT_TOPIC = _DEFAULTS.output_topic
INIT_TOPIC = f"/{NODE_NAME}/init"
INIT_TYPE = "sensor_msgs/msg/RegionOfInterest"

# metadata.yaml custom_data keys (strings only, as rosbag2 requires)
META_INIT_BOX = "m5l.init_box"
META_SEQUENCE = "m5l.sequence"
META_BENCHMARK = "m5l.benchmark"
META_FRAMES = "m5l.frames"
META_SOURCE_BAG = "m5l.source_bag"  # outputs bag of a replay -> the bag whose images were replayed


def gt_paths(bag: str | Path) -> tuple[Path, Path]:
    """The ground-truth files written beside a bag: RGB, and thermal (only when it differs)."""
    bag = Path(bag)
    return bag.with_name(bag.name + ".gt.txt"), bag.with_name(bag.name + ".gt_thermal.txt")
