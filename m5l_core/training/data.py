"""Training batches: one domain (sequence) per step, a few frames, positives/negatives per frame.

Every random choice of step ``s`` on rank ``r`` comes from a generator seeded with
``(seed, s, r)``, and the domain of a step is a pure function of ``(seed, s, r, world)``.
So a batch does not depend on what was drawn before it: a resumed run, a prefetching
thread and every DDP rank all see exactly the batches an uninterrupted run would.

Per frame: the frame pair is read with cv2 (BGR -> RGB), passes the shared
:func:`m5l_core.preprocess.prepare_pair`, and a region around the RGB ground truth is
cropped from both modalities with the same box (:mod:`m5l_core.crops`) so the target spans
``target_size`` crop pixels (times a random scale jitter, RT-MDNet). Samples are drawn in
crop coordinates: IoU is unchanged by the crop's per-axis scaling, and negatives then stay
inside the crop instead of landing on padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m5l_core.crops import boxes_to_rois, context_region, crop_region, crop_sides
from m5l_core.datasets.frames import read_pair
from m5l_core.datasets.sequence import DatasetError, Sequence
from m5l_core.preprocess import PreprocessConfig
from m5l_core.sampling import SampleGenerator
from m5l_core.training.config import SamplingConfig

ANCHOR, POSITIVE, NEGATIVE = 0, 1, 2


@dataclass(frozen=True)
class Domain:
    """A training sequence and the frames usable for training (target present and large enough)."""

    sequence: Sequence
    frames: np.ndarray


@dataclass(frozen=True)
class FrameBatch:
    """Network inputs of one step. Per frame the RoIs are ordered: anchor (GT), positives, negatives."""

    step: int
    domain: int
    frame_indices: np.ndarray     # (F,) frame numbers in the sequence
    rgb: np.ndarray               # (F, S, S, 3) uint8 crops
    thermal: np.ndarray           # (F, S, S, 3) uint8 crops, same regions
    rois: np.ndarray              # (F * (1 + P + Q), 5) float32 for M5LNet.pool
    kinds: np.ndarray             # (F * (1 + P + Q),) ANCHOR / POSITIVE / NEGATIVE

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)


def usable_frames(sequence: Sequence, min_box_side: float) -> np.ndarray:
    """Indices of frames with images and a finite ground truth of at least ``min_box_side`` px."""
    gt = np.asarray(sequence.gt_rgb, dtype=np.float64)
    count = min(len(gt), len(sequence.rgb_frames), len(sequence.thermal_frames))
    gt = gt[:count]
    side = max(min_box_side, 1e-6)
    ok = np.all(np.isfinite(gt), axis=1) & (gt[:, 2] >= side) & (gt[:, 3] >= side)
    return np.flatnonzero(ok)


def make_domains(sequences: list[Sequence], min_box_side: float) -> list[Domain]:
    """One domain per sequence with enough usable frames; a clear error when none is usable."""
    domains = []
    for sequence in sequences:
        frames = usable_frames(sequence, min_box_side)
        if len(frames) > 0:
            domains.append(Domain(sequence, frames))
    if not domains:
        raise DatasetError(f"none of the {len(sequences)} sequences has frames with images and a "
                           f"ground truth of at least {min_box_side} px")
    return domains


def domain_for_step(step: int, rank: int, world_size: int, num_domains: int, seed: int) -> int:
    """Domain trained by ``rank`` at ``step``.

    Each epoch deals a fresh permutation of the domains to the ranks, ``world_size`` per step.
    When the domains do not divide evenly, the epoch's last step is topped up from the start
    of the permutation, so every domain is trained once per epoch and the ranks of one step
    always train different domains (given at least ``world_size`` domains).
    """
    steps_per_epoch = -(-num_domains // world_size)
    epoch, offset = divmod(step, steps_per_epoch)
    order = np.random.default_rng((seed, 0x5EED, epoch)).permutation(num_domains)
    return int(order[(offset * world_size + rank) % num_domains])


def _exactly(boxes: np.ndarray, n: int, rng: np.random.Generator, fallback: np.ndarray) -> np.ndarray:
    """Exactly ``n`` boxes: subsample, or resample with replacement (``fallback`` if none were found)."""
    if len(boxes) == 0:
        boxes = fallback[None]
    if len(boxes) == n:
        return boxes
    return boxes[rng.choice(len(boxes), n, replace=len(boxes) < n)]


def draw_samples(target: np.ndarray, crop_size: int, config: SamplingConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(P, 4)`` positives and ``(Q, 4)`` negatives around ``target``, all in crop pixels."""
    size = (crop_size, crop_size)
    aspect = config.aspect if config.aspect > 1.0 else None
    positive = SampleGenerator("gaussian", size, config.pos_trans, config.pos_scale, aspect)
    positives = positive.sample(target, config.pos_per_frame, rng, tuple(config.pos_iou))
    # A degenerate fallback never happens for sane configs; it keeps the batch shape fixed.
    positives = _exactly(positives, config.pos_per_frame, rng, target)
    n_whole = int(round(config.neg_per_frame * config.neg_whole_fraction))
    parts = []
    if n_whole:
        parts.append(SampleGenerator("whole", size).sample(target, n_whole, rng, tuple(config.neg_iou)))
    negative = SampleGenerator("uniform", size, config.neg_trans, config.neg_scale, aspect)
    parts.append(negative.sample(target, config.neg_per_frame - n_whole, rng, tuple(config.neg_iou)))
    corner = np.array([0.0, 0.0, target[2], target[3]])
    negatives = _exactly(np.concatenate(parts), config.neg_per_frame, rng, corner)
    return positives, negatives


