"""Checkpoints as plain dicts of tensors and primitives (no pickled objects), written atomically.

Layout::

    {"format": "m5l", "version": 1, "model_config": to_dict(ModelConfig), "num_domains": int,
     "dtype": "float32" | "float16", "state_dict": {name: tensor}, **extra}

``extra`` carries training state (optimizer state dict, step, rng states, the training config
as a dict); its keys must not collide with the reserved ones. Loading uses
``torch.load(weights_only=True)``, so a checkpoint can never execute code, and rebuilds the
config with ``from_dict`` so an unknown key (a checkpoint from a different code version) is an
error naming the file, not a silent default.

``half=True`` stores floating-point tensors as float16 (half the size: the default model has
about 9.9 M parameters, ~19.8 MB at fp16 against ~39.7 MB at fp32); they are converted back
to float32 on load.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from m5l_core.atomic import atomic_write
from m5l_core.config import ConfigError, from_dict, to_dict
from m5l_core.models.config import ModelConfig
from m5l_core.models.net import M5LNet

FORMAT = "m5l"
VERSION = 1
RESERVED_KEYS = frozenset({"format", "version", "model_config", "num_domains", "dtype", "state_dict"})


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, of another format, or does not match its config."""


def save_checkpoint(path: str | os.PathLike, model: M5LNet, model_config: ModelConfig,
                    extra: dict[str, Any] | None = None, *, half: bool = False) -> Path:
    """Write ``model`` (+ ``extra``) to ``path`` via a temporary file and an atomic rename."""
    extra = dict(extra or {})
    clash = RESERVED_KEYS.intersection(extra)
    if clash:
        raise ValueError(f"extra checkpoint keys {sorted(clash)} are reserved")
    state = {name: _stored(tensor, half) for name, tensor in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "model_config": to_dict(model_config),
               "num_domains": model.num_domains, "dtype": "float16" if half else "float32",
               "state_dict": state, **extra}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def _stored(tensor: torch.Tensor, half: bool) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    return tensor.half() if half and tensor.is_floating_point() else tensor.clone()


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[M5LNet, ModelConfig, dict[str, Any]]:
    """Rebuild the model saved at ``path`` on ``device`` (in eval mode).

    Returns (model, model_config, extra) where ``extra`` holds every non-reserved key of the
    file (training state). Raises :class:`CheckpointError` naming the file for any problem.
    """
    raw = read_checkpoint(path)
    try:
        config = from_dict(ModelConfig, raw["model_config"], source=f"{path}: model_config")
    except ConfigError as err:
        raise CheckpointError(f"{path}: model_config does not fit this version: {err}") from None
    num_domains = raw["num_domains"]
    if not isinstance(num_domains, int) or num_domains < 0:
        raise CheckpointError(f"{path}: num_domains must be a non-negative integer, got {num_domains!r}")
    model = M5LNet(config, num_domains)
    state = raw["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: state_dict is not a mapping")
    state = {k: v.float() if torch.is_tensor(v) and v.dtype == torch.float16 else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the saved model_config: {err}") from None
    extra = {k: v for k, v in raw.items() if k not in RESERVED_KEYS}
    return model.to(device).eval(), config, extra


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict, validated for format and version only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated/foreign files
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or foreign file): "
                              f"{type(err).__name__}: {first_line}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an M5L checkpoint (missing format={FORMAT!r})")
    if raw.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {raw.get('version')!r} is not supported "
                              f"(this code reads version {VERSION})")
    missing = [k for k in ("model_config", "num_domains", "state_dict") if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return raw
