"""The node's own settings: one frozen dataclass, the single home of their defaults.

The tracker's settings live in ``m5l_core.tracking.TrackerConfig`` and appear as ROS
parameters under ``tracker.``; these are the node's (topics, pairing, QoS, worker, init).
``config/track.yaml`` only overrides them. Fields marked ``read_only`` need a restart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from m5l_core.config import ConfigError, param

QOS_CHOICES = ("sensor_data", "reliable")
NODE_NAME = "m5l_tracker"


@dataclass(frozen=True)
class NodeConfig:
    """Topics, pairing, image QoS, worker and initialisation of the tracking node."""

    rgb_topic: str = param("rgb/image_raw", "RGB sensor_msgs/Image topic (relative: in the node's namespace)",
                           read_only=True)
    thermal_topic: str = param("thermal/image_raw",
                               "thermal sensor_msgs/Image topic (relative: in the node's namespace)",
                               read_only=True)
    output_topic: str = param("/m5l/target_bbox", "m5l_tracker_ros/TrackedTarget output topic",
                              read_only=True)
    sync_slop: float = param(0.05, "seconds: an RGB and a thermal image are paired when their stamps differ "
                             "by less", low=1e-4, high=10.0, read_only=True)
    sync_queue_size: int = param(10, "images kept per stream while waiting for a partner", low=1, high=1000,
                                 read_only=True)
    image_qos: str = param("sensor_data", "image subscriptions: sensor_data (best effort, works with every "
                           "publisher) or reliable (only matches reliable publishers)",
                           choices=QOS_CHOICES, read_only=True)
    image_qos_depth: int = param(5, "history depth of the image subscriptions", low=1, high=100,
                                 read_only=True)
    device: str = param("auto", "where the network runs: auto (CUDA if available), cpu or cuda",
                        choices=("auto", "cpu", "cuda"), read_only=True)
    checkpoint: str = param("", "tracker checkpoint file, or bundled:default / bundled:realtime (the "
                                "models in m5l_core/assets); empty = bundled:default", read_only=True)
    seed: int = param(0, "seed of the tracker's random sampling", low=0, high=2**31 - 1, read_only=True)
    initial_bbox: tuple[float, ...] = param(
        (0.0, 0.0, 0.0, 0.0), "x, y, width, height of the target in RGB pixels; width or height 0 = wait for "
        "~/init. Setting it while running re-initialises on the next pair", low=0.0)
    pending_pairs: int = param(1, "pairs waiting for the tracker; when full the oldest is dropped and "
                               "counted (1 = always track the newest pair)", low=1, high=1000, read_only=True)
    predict_dropped: bool = param(True, "publish a box for each dropped pair too: the last tracked box moved "
                                  "by optical flow into it (state PREDICTED, a few ms on the executor "
                                  "thread); false = dropped pairs get no output")
    debug_image: bool = param(False, "publish ~/debug_image (RGB image with the box) while it has "
                              "subscribers")
    diagnostics_period: float = param(1.0, "seconds between /diagnostics messages", low=0.05, high=60.0,
                                      read_only=True)
    stream_timeout: float = param(1.0, "seconds without an image after which a stream is reported stale",
                                  low=0.05, high=3600.0)
    min_delivery_ratio: float = param(0.5, "warn (throttled, and in /diagnostics) when less than this share "
                                      "of a stream's images arrives, judged from the publisher's stamps: "
                                      "the publisher lacks the Fast DDS large-image profile", low=0.0,
                                      high=1.0)
    log_throttle: float = param(5.0, "minimum seconds between two warnings of the same kind", low=0.0,
                                high=3600.0)
    max_image_side: int = param(8192, "images wider or taller than this are rejected", low=16, high=65536,
                                read_only=True)


def check_node_config(config: NodeConfig, source: str = "parameters") -> NodeConfig:
    """Cross-field checks the per-field ranges cannot express; raises ConfigError naming the field."""
    if len(config.initial_bbox) != 4:
        raise ConfigError(f"{source}: NodeConfig.initial_bbox: expected 4 values (x, y, width, height), "
                          f"got {len(config.initial_bbox)}")
    if not all(math.isfinite(v) for v in config.initial_bbox):
        raise ConfigError(f"{source}: NodeConfig.initial_bbox: values must be finite, "
                          f"got {config.initial_bbox}")
    return config


def initial_box(config: NodeConfig) -> tuple[float, float, float, float] | None:
    """The configured initial box, or None when width or height is zero (wait for ~/init)."""
    x, y, w, h = config.initial_bbox
    return (x, y, w, h) if w > 0 and h > 0 else None
