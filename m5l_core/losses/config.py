"""Loss configuration: every default of the training objective (paper III-B) lives here."""

from __future__ import annotations

from dataclasses import dataclass

from m5l_core.config import param


@dataclass(frozen=True)
class LossConfig:
    """Softmax cross-entropy + multi-modal multi-margin structured loss (Eqs. 4-15)."""

    alpha: float = param(1.6, "alpha: confusing positives are farther than alpha from the anchor and are "
                              "pulled into [alpha - beta, alpha] (Euclidean distance of unit embeddings)",
                         low=0.0, high=2.0)
    beta: float = param(0.1, "beta: width of the positive and negative target intervals", low=0.0, high=2.0)
    margin: float = param(0.2, "m: gap between the positive interval and the negative interval "
                               "[alpha + m, alpha + m + beta]", low=0.0, high=2.0)
    delta: float = param(0.2, "delta: margin of the cross-modality constraint, Eq. 12 "
                              "(not given by the paper)", low=0.0, high=2.0)
    ce_weight: float = param(1.0, "weight of the binary softmax cross-entropy", low=0.0)
    mmsl_weight: float = param(1.0, "weight of L_MMSL in the training loss", low=0.0)
    use_mmsl: bool = param(True, "add L_MMSL at all (false = M5L-MMSL ablation / RT-MDNet baseline)")
    use_cross: bool = param(True, "include L_cross, Eq. 12 (false = Table V ablation)")
    use_modality_losses: bool = param(True, "include L_rgb and L_t, Eqs. 13-14 (false = Table V ablation)")
