"""The one typed configuration of ``m5l-distill`` (defaults here; YAML and ``--set`` only override).

Folder paths are used as written: a relative one is relative to the working directory, which is
the repository root for the recipe ``config/distill.yaml`` (it names ``../shared/data/...``).
"""

from __future__ import annotations

from dataclasses import dataclass

from m5l_core.config import ConfigError, apply_overrides, load_yaml, nested, param
from m5l_core.models import RECEPTIVE_FIELD

STREAMS = ("rgb", "thermal")
# Fields a resumed run may change: they steer the run, not what it learns.
RESUMABLE_FIELDS = frozenset({"steps", "checkpoint_every", "log_every", "summary_window", "progress",
                              "prefetch", "threads", "device"})


@dataclass(frozen=True)
class AugmentConfig:
    """Random crops of the source images; a pair's two images always get the same crop."""

    scale_range: tuple[float, ...] = param(
        (0.5, 1.25), "crop pixels per source pixel, drawn log-uniformly in [low, high]; raised where "
                     "needed so that the crop window fits inside the image", low=0.05, high=8.0)
    flip: bool = param(True, "mirror half of the crops left-right")
    photometric: float = param(
        0.2, "contrast factor in [1 - p, 1 + p] and brightness offset in [-64 p, 64 p] grey levels, drawn "
             "per image (a pair's two images independently); 0 = none", low=0.0, high=0.9)


@dataclass(frozen=True)
class DistillConfig:
    """Distillation of an ImageNet teacher's stride-8 features into VGG-M conv1-3 (both streams)."""

    photo_folders: tuple[str, ...] = param(
        (), "folders of real photos for the RGB stream, searched recursively (see config/distill.yaml)")
    pair_folders: tuple[str, ...] = param(
        (), "folders of aligned pairs for the thermal stream: <root>/visible/NAME (teacher input) and "
            "<root>/infrared/NAME (student input); a file without its partner is skipped")
    teacher: str = param("effnet_lite0", "teacher network (ImageNet-trained, stride 8)",
                         choices=("effnet_lite0",))
    teacher_weights: str = param("", "teacher weights file; empty = the pip package's ImageNet weights")
    crop_size: int = param(139, "side of the square crops (px); the student map has (side - 75) // 8 + 1 "
                                "cells per side", low=RECEPTIVE_FIELD + 8, high=1024)
    batch_size: int = param(8, "crops per stream and step", low=1, high=1024)
    steps: int = param(2000, "optimizer steps (each trains both streams on one batch each)", low=1)
    optimizer: str = param("adam", "optimizer of the students and their adapters", choices=("adam", "sgd"))
    lr: float = param(3e-4, "learning rate (Adam: 1e-3 learnt slower in a 60-step probe)", low=0.0, high=1.0)
    momentum: float = param(0.9, "SGD momentum (ignored by adam)", low=0.0, high=1.0)
    weight_decay: float = param(0.0, "L2 weight decay", low=0.0, high=1.0)
    stats_batches: int = param(4, "batches per stream whose teacher features give the per-channel mean and "
                                  "std the targets are standardised with (drawn once, before step 1)",
                               low=1, high=1000)
    augment: AugmentConfig = nested(AugmentConfig)
    seed: int = param(0, "seed of the student initialisation and of every crop", low=0)
    device: str = param("auto", "auto (cuda when available), cpu, cuda or cuda:N")
    threads: int = param(0, "torch CPU threads; 0 = torch's default (1 is faster beside another torch "
                            "process on a small CPU)", low=0, high=256)
    prefetch: int = param(1, "batches read ahead in a background thread (0 = none)", low=0, high=8)
    checkpoint_every: int = param(100, "write checkpoint.pt every N steps (and at the end)", low=1)
    log_every: int = param(1, "write a JSON log line every N steps", low=1)
    summary_window: int = param(20, "logged steps averaged for the first/last numbers of the summary", low=1)
    progress: bool = param(True, "show a tqdm progress bar")


def check_distill_config(config: DistillConfig, source: str = "config") -> DistillConfig:
    """Cross-field checks a single field's range cannot express."""
    scales = config.augment.scale_range
    if len(scales) != 2 or scales[0] > scales[1]:
        raise ConfigError(f"{source}: augment.scale_range must be [low, high] with low <= high, "
                          f"got {list(scales)}")
    for key in ("photo_folders", "pair_folders"):
        if not getattr(config, key):
            raise ConfigError(f"{source}: {key} is empty: name at least one folder (see config/distill.yaml)")
    return config


def load_distill_config(path: str | None, overrides: list[str] | None = None) -> DistillConfig:
    """Defaults <- YAML file <- ``key.sub=value`` overrides, then cross-field checks."""
    config = load_yaml(DistillConfig, path)
    config = apply_overrides(config, overrides or [])
    return check_distill_config(config, str(path) if path else "config")
