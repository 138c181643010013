"""What the replayed node must share with the offline runner, as node parameters.

For a lockstep replay to reproduce ``m5l-track`` box by box the node needs the same
checkpoint, seed, device and ``TrackerConfig``; the tracker config is given here exactly as to
``m5l-track`` (a YAML file and ``--set key=value``) and becomes ``tracker.*`` parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from m5l_core.config import to_dict
from m5l_core.tracking import TrackerConfig
from m5l_core.tracking.runner_cli import tracker_config, tracker_file

TRACKER_PREFIX = "tracker."
MAX_STREAM_TIMEOUT_S = 3600.0  # the upper bound of NodeConfig.stream_timeout


def load_tracker_config(path: Path | None, overrides: list[str]) -> TrackerConfig:
    """The tracker config of ``m5l-track --config PATH --set ...``, read by m5l-track's own code
    (so both see the same settings); errors are ConfigError."""
    return tracker_config(path, list(overrides))


def named_settings(path: Path | None, overrides: list[str]) -> set[str]:
    """The dotted tracker settings that ``--config PATH`` and ``--set`` name, whatever their values."""
    named = {assignment.split("=", 1)[0].strip() for assignment in overrides}
    if path is not None:
        data = tracker_file(path)
        named |= set(_flatten(data, "")) if isinstance(data, Mapping) else set()
    return named


def _flatten(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def tracker_parameters(config: TrackerConfig, named: Iterable[str] = ()) -> dict[str, Any]:
    """``tracker.*`` node parameters for the fields that differ from the defaults, and for the
    ``named`` ones (dotted, as ``--set`` names them) whatever their value.

    Only those are passed: the node starts from the same defaults, and an empty list (a default
    tuple) has no ROS parameter type to be given on a command line. A named setting goes even at
    its default value, because a node params file (config/track.yaml) may set it otherwise.
    """
    wanted = _flatten(to_dict(config), TRACKER_PREFIX)
    default = _flatten(to_dict(TrackerConfig()), TRACKER_PREFIX)
    named = {TRACKER_PREFIX + name for name in named}

    def is_named(name: str) -> bool:   # the setting itself, or a section holding it
        return any(name == n or name.startswith(n + ".") for n in named)

    return {name: value for name, value in wanted.items()
            if default.get(name) != value or (is_named(name) and value != ())}


def node_parameters(tracker_config: TrackerConfig, checkpoint: Path | None, seed: int, device: str | None,
                    slop: float, queue_size: int, quiet_gap_s: float | None = None,
                    named: Iterable[str] = ()) -> dict[str, Any]:
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
    params.update(tracker_parameters(tracker_config, named))
    return params
