"""Multi-modal multi-margin structured loss (paper III-A, Eqs. 4-15).

Distance. The paper's text speaks of "the Euclidean distance" between embeddings while its
background section writes ``d = (f_i - f_j)^2``. We use the plain (non-squared) Euclidean
distance between the L2-normalised embeddings, ``d in [0, 2]``:

* the paper's margins are then all reachable and ordered as intended: positives at most
  alpha = 1.6 from the anchor, negatives at least alpha + m = 1.8, targets [1.5, 1.6] and
  [1.8, 1.9] (cosine about -0.28 and below -0.62);
* a squared distance (range [0, 4]) would put the same numbers at cosines 0.2 / 0.1 / 0.05, a
  pos/neg separation of only 0.1 in cosine; and ``|a - d| + |b - d|`` keeps its constant-inside,
  linear-outside shape only in the distance it is written in.

The distance is ``sqrt(max(|a - b|^2, EPS^2))``: without the clamp the square root has an
infinite derivative at 0, and an identical anchor/sample pair (the anchor box sampled again)
would turn masked-out terms into NaN gradients.

Pair loss (Eqs. 6-7). For a negative, ``|alpha + m - d| + |alpha + m + beta - d|`` equals beta
inside ``[alpha + m, alpha + m + beta]`` (zero gradient) and grows with slope 2 outside, its
gradient pointing into the interval; for a positive the same with ``[alpha - beta, alpha]``. The
paper's value is kept (beta, not 0, at the optimum) so reported numbers match the equations.

Mining (Eqs. 4-5) uses the anchor = the ground-truth box's embedding: confusing positives have
``d > alpha``, confusing negatives ``d < alpha + m``. Eqs. 8-11 average the pair loss over each
mined set; an empty set contributes exactly 0 (never NaN).

Cross-modality constraint (Eq. 12) is read as a batch-hard triplet term across modalities
(FaceNet [16]): the farthest positive of one modality against the nearest negative of the
other, ``max(max d_rgb(P) - min d_t(N) + delta, 0) + max(max d_t(P) - min d_rgb(N) + delta, 0)``
over all positives and negatives (not only the mined ones: a pair can violate the cross-modal
order while each modality alone is satisfied). Zero when either set is empty.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from m5l_core.losses.config import LossConfig

EPS = 1e-6
MODALITIES = ("rgb", "thermal")


class MMSLTerms(NamedTuple):
    total: Tensor        # enabled terms of L_MMSL (Eq. 15, minus switched-off terms)
    l_rgb: Tensor        # Eq. 13, always computed (reported even when switched off)
    l_thermal: Tensor    # Eq. 14
    l_cross: Tensor      # Eq. 12
    stats: dict          # python floats: mined counts, interval fractions, mean distances


def anchor_distances(anchor: Tensor, samples: Tensor) -> Tensor:
    """Euclidean distance of each row of ``samples`` (N,E) to ``anchor`` ((E,) or (1,E)) -> (N,)."""
    anchor = anchor.reshape(1, -1)
    if samples.dim() != 2 or samples.shape[1] != anchor.shape[1]:
        raise ValueError(f"samples must be (N, {anchor.shape[1]}), got {tuple(samples.shape)}")
    squared = (samples - anchor).pow(2).sum(dim=1)
    return squared.clamp(min=EPS * EPS).sqrt()


def pair_loss(distances: Tensor, positive: bool, config: LossConfig) -> Tensor:
    """Elementwise Eq. 6/7 for anchor-sample distances of positives or negatives."""
    if positive:
        low, high = config.alpha - config.beta, config.alpha
    else:
        low, high = config.alpha + config.margin, config.alpha + config.margin + config.beta
    return (distances - low).abs() + (distances - high).abs()


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    # sum / max(count, 1): exactly 0 for an empty set, no data-dependent shapes (no GPU sync).
    return (values * mask).sum() / mask.sum().clamp(min=1)


def modality_terms(d: Tensor, pos: Tensor, neg: Tensor, config: LossConfig
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(L_P, L_N, mined positives mask, mined negatives mask) for one modality (Eqs. 4-11).

    ``d`` (N,) distances to the anchor; ``pos``/``neg`` (N,) bool masks of the candidate rows.
    """
    mined_pos = pos & (d.detach() > config.alpha)
    mined_neg = neg & (d.detach() < config.alpha + config.margin)
    loss_pos = _masked_mean(pair_loss(d, True, config), mined_pos)
    loss_neg = _masked_mean(pair_loss(d, False, config), mined_neg)
    return loss_pos, loss_neg, mined_pos, mined_neg


