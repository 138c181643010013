"""MMSL (Eqs. 4-15) and the training loss: hand-computed values, gradients, interval property."""

import math

import pytest
import torch

from m5l_core.config import ConfigError, from_dict
from m5l_core.losses import LossConfig, anchor_distances, mmsl_loss, pair_loss, training_loss

CFG = LossConfig()  # alpha 1.6, beta 0.1, m 0.2, delta 0.2
DIM = 8


def at_distances(distances, first_axis=1):
    """Unit vectors at the given Euclidean distances from the anchor e0 (distinct directions)."""
    rows = []
    for i, d in enumerate(distances):
        cos = 1.0 - d * d / 2.0
        row = torch.zeros(DIM, dtype=torch.float64)
        row[0], row[first_axis + i] = cos, math.sqrt(max(0.0, 1.0 - cos * cos))
        rows.append(row)
    return torch.stack(rows) if rows else torch.zeros(0, DIM, dtype=torch.float64)


ANCHOR = torch.eye(DIM, dtype=torch.float64)[0]


def test_defaults_match_the_paper():
    assert (CFG.alpha, CFG.beta, CFG.margin, CFG.delta) == (1.6, 0.1, 0.2, 0.2)
    with pytest.raises(ConfigError, match="alfa"):
        from_dict(LossConfig, {"alfa": 1.0})


def test_distances_are_plain_euclidean():
    samples = at_distances([0.5, 1.6, 1.9])
    expected = torch.tensor([0.5, 1.6, 1.9], dtype=torch.float64)
    assert torch.allclose(anchor_distances(ANCHOR, samples), expected)
    assert torch.allclose(anchor_distances(ANCHOR[None], samples), anchor_distances(ANCHOR, samples))


def test_hand_computed_mmsl():
    # RGB: positives at 1.8 (mined: |1.8-1.5|+|1.8-1.6| = 0.5) and 1.0 (not mined);
    #      negatives at 1.0 (mined: |1.8-1.0|+|1.9-1.0| = 1.7) and 1.85 (not mined) -> L_rgb = 2.2.
    # T:   positives 1.7 (mined: 0.2+0.1 = 0.3) and 1.2; negatives 1.9, 1.95 (none mined) -> L_t = 0.3.
    # Cross: max(1.8 - 1.9 + 0.2, 0) + max(1.7 - 1.0 + 0.2, 0) = 0.1 + 0.9 = 1.0.
    terms = mmsl_loss(ANCHOR, at_distances([1.8, 1.0]), at_distances([1.0, 1.85]),
                      ANCHOR, at_distances([1.7, 1.2]), at_distances([1.9, 1.95]), CFG)
    assert terms.l_rgb.item() == pytest.approx(2.2)
    assert terms.l_thermal.item() == pytest.approx(0.3)
    assert terms.l_cross.item() == pytest.approx(1.0)
    assert terms.total.item() == pytest.approx(3.5)
    assert terms.stats["pos_mined_rgb"] == 1 and terms.stats["neg_mined_rgb"] == 1
    assert terms.stats["pos_mined_thermal"] == 1 and terms.stats["neg_mined_thermal"] == 0
    assert terms.stats["neg_in_interval_thermal"] == pytest.approx(0.5)  # 1.9 is in [1.8, 1.9]


def test_mean_over_the_mined_set():
    # Two mined positives at 1.7 and 1.9: (0.3 + 0.7) / 2 = 0.5; no negatives -> no L_N, no cross.
    pos = at_distances([1.7, 1.9])
    terms = mmsl_loss(ANCHOR, pos, at_distances([]), ANCHOR, pos, at_distances([]), CFG)
    assert terms.l_rgb.item() == pytest.approx(0.5)
    assert terms.l_cross.item() == 0.0


def test_switches_select_terms():
    args = (ANCHOR, at_distances([1.8, 1.0]), at_distances([1.0, 1.85]),
            ANCHOR, at_distances([1.7, 1.2]), at_distances([1.9, 1.95]))
    no_cross = mmsl_loss(*args, from_dict(LossConfig, {"use_cross": False}))
    assert no_cross.total.item() == pytest.approx(2.5)
    only_cross = mmsl_loss(*args, from_dict(LossConfig, {"use_modality_losses": False}))
    assert only_cross.total.item() == pytest.approx(1.0)
    assert only_cross.l_rgb.item() == pytest.approx(2.2)  # still reported
    delta = mmsl_loss(*args, from_dict(LossConfig, {"delta": 0.0}))
    assert delta.l_cross.item() == pytest.approx(0.0 + 0.7)


@pytest.mark.parametrize("positive", [True, False])
def test_interval_property(positive):
    low, high = (1.5, 1.6) if positive else (1.8, 1.9)
    d = torch.tensor([low + 0.01, (low + high) / 2, high - 0.01, low - 0.3, high + 0.05],
                     dtype=torch.float64, requires_grad=True)
    loss = pair_loss(d, positive, CFG)
    loss.sum().backward()
    # Inside the interval: constant beta and no gradient.
    assert torch.allclose(loss[:3], torch.full((3,), CFG.beta, dtype=torch.float64))
    assert torch.all(d.grad[:3] == 0)
    # Outside: gradient descent moves the distance into the interval (slope 2).
    assert d.grad[3].item() == pytest.approx(-2.0)  # below: descent increases d
    assert d.grad[4].item() == pytest.approx(2.0)   # above: descent decreases d
    assert loss[3].item() == pytest.approx(CFG.beta + 2 * 0.3)


