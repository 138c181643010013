"""What the replayed node must share with the offline runner, as node parameters.

For a lockstep replay to reproduce ``m5l-track`` box by box the node needs the same
checkpoint, seed, device and ``TrackerConfig``; the tracker config is given here exactly as to
``m5l-track`` (a YAML file and ``--set key=value``) and becomes ``tracker.*`` parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from m5l_core.config import to_dict
from m5l_core.tracking import TrackerConfig
from m5l_core.tracking.runner_cli import tracker_config

TRACKER_PREFIX = "tracker."
MAX_STREAM_TIMEOUT_S = 3600.0  # the upper bound of NodeConfig.stream_timeout


def load_tracker_config(path: Path | None, overrides: list[str]) -> TrackerConfig:
    """The tracker config of ``m5l-track --config PATH --set ...``, read by m5l-track's own code
    (so both see the same settings); errors are ConfigError."""
    return tracker_config(path, list(overrides))


def _flatten(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def tracker_parameters(config: TrackerConfig) -> dict[str, Any]:
    """``tracker.*`` node parameters for the fields that differ from the defaults.

    Only differences are passed: the node starts from the same defaults, and an empty list
    (a default tuple) has no ROS parameter type to be given on a command line.
    """
    wanted = _flatten(to_dict(config), TRACKER_PREFIX)
    default = _flatten(to_dict(TrackerConfig()), TRACKER_PREFIX)
    return {name: value for name, value in wanted.items() if default.get(name) != value}


def node_parameters(tracker_config: TrackerConfig, checkpoint: Path | None, seed: int, device: str | None,
                    slop: float, queue_size: int, quiet_gap_s: float | None = None) -> dict[str, Any]:
    """Every node parameter a replay sets; ``pending_pairs`` 1 is the node's own
    newest-pair-wins policy (lockstep never has a second pair pending).

    ``quiet_gap_s``: the longest pause between images (lockstep waits for every output), so
    the node does not report its streams stale meanwhile.
    """
    params: dict[str, Any] = {"seed": int(seed), "sync_slop": float(slop), "sync_queue_size": int(queue_size),
                              "pending_pairs": 1}
    if quiet_gap_s is not None:
        params["stream_timeout"] = float(min(MAX_STREAM_TIMEOUT_S, max(1.0, quiet_gap_s)))
    if checkpoint is not None:
        params["checkpoint"] = str(Path(checkpoint).resolve())
    if device is not None:
        params["device"] = device
    params.update(tracker_parameters(tracker_config))
    return params
