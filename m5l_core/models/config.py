"""Architecture configuration of the M5L network and the paper's ablations.

Every architecture default lives in :class:`ModelConfig`. The ablations of the paper
(Fig. 7 and Table V) and the RT-MDNet+RGBT baseline are expressed as *overrides* of the
model and loss configs (:data:`ABLATIONS`), so there is one model class with switches,
never a copied variant per experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from m5l_core.config import ConfigError, from_dict, param

C = TypeVar("C")
L = TypeVar("L")


@dataclass(frozen=True)
class ModelConfig:
    """M5L network: two feature streams (VGG-M conv1-3 or an ImageNet backbone), RoIAlign, embedding,
    fusion, fc4-fc6."""

    backbone: str = param("vggm", "feature stream of each modality: the paper's VGG-M conv1-3, or "
                                  "EfficientNet-Lite0 stages 1-5 (ImageNet weights from pip) at stride 8 "
                                  "(effnet_lite0), at its own stride 16 (effnet_lite0_s16, cheaper), or "
                                  "stages 1-4 at stride 8 (effnet_lite0_stage4, cheaper)",
                          choices=("vggm", "effnet_lite0", "effnet_lite0_s16", "effnet_lite0_stage4"))
    fusion: str = param("attention", "modality fusion: SE-style attention (Eq. 16) or plain concatenation",
                        choices=("attention", "concat"))
    attention_hidden: int = param(
        64, "width of the attention bottleneck (1024 -> hidden -> 1024, SENet ratio 16); "
            "0 = the paper's literal single conv + ReLU + sigmoid (weights limited to [0.5, 1))",
        low=0, high=4096)
    use_embedding: bool = param(True, "build the per-modality feature embedding module (needed by MMSL)")
    embedding_dim: int = param(128, "feature embedding output dimension (FC + BN, L2-normalised)",
                               low=2, high=4096)
    fc_dim: int = param(512, "fc4/fc5 width", low=8, high=8192)
    dropout: float = param(0.5, "dropout before fc5 and fc6", low=0.0, high=0.95)
    roi_output: int = param(3, "RoIAlign output size (bins per side) on the feature maps",
                            low=1, high=16)
    roi_adaptive: bool = param(True, "RT-MDNet adaptive RoIAlign: each cell averages all the feature "
                                     "cells it covers (sampling follows the RoI size)")
    roi_sampling: int = param(1, "bilinear sampling points per cell side when roi_adaptive is false "
                                 "(1 = RT-MDNet's training-time RoIAlignMax)",
                              low=1, high=16)
    roi_reduce: str = param("max", "reduction over a bin's sampling points: max (RT-MDNet AdaMax) or avg",
                            choices=("max", "avg"))
    lrn_size: int = param(5, "LRN window (channels), VGG-M / RT-MDNet", low=1, high=15)
    lrn_alpha: float = param(1e-4, "LRN alpha, applied to the plain sum of squares (MatConvNet convention)",
                             low=0.0, high=1.0)
    lrn_beta: float = param(0.75, "LRN exponent", low=0.0, high=2.0)
    lrn_k: float = param(2.0, "LRN additive constant", low=0.0, high=10.0)
    fc_init_std: float = param(0.01, "std of the normal init of fc4/fc5/fc6 (MDNet)", low=0.0, high=1.0)


# name -> {"model": ModelConfig overrides, "loss": LossConfig overrides}.
# The loss keys are the field names of m5l_core.losses.LossConfig; kept as plain dicts here so
# the model package does not import the loss package.
ABLATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "m5l": {"model": {}, "loss": {}},
    # M5L-AF in Fig. 7: attention-based fusion replaced by plain concatenation.
    "no_attention": {"model": {"fusion": "concat"}, "loss": {}},
    # M5L-MMSL in Fig. 7: no feature embedding module and no structured loss.
    "no_mmsl": {"model": {"use_embedding": False}, "loss": {"use_mmsl": False}},
    # Table V rows: drop the cross-modality constraint, or the per-modality terms.
    "no_cross": {"model": {}, "loss": {"use_cross": False}},
    "no_modality_losses": {"model": {}, "loss": {"use_modality_losses": False}},
    # RT-MDNet run on both modalities: concatenated conv features, cross-entropy only.
    "rtmdnet_rgbt": {"model": {"fusion": "concat", "use_embedding": False}, "loss": {"use_mmsl": False}},
}


def apply_ablation(name: str, model_cfg: C, loss_cfg: L) -> tuple[C, L]:
    """Return (model_cfg, loss_cfg) with the overrides of ablation ``name`` applied."""
    if name not in ABLATIONS:
        raise ConfigError(f"unknown ablation {name!r} (known: {', '.join(sorted(ABLATIONS))})")
    entry = ABLATIONS[name]
    source = f"ablation {name!r}"
    return (from_dict(type(model_cfg), entry["model"], source, model_cfg),
            from_dict(type(loss_cfg), entry["loss"], source, loss_cfg))
