"""Build a tracker from an ``m5l-train`` checkpoint, or from a bundled model.

Two models ship in ``m5l_core/assets`` (see its README): ``default`` (stride-8 trunk, the offline
tools' choice: the better boxes) and ``realtime`` (the same recipe on a stride-16 trunk, about
1.35x the outputs per second in the node; ``config/track.yaml`` gives it to the node). A
checkpoint argument of ``bundled:NAME`` names one of them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from m5l_core.models import CheckpointError, load_checkpoint
from m5l_core.tracking.bbreg import BoxPrior
from m5l_core.tracking.box_head import BoxHead
from m5l_core.tracking.config import TrackerConfig
from m5l_core.tracking.runtime import resolve_device
from m5l_core.tracking.tracker import M5LTracker

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_MODEL = ASSETS / "default_model.pt"
BUNDLED_PREFIX = "bundled:"
BUNDLED_MODELS = {"default": DEFAULT_MODEL, "realtime": ASSETS / "realtime_model.pt"}


def default_model_path() -> Path:
    return DEFAULT_MODEL


def checkpoint_path(checkpoint: str | os.PathLike | None) -> Path:
    """The file behind a checkpoint argument: None = the default model, ``bundled:NAME`` = a bundled
    one (which must exist: a missing one is a packaging problem, said here once)."""
    text = f"{BUNDLED_PREFIX}default" if checkpoint is None else os.fspath(checkpoint)
    if not text.startswith(BUNDLED_PREFIX):
        return Path(text)
    name = text[len(BUNDLED_PREFIX):]
    if name not in BUNDLED_MODELS:
        raise CheckpointError(f"{text}: no bundled model named {name!r} (bundled: "
                              f"{', '.join(BUNDLED_PREFIX + known for known in BUNDLED_MODELS)})")
    if not BUNDLED_MODELS[name].is_file():
        raise CheckpointError(f"{BUNDLED_MODELS[name]}: this bundled model is missing; pass a checkpoint "
                              "from m5l-train, or recreate it (see m5l_core/assets/README.md)")
    return BUNDLED_MODELS[name]


def load_tracker(checkpoint: str | os.PathLike | None = None, config: TrackerConfig | None = None,
                 device: str = "auto", seed: int = 0) -> M5LTracker:
    """An initialisable tracker: the network of ``checkpoint`` (None = the bundled default model,
    ``bundled:NAME`` = a bundled model).

    Raises :class:`m5l_core.models.CheckpointError` naming the file when it is missing, corrupt,
    of another format, or its weights do not match its saved model config.
    """
    checkpoint = checkpoint_path(checkpoint)
    resolved = resolve_device(device)
    model, model_config, extra = load_checkpoint(checkpoint, device=resolved)
    return M5LTracker(model, model_config, config_for_checkpoint(config, extra), resolved, seed,
                      box_prior=BoxPrior.from_extra(extra), box_head=BoxHead.from_extra(extra))


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
