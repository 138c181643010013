"""One optimisation step on one batch: forward, CE + MMSL, backward, clip, SGD step."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from m5l_core.losses import LossConfig, training_loss
from m5l_core.models import align_rois_to_receptive_field
from m5l_core.preprocess import to_network_input
from m5l_core.training.data import ANCHOR, NEGATIVE, POSITIVE, FrameBatch

# Scalars every log line carries (missing ones, e.g. MMSL terms of the no_mmsl ablation, are null).
LOG_KEYS = ("loss", "ce", "mmsl", "l_rgb", "l_thermal", "l_cross", "pos_in_interval", "neg_in_interval",
            "pos_within_alpha", "neg_beyond_margin", "pos_dist", "neg_dist", "accuracy", "pos_accuracy",
            "neg_accuracy", "weight_rgb", "weight_thermal", "grad_norm")


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of torch's generator (dropout) for one step: resumable without saving RNG state."""
    return int(np.random.SeedSequence((seed, step, rank, 1)).generate_state(1)[0])


def batch_tensors(batch: FrameBatch, device: torch.device, feature_offset: float) -> dict[str, torch.Tensor]:
    """Network inputs of ``batch``; RoIs shifted by the backbone's ``feature_offset`` (its geometry)."""
    kinds = torch.from_numpy(batch.kinds.astype(np.int64)).to(device)
    rois = align_rois_to_receptive_field(torch.from_numpy(batch.rois).to(device), feature_offset)
    return {
        "rgb": to_network_input(batch.rgb, device),
        "thermal": to_network_input(batch.thermal, device),
        "rois": rois,
        "anchor": kinds == ANCHOR,
        # The anchor (the ground-truth box) is a genuine positive for the classifier.
        "labels": (kinds != NEGATIVE).long(),
        "frames": rois[:, 0].long(),
    }


def structure_shares(parts: dict, batch: FrameBatch) -> dict[str, float]:
    """Shares of samples on the right side of the MMSL boundaries, both modalities pooled.

    ``pos_in_interval``/``neg_in_interval`` (from the loss) count samples inside the paper's
    target intervals ``[alpha - beta, alpha]`` and ``[alpha + m, alpha + m + beta]``; positives
    that are already closer than ``alpha - beta`` are fine but not "in" theirs. These shares
    say how much of the structure holds: positives no farther than ``alpha`` from the anchor
    and negatives at least ``alpha + m`` away (1 - the mined confusing samples, Eqs. 4-5).
    """
    if "pos_mined" not in parts:
        return {}
    positives = 2 * int((batch.kinds == POSITIVE).sum())
    negatives = 2 * int((batch.kinds == NEGATIVE).sum())
    return {"pos_within_alpha": 1.0 - parts["pos_mined"] / max(positives, 1),
            "neg_beyond_margin": 1.0 - parts["neg_mined"] / max(negatives, 1)}


def classifier_metrics(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        correct = (logits.argmax(dim=1) == labels).double()
        positive = labels == 1
        values = torch.stack((correct.mean(), correct[positive].mean(), correct[~positive].mean(),
                              weights[:, 0].double().mean(), weights[:, 1].double().mean()))
    names = ("accuracy", "pos_accuracy", "neg_accuracy", "weight_rgb", "weight_thermal")
    return dict(zip(names, values.cpu().tolist(), strict=True))


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, batch: FrameBatch, loss_config: LossConfig,
               grad_clip: float, device: torch.device) -> dict[str, float]:
    """Run one step; ``net`` may be the DDP wrapper (its forward is ``M5LNet.forward``)."""
    model = net.module if hasattr(net, "module") else net   # DDP wraps the M5LNet
    inputs = batch_tensors(batch, device, model.geometry.offset)
    output = net(inputs["rgb"], inputs["thermal"], inputs["rois"], batch.domain)
    total, parts = training_loss(output.logits, inputs["labels"], output.emb_rgb, output.emb_thermal,
                                 loss_config, anchor_mask=inputs["anchor"], frame_ids=inputs["frames"])
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    # clip_grad_norm_ with an infinite bound only measures: the log keeps the norm either way.
    norm = nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf"))
    optimizer.step()
    metrics = {"loss": float(total.detach()), "grad_norm": float(norm)}
    metrics.update(parts)
    metrics.update(structure_shares(parts, batch))
    weights = output.modality_weights.detach()
    metrics.update(classifier_metrics(output.logits.detach(), inputs["labels"], weights))
    return metrics
