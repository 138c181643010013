"""Which tracker the node runs: the core's ``load_tracker`` and ``TrackerConfig`` by default.

The node receives a :class:`TrackerBackend` (dependency injection) so that its ROS side can be
exercised with any object following the ``RGBTTracker`` protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from m5l_tracker_ros.params import NodeConfig
from m5l_tracker_ros.session import TrackerFactory


@dataclass(frozen=True)
class TrackerBackend:
    """A tracker config dataclass and ``load_tracker(checkpoint, config, device, seed)``."""

    config_class: type
    load_tracker: Callable[..., Any]

    def build_factory(self, node_config: NodeConfig, tracker_config: Any) -> TrackerFactory:
        checkpoint = node_config.checkpoint or None  # empty = the bundled default model
        device, seed = node_config.device, node_config.seed

        def factory() -> Any:
            return self.load_tracker(checkpoint, tracker_config, device=device, seed=seed)

        return factory


def default_backend() -> TrackerBackend:
    """The M5L tracker of the core (imported here so that the node module loads without torch)."""
    from m5l_core.tracking import TrackerConfig, load_tracker
    return TrackerBackend(TrackerConfig, load_tracker)
