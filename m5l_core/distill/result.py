"""The result of ``m5l-distill``: conv1-3 of both streams, read by ``m5l-train --init vggm:PATH``.

Layout (a plain dict of tensors and primitives, loaded with ``torch.load(weights_only=True)``)::

    {"format": "m5l-distilled-vggm", "version": 1,
     "rgb": {"conv1.weight", "conv1.bias", ..., "conv3.bias"}, "thermal": {...},
     "teacher": "effnet_lite0", "steps": int, "distill_config": to_dict(DistillConfig)}

``distill_config`` names the folders the weights were trained on. The reader is
:func:`m5l_core.models.vggm.load_vggm_into` (the models package must not depend on this one).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import nn

from m5l_core.atomic import atomic_write_bytes
from m5l_core.config import to_dict
from m5l_core.distill.config import DistillConfig
from m5l_core.models.vggm import CONV_NAMES, DISTILLED_FORMAT, DISTILLED_STREAMS, DISTILLED_VERSION

RESULT_NAME = "distilled_vggm.pt"


def conv_weights(stream: nn.Module) -> dict[str, torch.Tensor]:
    """conv1-3 weights and biases of a VGG-M stream, on the CPU, by their names in the stream."""
    return {f"{conv}.{kind}": getattr(getattr(stream, conv), kind).detach().cpu().clone()
            for conv in CONV_NAMES for kind in ("weight", "bias")}


def torch_bytes(payload: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def write_distilled_vggm(path: str | os.PathLike, streams: dict[str, nn.Module], config: DistillConfig,
                         steps: int) -> Path:
    """Write ``streams`` (``{"rgb": VGG-M stream, "thermal": VGG-M stream}``) atomically to ``path``."""
    payload = {"format": DISTILLED_FORMAT, "version": DISTILLED_VERSION,
               **{name: conv_weights(streams[name]) for name in DISTILLED_STREAMS},
               "teacher": config.teacher, "steps": int(steps), "distill_config": to_dict(config)}
    return atomic_write_bytes(path, torch_bytes(payload))
