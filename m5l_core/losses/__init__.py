"""Training objective of M5L: softmax cross-entropy + the multi-modal multi-margin structured loss.

Public API::

    LossConfig
    mmsl_loss(anchor_rgb, pos_rgb, neg_rgb, anchor_t, pos_t, neg_t, config) -> MMSLTerms
    training_loss(logits, labels, emb_rgb, emb_thermal, config, *, anchor_mask=None, frame_ids=None)
        -> (total, parts)
    pair_loss(distances, positive, config), anchor_distances(anchor, samples)
"""

from m5l_core.losses.config import LossConfig
from m5l_core.losses.mmsl import MMSLTerms, anchor_distances, mmsl_loss, pair_loss
from m5l_core.losses.training import training_loss

__all__ = ["LossConfig", "MMSLTerms", "anchor_distances", "mmsl_loss", "pair_loss", "training_loss"]
