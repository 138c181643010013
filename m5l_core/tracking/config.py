"""Every setting of the online tracker, with the RT-MDNet values (GUIDE §6) as defaults.

The ROS node turns each leaf field into a parameter (``m5l_core.config.describe``), so every
field carries a description and a range. Sample generators follow
:class:`m5l_core.sampling.SampleGenerator`: ``trans`` is a multiple of the mean target side,
``scale`` the base of the scale jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

from m5l_core.config import nested, param
from m5l_core.preprocess import PreprocessConfig


@dataclass(frozen=True)
class SearchConfig:
    """Candidate sampling around the last result and the crop they are scored on."""

    n_candidates: int = param(256, "Gaussian candidate boxes scored per frame", low=1, high=4096)
    trans: float = param(0.6, "candidate centre spread, in mean target sides", low=0.0, high=5.0)
    scale: float = param(1.05, "candidate scale jitter base", low=1.0, high=3.0)
    trans_expanded: float = param(1.4, "candidate centre spread after a failure (widened search)",
                                  low=0.0, high=5.0)
    top_k: int = param(5, "the result is the mean of the top-k scored candidates", low=1, high=64)
    padding: float = param(1.2, "context around each box pooled by RoIAlign (RT-MDNet padding)",
                           low=1.0, high=3.0)
    target_size: int = param(0, "the target's side in crop pixels (crops are resized to this); 0 = the "
                                "size the checkpoint was trained at, or RT-MDNet's 107 if it does not say",
                             low=0, high=512)
    max_crop_side: int = param(1024, "upper bound on a crop side in pixels (memory guard)", low=64, high=4096)
    success_threshold: float = param(0.0, "failure when the top-k mean score (logit difference) is not above",
                                     low=-100.0, high=100.0)
    search_from_regressed: bool = param(
        False, "centre the next frame's candidates on the box-regressed result "
               "(RT-MDNet: on the unregressed top-k mean)")


@dataclass(frozen=True)
class InitConfig:
    """First-frame fine-tuning of fc4-fc6 with a fresh fc6."""

    n_pos: int = param(500, "positive samples on the first frame", low=1, high=10000)
    n_neg: int = param(5000, "negative samples on the first frame", low=1, high=50000)
    pos_iou_min: float = param(0.7, "a positive overlaps the target at least this much", low=0.0, high=1.0)
    neg_iou_max: float = param(0.5, "a negative overlaps the target at most this much", low=0.0, high=1.0)
    pos_trans: float = param(0.1, "positive sampler spread (gaussian)", low=0.0, high=5.0)
    pos_scale: float = param(1.2, "positive sampler scale base", low=1.0, high=3.0)
    neg_trans: float = param(1.0, "negative sampler spread (uniform)", low=0.0, high=5.0)
    neg_scale: float = param(2.0, "negative sampler scale base", low=1.0, high=3.0)
    iterations: int = param(50, "SGD iterations of first-frame fine-tuning", low=0, high=1000)
    lr: float = param(1e-4, "learning rate of first-frame fine-tuning", low=0.0, high=1.0)


@dataclass(frozen=True)
class UpdateConfig:
    """Short-term (on failure) and long-term (periodic) online updates from bounded memories."""

    n_pos: int = param(50, "positive samples collected per successful frame", low=1, high=5000)
    n_neg: int = param(200, "negative samples collected per successful frame", low=1, high=5000)
    pos_iou_min: float = param(0.7, "a positive overlaps the result at least this much", low=0.0, high=1.0)
    neg_iou_max: float = param(0.3, "a negative overlaps the result at most this much", low=0.0, high=1.0)
    pos_trans: float = param(0.1, "positive sampler spread (gaussian)", low=0.0, high=5.0)
    pos_scale: float = param(1.2, "positive sampler scale base", low=1.0, high=3.0)
    neg_trans: float = param(1.5, "negative sampler spread (uniform); kept inside the search crop",
                             low=0.0, high=5.0)
    neg_scale: float = param(1.2, "negative sampler scale base", low=1.0, high=3.0)
    iterations: int = param(15, "SGD iterations per update", low=0, high=1000)
    lr: float = param(3e-4, "learning rate of online updates", low=0.0, high=1.0)
    short_term_frames: int = param(20, "frames of samples used by short-term updates (and kept negatives)",
                                   low=1, high=1000)
    long_term_frames: int = param(100, "frames of positive samples kept for long-term updates",
                                  low=1, high=10000)
    long_term_interval: int = param(10, "a long-term update every this many frames", low=1, high=10000)


@dataclass(frozen=True)
class OnlineOptimConfig:
    """Mini-batches and SGD shared by first-frame fine-tuning and online updates."""

    batch_pos: int = param(32, "positives per mini-batch", low=1, high=4096)
    batch_neg: int = param(96, "hard negatives per mini-batch", low=1, high=4096)
    neg_candidates: int = param(1024, "negatives scored to mine the hard ones of a mini-batch",
                                low=1, high=65536)
    momentum: float = param(0.9, "SGD momentum", low=0.0, high=1.0)
    weight_decay: float = param(5e-4, "SGD weight decay", low=0.0, high=1.0)
    grad_clip: float = param(10.0, "gradient norm clip", low=0.0, high=1e6)
    head_lr_mult: float = param(10.0, "learning-rate multiplier of the fresh fc6", low=0.0, high=1000.0)


@dataclass(frozen=True)
class BoxRegressionConfig:
    """Ridge box regression learnt on the first frame, applied to the top-k on success."""

    enabled: bool = param(True, "refine successful results with the box regressor")
    n_samples: int = param(1000, "first-frame training boxes", low=1, high=20000)
    iou_min: float = param(0.6, "training boxes overlap the target at least this much", low=0.0, high=1.0)
    trans: float = param(0.3, "training box sampler spread (uniform)", low=0.0, high=5.0)
    scale: float = param(1.5, "training box sampler scale base", low=1.0, high=3.0)
    alpha: float = param(1000.0, "ridge penalty", low=0.0, high=1e9)


@dataclass(frozen=True)
class RuntimeConfig:
    """How the network runs; none of these change what the tracker computes beyond rounding."""

    precision: str = param("auto", "compute precision of convolutions and fc layers (autocast); auto = "
                                   "bfloat16 on CPUs with native bf16 (AVX512-BF16/AMX), else float32",
                           choices=("auto", "float32", "bfloat16"))
    threads: int = param(0, "torch CPU threads; 0 leaves torch's default", low=0, high=256)
    channels_last: bool = param(True, "run the conv layers in channels-last memory layout (faster on CPU)")


@dataclass(frozen=True)
class TrackerConfig:
    """The online M5L tracker (paper §III-C, RT-MDNet procedure)."""

    preprocess: PreprocessConfig = nested(PreprocessConfig)
    search: SearchConfig = nested(SearchConfig)
    init: InitConfig = nested(InitConfig)
    update: UpdateConfig = nested(UpdateConfig)
    optim: OnlineOptimConfig = nested(OnlineOptimConfig)
    bbreg: BoxRegressionConfig = nested(BoxRegressionConfig)
    runtime: RuntimeConfig = nested(RuntimeConfig)
