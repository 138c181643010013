"""First-frame fine-tuning of fc4-fc6 (fresh fc6) and the box regressor, with a quick start.

RT-MDNet pools 500 positives, 5000 negatives and 1000 regression boxes from the first frame and
runs 50 SGD iterations before the first result: seconds on a CPU, while a live target moves on.
With the quick start (``init.quick_iterations`` below ``init.iterations``) ``initialize`` pools
only ``quick_pos`` positives and ``quick_neg`` negatives and runs ``quick_iterations`` iterations
on them; the rest (pooling the other samples in batches of ``budget.pool_batch``, fitting the box
regressor, the remaining iterations on all samples with the same optimizer) becomes the first
job of the learning budget. With ``init.quick_crop`` the conv layers first see only an ordinary
frame's crop around the target (half of the first box's time was the conv layers on the crop
holding every sample, three times as large), the quick fit takes its samples inside it, and the
whole crop's feature maps become the first step of that job. Until the
regressor is fitted, results are the unregressed top-k mean. Every box is drawn up front, in
the same order as a blocking fine-tuning draws them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from m5l_core.tracking.api import TrackerError
from m5l_core.tracking.bbreg import BoxRegressor
from m5l_core.tracking.memory import FrameMemory, random_subset
from m5l_core.tracking.online import TrainingRun
from m5l_core.tracking.search import SearchRegion

if TYPE_CHECKING:
    from m5l_core.tracking.tracker import M5LTracker

SAMPLE_ASPECT = 1.1   # aspect jitter of uniform sample generators (RT-MDNet)


class FirstFrameFit:
    """Runs on ``tracker``'s own state (its classifier, generators, memories, learner)."""

    def __init__(self, tracker: M5LTracker):
        self.tracker = tracker

    def run(self, rgb: np.ndarray, thermal: np.ndarray, box: np.ndarray) -> None:
        t, init = self.tracker, self.tracker.config.init
        pos, neg, reg = self._samples(box)
        region = t._region(np.concatenate([pos, neg, reg, box[None]]))
        quick = 0 < init.quick_iterations < init.iterations
        if quick:
            near, quick_pos, quick_neg = self._quick_samples(box, pos, neg, region)
        else:
            near, quick_pos, quick_neg = region, np.arange(len(pos)), np.arange(len(neg))
        feats = t.network.frame_features(rgb, thermal, near)
        t.box_refiner.start(feats, near, box)
        first = t.network.pool_chunked(feats, near, np.concatenate([pos[quick_pos], neg[quick_neg]]))
        pos_f, neg_f = first[:len(quick_pos)], first[len(quick_pos):]
        if len(neg_f) == 0:
            raise TrackerError(f"no negative samples could be drawn around {box.tolist()}")
        optimizer = t.trainer.optimizer(init.lr)
        bb = t.config.bbreg
        regressor = t._regressor = BoxRegressor(bb.alpha, t.box_prior, bb.prior_size_weight)
        if not quick:
            reg_f = t.network.pool_chunked(feats, region, reg) if len(reg) else reg
            t.trainer.train(optimizer, pos_f, neg_f, init.iterations, t._rng)
            _fit_regressor(regressor, reg_f, reg, box)
        else:
            TrainingRun(t.trainer, optimizer, pos_f, neg_f, init.quick_iterations, t._rng,
                        neg_candidates=min(t.config.optim.neg_candidates, len(neg_f))).run_all()
        t._publish_weights()
        _new_memories(t, pos_f, neg_f)
        t.reference.reset(t.classifier.scores(pos_f).cpu().numpy())
        if quick:
            rest = (np.delete(pos, quick_pos, axis=0), np.delete(neg, quick_neg, axis=0), reg)
            maps = feats if near is region else None
            t.learner.submit("init", self._rest(region, maps, (rgb, thermal), box, pos_f, neg_f, rest,
                                                optimizer, (t.trainer, regressor, t._learn_rng)))

    def _quick_samples(self, box: np.ndarray, pos: np.ndarray, neg: np.ndarray, region
                       ) -> tuple[SearchRegion, np.ndarray, np.ndarray]:
        """The quick fit's crop and samples: ``region`` (every sample's crop) and the first
        ``quick_pos`` / ``quick_neg`` samples, or with ``init.quick_crop`` an ordinary frame's crop
        around ``box`` (about a third of the pixels, so the first box does not wait for the conv
        layers on all of them) and the first samples inside it, where it holds any negative."""
        t, init = self.tracker, self.tracker.config.init
        if init.quick_crop:
            near = t.crop_sizes.fit(t._ordinary_region(box))
            quick_pos = np.flatnonzero(near.contains(pos, tolerance=0.05))[:init.quick_pos]
            quick_neg = np.flatnonzero(near.contains(neg))[:init.quick_neg]
            if len(quick_pos) and len(quick_neg):
                return near, quick_pos, quick_neg
        return region, np.arange(min(init.quick_pos, len(pos))), np.arange(min(init.quick_neg, len(neg)))

    def _samples(self, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t, init, bb = self.tracker, self.tracker.config.init, self.tracker.config.bbreg
        pos = t._generator("gaussian", init.pos_trans, init.pos_scale).sample(
            box, init.n_pos, t._rng, (init.pos_iou_min, 1.0))
        pos = pos if len(pos) else box[None]
        neg = t._generator("uniform", init.neg_trans, init.neg_scale, aspect=SAMPLE_ASPECT).sample(
            box, init.n_neg, t._rng, (0.0, init.neg_iou_max))
        if init.n_inner_neg:
            inner = t._inner_negatives(box, init.n_inner_neg, init.neg_iou_max)
            # shuffled: the quick start fits on the first quick_neg negatives, inner ones among them
            neg = np.concatenate([neg, inner])[t._rng.permutation(len(neg) + len(inner))]
        reg = t._generator("uniform", bb.trans, bb.scale, aspect=SAMPLE_ASPECT).sample(
            box, bb.n_samples if bb.enabled else 0, t._rng, (bb.iou_min, 1.0))
        return pos, neg, reg

    def _rest(self, region, feats, frames, box, pos_f, neg_f, rest, optimizer, learning):
        """The deferred part of the fine-tuning, as a learner job (one step per ``next``): the rest is
        pooled from ``region``'s feature maps ``feats`` (None: computed from ``frames`` in the job's
        first step). ``learning``: (trainer, regressor, rng) of this target, taken when the job is
        made (a learner thread may still run it after the tracker has moved on to a new target)."""
        t = self.tracker
        trainer, regressor, rng = learning
        if feats is None:
            feats = t.network.frame_features(*frames, region, model=trainer.model)
            yield
        boxes = np.concatenate(rest)
        batch = t.config.budget.pool_batch
        parts = []
        for start in range(0, len(boxes), batch):
            parts.append(t.network.pool(feats, region, boxes[start:start + batch])[0])
            yield
        pooled = torch.cat(parts) if parts else pos_f[:0]
        more_pos, more_neg, reg_f = torch.split(pooled, [len(r) for r in rest])
        if len(reg_f):
            _fit_regressor(regressor, reg_f, rest[2], box)
            yield
        run = TrainingRun(trainer, optimizer, torch.cat([pos_f, more_pos]), torch.cat([neg_f, more_neg]),
                          t.config.init.iterations - t.config.init.quick_iterations, rng)
        yield from run.as_job()


def _fit_regressor(regressor: BoxRegressor, reg_f: torch.Tensor, reg: np.ndarray, box: np.ndarray) -> None:
    if len(reg_f):
        regressor.fit(reg_f, reg, box)


def _new_memories(t, pos: torch.Tensor, neg: torch.Tensor) -> None:
    """The tracker's sample memories, holding the first frame's samples."""
    upd = t.config.update
    t._pos_memory = FrameMemory(upd.long_term_frames)
    t._neg_memory = FrameMemory(upd.short_term_frames)
    t._pos_memory.add(random_subset(pos, upd.n_pos, t._rng).to(t._store_dtype))
    t._neg_memory.add(random_subset(neg, upd.n_neg, t._rng).to(t._store_dtype))
