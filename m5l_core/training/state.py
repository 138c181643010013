"""Model set-up, optimizer and the training checkpoint (a plain dict, written atomically).

``checkpoint.pt`` holds everything a resumed run needs, through the model package's
:func:`~m5l_core.models.save_checkpoint`: the model config and state dict plus, as extra
fields, the training config, the optimizer state, the completed step and the domain names.
Every value is a tensor, number, string, list or dict, so ``torch.load(weights_only=True)``
reads it back. Random streams need no saving: every step re-seeds from ``(seed, step, rank)``.
``model.pt`` (written at the end) is the same without the optimizer state, for the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from m5l_core.config import ConfigError, to_dict
from m5l_core.models import CheckpointError, M5LNet, ModelConfig, load_checkpoint, save_checkpoint
from m5l_core.training.config import OptimConfig, TrainConfig
from m5l_core.training.curves import CURVES_NAME
from m5l_core.training.log import LOG_NAME, SUMMARY_NAME

CHECKPOINT_NAME = "checkpoint.pt"
MODEL_NAME = "model.pt"


@dataclass
class ResumeState:
    model: M5LNet
    step: int
    optimizer_state: dict | None


def freeze_streams_without_lr(model: M5LNet, config: OptimConfig) -> None:
    """``conv_lr: 0`` freezes the feature streams outright: no gradient flows into them at all.

    With an ImageNet backbone this is the cheap recipe on a CPU: the backward pass through
    depthwise convolutions costs several times their forward pass, and a frozen stream keeps
    its ImageNet features intact on a small training set.
    """
    for param in model.conv_parameters():
        param.requires_grad_(config.conv_lr > 0)


def build_optimizer(model: M5LNet, config: OptimConfig) -> torch.optim.SGD:
    """SGD with three groups: the streams at ``conv_lr``; everything after RoIAlign at ``fc_lr``,
    the per-domain fc6 heads at ``fc_lr * head_lr_mult``.

    "fc" includes the fusion attention, the embedding heads, fc4 and fc5: they are all learnt
    from scratch on top of the (pretrained) stream features.
    """
    conv = model.conv_parameters()
    heads = model.head_parameters()
    taken = {id(p) for p in (*conv, *heads)}
    rest = [p for p in model.parameters() if id(p) not in taken]
    groups = [{"params": conv, "lr": config.conv_lr, "name": "conv"},
              {"params": rest, "lr": config.fc_lr, "name": "fc"},
              {"params": heads, "lr": config.fc_lr * config.head_lr_mult, "name": "heads"}]
    return torch.optim.SGD(groups, lr=config.fc_lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def initialise(model: M5LNet, spec: str, device: torch.device) -> None:
    """Apply ``random`` | ``imagenet[:PATH]`` | ``vggm:PATH`` | ``checkpoint:PATH`` to a fresh model."""
    kind, _, path = spec.partition(":")
    if kind == "random":
        return
    if kind == "imagenet":
        model.load_imagenet(path or None)
        return
    if kind == "vggm":
        model.load_vgg_m(path)
        return
    if kind == "checkpoint":
        source, _, _ = load_checkpoint(path, device=device)
        # Domain heads belong to the source's training sequences; this run has its own.
        weights = {k: v for k, v in source.state_dict().items() if not k.startswith("domain_heads.")}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.startswith("domain_heads.")]
        if missing or unexpected:
            raise CheckpointError(f"{path}: does not match this model (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]}); check the ablation and model config")
        return
    raise ConfigError(f"init must be random, imagenet[:PATH], vggm:PATH or checkpoint:PATH, got {spec!r}")


def write_checkpoint(path: Path, model: M5LNet, model_config: ModelConfig, config: TrainConfig, step: int,
                     domain_names: list[str], optimizer: torch.optim.Optimizer | None) -> None:
    extra = {"train_config": to_dict(config), "step": int(step), "domains": list(domain_names)}
    if optimizer is not None:
        extra["optimizer"] = optimizer.state_dict()
    save_checkpoint(path, model, model_config, extra=extra)


def read_resume_state(path: Path, model_config: ModelConfig, domain_names: list[str],
                      device: torch.device) -> ResumeState:
    """Load ``checkpoint.pt`` and check it belongs to this run (same model and domains)."""
    model, saved_config, extra = load_checkpoint(path, device=device)
    if to_dict(saved_config) != to_dict(model_config):
        raise CheckpointError(f"{path}: model config differs from this run's (ablation or model section "
                              f"changed); resume with the same config or use another --out")
    if list(extra.get("domains", [])) != list(domain_names):
        raise CheckpointError(f"{path}: trained on other sequences ({len(extra.get('domains', []))} domains) "
                              f"than this run ({len(domain_names)}); resume with the same dataset")
    if "step" not in extra:
        raise CheckpointError(f"{path}: not a training checkpoint (no step); use --init checkpoint:PATH")
    return ResumeState(model=model, step=int(extra["step"]), optimizer_state=extra.get("optimizer"))


def remove_stale_temporaries(out_dir: Path) -> None:
    """Temporary files of an atomic write interrupted by ``kill -9`` (never the real files)."""
    for name in (CHECKPOINT_NAME, MODEL_NAME, SUMMARY_NAME, LOG_NAME, CURVES_NAME):
        for tmp in Path(out_dir).glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