def crop_frame(rgb: np.ndarray, thermal: np.ndarray, gt: np.ndarray, config: SamplingConfig,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop both modalities around ``gt`` (scale-jittered); return the crops and the GT in crop pixels."""
    jitter = config.scale_jitter ** float(np.clip(3.0 * rng.standard_normal(), -2.0, 2.0))
    target_px = config.target_size * jitter * gt[2:] / crop_sides(gt[2:], config.crop_stretch)
    out_size = (config.crop_size, config.crop_size)
    region = context_region(gt, out_size, target_px)
    centre = config.crop_size / 2.0
    target = np.array([*(centre - target_px / 2), *target_px])
    return crop_region(rgb, region, out_size), crop_region(thermal, region, out_size), target


def build_batch(domains: list[Domain], step: int, rank: int, world_size: int, seed: int,
                config: SamplingConfig, preprocess: PreprocessConfig) -> FrameBatch:
    """The batch of ``step`` on ``rank``: deterministic in its arguments alone."""
    domain = domain_for_step(step, rank, world_size, len(domains), seed)
    rng = np.random.default_rng((seed, step, rank))
    frames = domains[domain].frames
    picks = rng.choice(frames, config.frames_per_step, replace=len(frames) < config.frames_per_step)
    sequence = domains[domain].sequence
    rgb_crops, thermal_crops, rois, kinds = [], [], [], []
    for slot, index in enumerate(picks):
        rgb, thermal = read_pair(sequence, int(index), preprocess)
        gt = np.asarray(sequence.gt_rgb[index], dtype=np.float64)
        rgb_crop, thermal_crop, target = crop_frame(rgb, thermal, gt, config, rng)
        positives, negatives = draw_samples(target, config.crop_size, config, rng)
        boxes = np.concatenate([target[None], positives, negatives])
        crop_box = (0.0, 0.0, float(config.crop_size), float(config.crop_size))
        rois.append(boxes_to_rois(boxes, crop_box, (config.crop_size, config.crop_size), slot,
                                  context=config.roi_context))
        kinds.append(np.concatenate([[ANCHOR], np.full(len(positives), POSITIVE),
                                     np.full(len(negatives), NEGATIVE)]))
        rgb_crops.append(rgb_crop)
        thermal_crops.append(thermal_crop)
    return FrameBatch(step=step, domain=domain, frame_indices=np.asarray(picks), rgb=np.stack(rgb_crops),
                      thermal=np.stack(thermal_crops), rois=np.concatenate(rois), kinds=np.concatenate(kinds))
