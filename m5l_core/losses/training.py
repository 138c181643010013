"""The training objective: softmax cross-entropy + weighted L_MMSL, over one or several frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from m5l_core.losses.config import LossConfig
from m5l_core.losses.mmsl import anchor_distances, stats_to_dict, terms_from_distances


def training_loss(logits: Tensor, labels: Tensor, emb_rgb: Tensor | None, emb_thermal: Tensor | None,
                  config: LossConfig, *, anchor_mask: Tensor | None = None,
                  frame_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """``ce_weight * CE(logits, labels) + mmsl_weight * L_MMSL`` -> (total, parts).

    Rows of ``logits`` (N,2), ``labels`` (N,) (1 = target, 0 = background) and the embeddings
    (N,E) describe the same boxes. ``anchor_mask`` (N,) bool marks the ground-truth box of each
    frame (default: row 0 is the only anchor); ``frame_ids`` (N,) groups rows by frame, each
    group with exactly one anchor (default: one frame). MMSL is computed per anchor against the
    positives/negatives of its frame and averaged over frames; the anchor row is left out of
    its own positives but stays in the cross-entropy (it is a genuine positive sample).
    Embeddings may be None when ``config.use_mmsl`` is false. ``parts`` holds python floats:
    ce, mmsl, l_rgb, l_thermal, l_cross and the MMSL stats (mined counts, interval fractions).
    """
    labels = labels.to(device=logits.device, dtype=torch.long)
    ce = F.cross_entropy(logits, labels)
    total = config.ce_weight * ce
    parts = {"ce": float(ce.detach())}
    if not config.use_mmsl:
        return total, parts
    if emb_rgb is None or emb_thermal is None:
        raise ValueError("use_mmsl is true but no embeddings were given (does the model have use_embedding?)")
    mmsl, terms = _mmsl_over_frames(labels, emb_rgb, emb_thermal, config, anchor_mask, frame_ids)
    parts.update(terms)
    return total + config.mmsl_weight * mmsl, parts


def _mmsl_over_frames(labels: Tensor, emb_rgb: Tensor, emb_thermal: Tensor, config: LossConfig,
                      anchor_mask: Tensor | None, frame_ids: Tensor | None
                      ) -> tuple[Tensor, dict[str, float]]:
    n = labels.shape[0]
    if emb_rgb.shape[0] != n or emb_thermal.shape[0] != n:
        raise ValueError(f"embeddings have {emb_rgb.shape[0]}/{emb_thermal.shape[0]} rows, labels {n}")
    device = labels.device
    if anchor_mask is None:
        anchor_mask = torch.zeros(n, dtype=torch.bool, device=device)
        anchor_mask[0] = True
    frame_ids = torch.zeros(n, dtype=torch.long, device=device) if frame_ids is None else frame_ids.to(device)
    anchor_mask = anchor_mask.to(device=device, dtype=torch.bool)
    anchor_rows = torch.nonzero(anchor_mask).flatten().tolist()
    anchor_frames = frame_ids[anchor_rows].tolist()
    frames = sorted(set(frame_ids.tolist()))
    if sorted(anchor_frames) != frames:
        raise ValueError(f"every frame needs exactly one anchor row: frames {frames}, "
                         f"anchors in frames {anchor_frames}")
    sums: dict[str, Tensor] = {}
    raws = []
    for row, frame in zip(anchor_rows, anchor_frames, strict=True):
        in_frame = (frame_ids == frame) & ~anchor_mask
        d_rgb = anchor_distances(emb_rgb[row], emb_rgb)
        d_t = anchor_distances(emb_thermal[row], emb_thermal)
        pos, neg = in_frame & (labels == 1), in_frame & (labels == 0)
        terms, raw = terms_from_distances(d_rgb, d_t, pos, neg, config)
        for name in ("total", "l_rgb", "l_thermal", "l_cross"):
            sums[name] = sums.get(name, 0) + getattr(terms, name)
        raws.append(raw)
    count = len(anchor_rows)
    stats = stats_to_dict(torch.stack(raws).sum(dim=0))
    means = {name: value / count for name, value in sums.items()}
    summary = torch.stack([means[k].detach() for k in ("total", "l_rgb", "l_thermal", "l_cross")]).tolist()
    stats.update(zip(("mmsl", "l_rgb", "l_thermal", "l_cross"), summary, strict=True))
    return means["total"], stats