def test_empty_mined_sets_give_zero_not_nan():
    # Positives well inside alpha, negatives beyond alpha + m: nothing is mined.
    pos = at_distances([0.3, 1.0]).requires_grad_()
    neg = at_distances([1.85, 1.95]).requires_grad_()
    terms = mmsl_loss(ANCHOR, pos, neg, ANCHOR, pos, neg, from_dict(LossConfig, {"use_cross": False}))
    assert terms.total.item() == 0.0
    terms.total.backward()
    assert torch.all(pos.grad == 0) and torch.all(neg.grad == 0)
    # No positives and no negatives at all.
    none = at_distances([])
    empty = mmsl_loss(ANCHOR, none, none, ANCHOR, none, none, CFG)
    assert empty.total.item() == 0.0 and not math.isnan(empty.stats["pos_dist"])


def test_sample_identical_to_anchor_has_finite_gradient():
    anchor = ANCHOR.clone().requires_grad_()
    pos = torch.stack([ANCHOR, at_distances([1.8])[0]]).requires_grad_()
    neg = at_distances([1.0])
    terms = mmsl_loss(anchor, pos, neg, anchor, pos, neg, CFG)
    terms.total.backward()
    assert torch.isfinite(anchor.grad).all() and torch.isfinite(pos.grad).all()


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)
    anchor = torch.randn(DIM, dtype=torch.float64, generator=gen)
    pos = anchor + 0.6 * torch.randn(5, DIM, dtype=torch.float64, generator=gen)
    neg = anchor + 0.6 * torch.randn(6, DIM, dtype=torch.float64, generator=gen)
    distances = torch.cat((anchor_distances(anchor, pos), anchor_distances(anchor, neg)))
    kinks = torch.tensor([1.5, 1.6, 1.8, 1.9], dtype=torch.float64)
    assert (distances[:, None] - kinks).abs().min() > 1e-3  # finite differences stay on one side of a kink
    assert (distances > 1.6).any() and (distances < 1.8).any()  # some samples are mined

    def loss(a, p, n):
        return mmsl_loss(a, p, n, a * 0.9, p * 1.1, n, CFG).total

    inputs = tuple(t.clone().requires_grad_() for t in (anchor, pos, neg))
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5)


def test_mismatched_modalities_rejected():
    with pytest.raises(ValueError, match="same positives"):
        mmsl_loss(ANCHOR, at_distances([1.0]), at_distances([1.0]), ANCHOR, at_distances([]),
                  at_distances([1.0]), CFG)
    with pytest.raises(ValueError, match="samples must be"):
        anchor_distances(ANCHOR, torch.zeros(3, DIM + 1))


def _batch():
    rgb = torch.cat((ANCHOR[None], at_distances([1.8, 1.0]), at_distances([1.0, 1.85])))
    thermal = torch.cat((ANCHOR[None], at_distances([1.7, 1.2]), at_distances([1.9, 1.95])))
    labels = torch.tensor([1, 1, 1, 0, 0])
    return rgb, thermal, labels


def test_training_loss_single_frame_matches_mmsl():
    rgb, thermal, labels = _batch()
    logits = torch.zeros(5, 2, dtype=torch.float64)
    total, parts = training_loss(logits, labels, rgb, thermal, CFG)
    assert parts["ce"] == pytest.approx(math.log(2))
    assert parts["mmsl"] == pytest.approx(3.5)
    assert total.item() == pytest.approx(math.log(2) + 3.5)
    weighted = from_dict(LossConfig, {"ce_weight": 2.0, "mmsl_weight": 0.5})
    assert training_loss(logits, labels, rgb, thermal, weighted)[0].item() == pytest.approx(
        2 * math.log(2) + 1.75)


def test_training_loss_averages_frames():
    rgb, thermal, labels = _batch()
    # Frame 1: the same rows, anchor last, shuffled order.
    order = torch.tensor([4, 2, 1, 3, 0])
    rgb2, thermal2, labels2 = torch.cat((rgb, rgb[order])), torch.cat((thermal, thermal[order])), torch.cat(
        (labels, labels[order]))
    anchors = torch.zeros(10, dtype=torch.bool)
    anchors[0] = anchors[9] = True
    frames = torch.tensor([0] * 5 + [1] * 5)
    _, parts = training_loss(torch.zeros(10, 2), labels2, rgb2, thermal2, CFG, anchor_mask=anchors,
                             frame_ids=frames)
    assert parts["mmsl"] == pytest.approx(3.5)
    assert parts["pos_mined_rgb"] == 2  # counts are totals over frames
    with pytest.raises(ValueError, match="exactly one anchor"):
        training_loss(torch.zeros(10, 2), labels2, rgb2, thermal2, CFG, frame_ids=frames)


def test_training_loss_without_mmsl_needs_no_embeddings():
    cfg = from_dict(LossConfig, {"use_mmsl": False})
    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]], requires_grad=True)
    total, parts = training_loss(logits, torch.tensor([1, 0]), None, None, cfg)
    assert set(parts) == {"ce"}
    total.backward()
    assert logits.grad is not None
    with pytest.raises(ValueError, match="no embeddings"):
        training_loss(logits, torch.tensor([1, 0]), None, None, CFG)


def test_gradient_step_moves_mined_samples_towards_their_intervals():
    pos = at_distances([1.8]).requires_grad_()
    neg = at_distances([1.0], first_axis=2).requires_grad_()
    cfg = from_dict(LossConfig, {"use_cross": False})
    mmsl_loss(ANCHOR, pos, neg, ANCHOR, pos, neg, cfg).total.backward()
    with torch.no_grad():
        new_pos, new_neg = pos - 0.01 * pos.grad, neg - 0.01 * neg.grad
    assert anchor_distances(ANCHOR, new_pos).item() < 1.8  # pulled towards [1.5, 1.6]
    assert anchor_distances(ANCHOR, new_neg).item() > 1.0  # pushed towards [1.8, 1.9]
