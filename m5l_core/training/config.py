"""The one typed configuration of offline multi-domain training (``m5l-train``).

A YAML file overrides these defaults (the whole file is a :class:`TrainConfig`; unknown keys
are an error naming the key and the file). The model and loss sections are the model
package's own configs, so an architecture or loss default lives only there.
"""

from __future__ import annotations

from dataclasses import dataclass

from m5l_core.config import ConfigError, apply_overrides, load_yaml, nested, param
from m5l_core.crops import ROI_CONTEXT
from m5l_core.datasets.mix_config import MixConfig
from m5l_core.datasets.synthetic_config import SyntheticConfig
from m5l_core.losses import LossConfig
from m5l_core.models import ModelConfig
from m5l_core.preprocess import PreprocessConfig

DATASET_KINDS = ("synthetic", "mix", "gtot", "rgbt234", "rgbt210", "lasher")


@dataclass(frozen=True)
class DataConfig:
    """Which sequences are the training domains, and how frames are read."""

    dataset: str = param("synthetic", "benchmark layout to train on; every sequence is one domain",
                         choices=DATASET_KINDS)
    root: str = param("", "dataset root folder; empty = the loader's default (synthetic: <out>/synthetic, "
                          "mix: <out>/mix)")
    split: str = param("", "dataset split passed to the loader (LasHeR: train); empty = the loader's default")
    max_sequences: int = param(0, "use only the first N sequences (sorted by name); 0 = all", low=0)
    min_box_side: float = param(4.0, "frames whose ground truth is smaller than this (px) or absent "
                                     "are skipped", low=0.0)
    synthetic_layout: str = param("gtot", "layout the synthetic generator writes",
                                  choices=("gtot", "rgbt234"))
    synthetic_sequences: int = param(8, "synthetic sequences (domains) to generate", low=1, high=10000)
    synthetic_seed: int = param(0, "seed of the synthetic generator", low=0)
    synthetic: SyntheticConfig = nested(SyntheticConfig)
    mix: MixConfig = nested(MixConfig)
    prefetch: int = param(1, "batches prepared ahead in a background thread (0 = none)", low=0, high=8)
    preprocess: PreprocessConfig = nested(PreprocessConfig)