def cross_term(d_rgb: Tensor, d_t: Tensor, pos: Tensor, neg: Tensor, config: LossConfig) -> Tensor:
    """Eq. 12: batch-hard triplet constraint across the two modalities."""
    # An empty set gives max = -inf or min = +inf, so the hinge is exactly 0 (never NaN) with no
    # data-dependent branch (no GPU sync).
    if d_rgb.numel() == 0:
        return d_rgb.new_zeros(())
    far_rgb = d_rgb.masked_fill(~pos, float("-inf")).max()
    far_t = d_t.masked_fill(~pos, float("-inf")).max()
    near_rgb = d_rgb.masked_fill(~neg, float("inf")).min()
    near_t = d_t.masked_fill(~neg, float("inf")).min()
    return (far_rgb - near_t + config.delta).clamp(min=0) + (far_t - near_rgb + config.delta).clamp(min=0)


def terms_from_distances(d_rgb: Tensor, d_t: Tensor, pos: Tensor, neg: Tensor, config: LossConfig
                         ) -> tuple[MMSLTerms, Tensor]:
    """MMSL of one anchor from its distance vectors; also returns the raw stats vector (see stats_names)."""
    per_modality = []
    stats = []
    for d in (d_rgb, d_t):
        loss_pos, loss_neg, mined_pos, mined_neg = modality_terms(d, pos, neg, config)
        per_modality.append(loss_pos + loss_neg)
        stats.append(_modality_stats(d.detach(), pos, neg, mined_pos, mined_neg, config))
    l_rgb, l_thermal = per_modality
    l_cross = cross_term(d_rgb, d_t, pos, neg, config)
    total = d_rgb.new_zeros(())
    if config.use_modality_losses:
        total = total + l_rgb + l_thermal
    if config.use_cross:
        total = total + l_cross
    return MMSLTerms(total, l_rgb, l_thermal, l_cross, {}), torch.cat(stats)


STAT_FIELDS = ("pos_mined", "neg_mined", "pos_in_interval", "neg_in_interval", "pos_dist", "neg_dist")
_RAW_FIELDS = 8  # per modality: mined pos, mined neg, pos in, neg in, sum d pos, sum d neg, n pos, n neg


def _modality_stats(d: Tensor, pos: Tensor, neg: Tensor, mined_pos: Tensor, mined_neg: Tensor,
                    config: LossConfig) -> Tensor:
    """Raw sums (so several anchors can be added up before the ratios are taken)."""
    pos_f, neg_f = pos.to(d.dtype), neg.to(d.dtype)
    in_pos = ((d >= config.alpha - config.beta) & (d <= config.alpha)).to(d.dtype)
    low_neg = config.alpha + config.margin
    in_neg = ((d >= low_neg) & (d <= low_neg + config.beta)).to(d.dtype)
    return torch.stack((mined_pos.sum().to(d.dtype), mined_neg.sum().to(d.dtype),
                        (in_pos * pos_f).sum(), (in_neg * neg_f).sum(), (d * pos_f).sum(), (d * neg_f).sum(),
                        pos_f.sum(), neg_f.sum()))


def stats_to_dict(raw: Tensor) -> dict[str, float]:
    """Name the summed raw stats: per modality and combined, mined counts (totals), fraction of
    positives/negatives inside their target interval, and mean anchor distances."""
    values = raw.detach().double().cpu().view(len(MODALITIES), _RAW_FIELDS)  # one device sync
    out: dict[str, float] = {}
    for suffix, rows in (*((f"_{m}", values[i:i + 1]) for i, m in enumerate(MODALITIES)), ("", values)):
        mined_pos, mined_neg, in_pos, in_neg, d_pos, d_neg, n_pos, n_neg = rows.sum(dim=0).tolist()
        n_pos, n_neg = max(n_pos, 1.0), max(n_neg, 1.0)
        values_out = (mined_pos, mined_neg, in_pos / n_pos, in_neg / n_neg, d_pos / n_pos, d_neg / n_neg)
        out.update(zip((f + suffix for f in STAT_FIELDS), values_out, strict=True))
    return out


def mmsl_loss(anchor_rgb: Tensor, pos_rgb: Tensor, neg_rgb: Tensor, anchor_t: Tensor, pos_t: Tensor,
              neg_t: Tensor, config: LossConfig) -> MMSLTerms:
    """L_MMSL (Eq. 15) for one anchor: anchors (E,) or (1,E), positives (P,E), negatives (Q,E) per modality.

    Switched-off terms (``use_cross``, ``use_modality_losses``) are still returned, but not in ``total``.
    """
    if pos_rgb.shape[0] != pos_t.shape[0] or neg_rgb.shape[0] != neg_t.shape[0]:
        raise ValueError("RGB and thermal embeddings must describe the same positives and negatives")
    d_rgb = torch.cat((anchor_distances(anchor_rgb, pos_rgb), anchor_distances(anchor_rgb, neg_rgb)))
    d_t = torch.cat((anchor_distances(anchor_t, pos_t), anchor_distances(anchor_t, neg_t)))
    pos = torch.zeros_like(d_rgb, dtype=torch.bool)
    pos[: pos_rgb.shape[0]] = True
    terms, raw = terms_from_distances(d_rgb, d_t, pos, ~pos, config)
    return terms._replace(stats=stats_to_dict(raw))
