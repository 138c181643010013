"""Build a tracker from an ``m5l-train`` checkpoint, or from the bundled default model."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from m5l_core.models import CheckpointError, load_checkpoint
from m5l_core.tracking.config import TrackerConfig
from m5l_core.tracking.runtime import resolve_device
from m5l_core.tracking.tracker import M5LTracker

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default_model.pt"


def default_model_path() -> Path:
    return DEFAULT_MODEL


def load_tracker(checkpoint: str | os.PathLike | None = None, config: TrackerConfig | None = None,
                 device: str = "auto", seed: int = 0) -> M5LTracker:
    """An initialisable tracker: the network of ``checkpoint`` (None = the bundled default model).

    Raises :class:`m5l_core.models.CheckpointError` naming the file when it is missing, corrupt,
    of another format, or its weights do not match its saved model config.
    """
    if checkpoint is None:
        checkpoint = DEFAULT_MODEL
        if not checkpoint.is_file():
            raise CheckpointError(f"{checkpoint}: the bundled default model is missing; pass a checkpoint "
                                  "from m5l-train, or recreate it (see m5l_core/assets/README.md)")
    resolved = resolve_device(device)
    model, model_config, extra = load_checkpoint(checkpoint, device=resolved)
    return M5LTracker(model, model_config, config_for_checkpoint(config, extra), resolved, seed)


def config_for_checkpoint(config: TrackerConfig | None, extra: dict) -> TrackerConfig:
    """``config`` with ``search.target_size = 0`` resolved to the size the checkpoint was trained at.

    Tracking at the training scale makes the crops look like the training crops.
    """
    config = config or TrackerConfig()
    trained = trained_target_size(extra)
    if config.search.target_size == 0 and trained:
        config = dataclasses.replace(config, search=dataclasses.replace(config.search, target_size=trained))
    return config


def trained_target_size(extra: dict) -> int | None:
    """Target side in crop pixels that ``m5l-train`` used, when the checkpoint records it."""
    sampling = (extra.get("train_config") or {}).get("sampling") or {}
    size = sampling.get("target_size")
    return int(round(size)) if isinstance(size, (int, float)) and size > 0 else None