@dataclass(frozen=True)
class SamplingConfig:
    """Per-step batch: one domain, a few frames, positives and negatives around each frame's GT."""

    frames_per_step: int = param(4, "frames of the step's sequence in one batch (RT-MDNet: 8)",
                                 low=1, high=64)
    pos_per_frame: int = param(64, "positive samples per frame (paper: 64)", low=1, high=4096)
    neg_per_frame: int = param(196, "negative samples per frame (paper: 196)", low=1, high=16384)
    pos_iou: tuple[float, ...] = param((0.7, 1.0), "IoU range of positives with the ground truth "
                                                   "(paper: > 0.7)", low=0.0, high=1.0)
    neg_iou: tuple[float, ...] = param((0.0, 0.5), "IoU range of negatives with the ground truth "
                                                   "(paper: < 0.5)", low=0.0, high=1.0)
    pos_trans: float = param(0.1, "gaussian positives: centre offset in mean target sides (RT-MDNet)",
                             low=0.0)
    pos_scale: float = param(1.2, "gaussian positives: scale factor base (RT-MDNet)", low=1.0)
    neg_trans: float = param(1.0, "uniform negatives: centre offset in mean target sides (RT-MDNet)",
                             low=0.0)
    neg_scale: float = param(1.2, "uniform negatives: scale factor base (RT-MDNet)", low=1.0)
    aspect: float = param(1.1, "aspect-ratio jitter factor of all samples (RT-MDNet); 1 = none", low=1.0)
    neg_whole_fraction: float = param(0.0, "share of negatives drawn anywhere in the crop instead of around "
                                           "the target (harder background); RT-MDNet pretraining: 0",
                                      low=0.0, high=1.0)
    target_size: float = param(107.0, "ground-truth size in crop pixels per axis (RT-MDNet: 107)",
                               low=8.0, high=1024.0)
    crop_stretch: float = param(1.0, "how far a non-square target is stretched to a square in the crop: 1 = "
                                       "target_size per axis (RT-MDNet), 0 = one scale (the target keeps "
                                       "its aspect, its area is target_size^2); the tracker's "
                                       "search.crop_stretch", low=0.0, high=1.0)
    crop_size: int = param(321, "side of the square crop fed to the network (3 x target_size)",
                           low=16, high=2048)
    scale_jitter: float = param(1.1, "target size in the crop varies by "
                                     "scale_jitter ** clip(3 N(0,1), -2, 2) (RT-MDNet); 1 = none",
                                low=1.0, high=2.0)
    roi_context: float = param(ROI_CONTEXT, "RoIs are the samples grown by this factor (RT-MDNet padding; "
                                            "the tracker uses the same default)", low=1.0, high=3.0)


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum and weight decay, two learning rates (paper: conv 1e-4, fc 1e-3)."""

    conv_lr: float = param(1e-4, "learning rate of the conv1-3 streams", low=0.0, high=1.0)
    fc_lr: float = param(1e-3, "learning rate of everything after RoIAlign: fusion attention, embeddings, "
                               "fc4-fc5 and the per-domain fc6 heads", low=0.0, high=1.0)
    head_lr_mult: float = param(1.0, "learning-rate multiplier of the per-domain fc6 heads over fc_lr: with "
                                     "hundreds of domains each head sees few steps and needs a larger rate",
                                low=0.0, high=1000.0)
    momentum: float = param(0.9, "SGD momentum", low=0.0, high=1.0)
    weight_decay: float = param(5e-4, "SGD weight decay", low=0.0, high=1.0)
    grad_clip: float = param(10.0, "clip the global gradient norm to this; 0 = no clipping", low=0.0)


@dataclass(frozen=True)
class TrainConfig:
    """Offline multi-domain training of the M5L network."""

    iterations: int = param(1000, "training steps (one domain per step and rank)", low=1)
    seed: int = param(0, "seed of the domain schedule, frame choice, samples and initialisation", low=0)
    device: str = param("auto", "auto (cuda when available), cpu, cuda or cuda:N")
    init: str = param("random", "random (weak: no ImageNet features), imagenet (the backbone's packaged "
                                "ImageNet weights; imagenet:PATH for a file), vggm:PATH (imagenet-vgg-m.mat "
                                "or an m5l-distill file) or checkpoint:PATH (fine-tune an m5l checkpoint)")
    ablation: str = param("m5l", "ablation applied to the model and loss configs (m5l = full model)")
    checkpoint_every: int = param(100, "write checkpoint.pt every N steps (and at the end)", low=1)
    log_every: int = param(1, "write a JSON log line every N steps", low=1)
    summary_window: int = param(20, "steps averaged for the first/last numbers of the summary", low=1)
    progress: bool = param(True, "show a tqdm progress bar")
    data: DataConfig = nested(DataConfig)
    sampling: SamplingConfig = nested(SamplingConfig)
    optim: OptimConfig = nested(OptimConfig)
    model: ModelConfig = nested(ModelConfig)
    loss: LossConfig = nested(LossConfig)


def check_train_config(config: TrainConfig, source: str = "config") -> TrainConfig:
    """Cross-field checks a single field's range cannot express."""
    sampling = config.sampling
    for name in ("pos_iou", "neg_iou"):
        pair = getattr(sampling, name)
        if len(pair) != 2 or pair[0] > pair[1]:
            raise ConfigError(f"{source}: sampling.{name} must be [low, high] with low <= high, "
                              f"got {list(pair)}")
    if sampling.pos_iou[0] < sampling.neg_iou[1]:
        raise ConfigError(f"{source}: sampling.pos_iou overlaps sampling.neg_iou")
    if sampling.crop_size < sampling.target_size:
        raise ConfigError(f"{source}: sampling.crop_size ({sampling.crop_size}) is smaller than "
                          f"sampling.target_size ({sampling.target_size})")
    kind = config.init.split(":", 1)[0]
    needs_path = kind in ("vggm", "checkpoint")
    if kind not in ("random", "imagenet", "vggm", "checkpoint") or (needs_path and ":" not in config.init):
        raise ConfigError(f"{source}: init must be random, imagenet[:PATH], vggm:PATH or checkpoint:PATH, "
                          f"got {config.init!r}")
    if kind == "imagenet" and config.model.backbone == "vggm":
        raise ConfigError(f"{source}: init imagenet needs an ImageNet backbone "
                          "(model.backbone: effnet_lite0 or a cheaper effnet_lite0_*); "
                          "VGG-M starts from vggm:PATH")
    return config


def load_train_config(path: str | None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- YAML file <- ``key.sub=value`` overrides, then cross-field checks."""
    config = load_yaml(TrainConfig, path)
    config = apply_overrides(config, overrides or [])
    return check_train_config(config, str(path) if path else "config")
