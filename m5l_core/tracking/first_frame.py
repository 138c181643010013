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
whole crop's feature maps become the first step of that job (with ``init.rest_near_iterations``,
the first iterations of the job train on the samples inside the quick crop before that conv pass,
so a learner short of time reaches its SGD steps sooner). Until the
regressor is fitted, results are the unregressed top-k mean. Every box is drawn up front, in
the same order as a blocking fine-tuning draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from m5l_core.tracking.api import TrackerError
from m5l_core.tracking.bbreg import BoxRegressor
from m5l_core.tracking.memory import FrameMemory, random_subset
from m5l_core.tracking.online import TrainingRun
from m5l_core.tracking.search import POSITIVE_SLACK, SearchRegion

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
            crops = ((near, feats), (region, feats if near is region else None))
            t.learner.submit("init", self._rest(crops, (rgb, thermal), box, (pos_f, neg_f), rest, optimizer,
                                                (t.trainer, regressor, t._learn_rng)))

    def _quick_samples(self, box: np.ndarray, pos: np.ndarray, neg: np.ndarray, region
                       ) -> tuple[SearchRegion, np.ndarray, np.ndarray]:
        """The quick fit's crop and samples: ``region`` (every sample's crop) and the first
        ``quick_pos`` / ``quick_neg`` samples, or with ``init.quick_crop`` an ordinary frame's crop
        around ``box`` (about a third of the pixels, so the first box does not wait for the conv
        layers on all of them) and the first samples inside it, where it holds any negative."""
        t, init = self.tracker, self.tracker.config.init
        if init.quick_crop:
            near = t.crop_sizes.fit(t._ordinary_region(box))
            quick_pos = np.flatnonzero(near.contains(pos, tolerance=POSITIVE_SLACK))[:init.quick_pos]
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

    def _rest(self, crops, frames, box, first, rest, optimizer, learning):
        """The deferred part of the fine-tuning, as a learner job (one step per ``next``). ``crops``:
        (the quick crop, its maps) and (the crop of every sample, its maps, or None: computed from
        ``frames`` in a step of their own). With ``init.rest_near_iterations`` and a quick crop, the
        samples inside it are pooled first, from the maps ``initialize`` already has, and that many
        iterations train on them before the conv pass over the whole crop brings in the others.
        ``learning``: (trainer, regressor, rng) of this target, taken when the job is made (a
        learner thread may still run it after the tracker has moved on to a new target)."""
        t, init = self.tracker, self.tracker.config.init
        trainer, regressor, rng = learning
        (near, near_maps), (region, maps) = crops
        iterations = init.iterations - init.quick_iterations
        early = min(init.rest_near_iterations, iterations) if near is not region else 0
        learnt = _Learnt(*first, rest[2][:0], first[0][:0])
        if early:
            inside = (near.contains(rest[0], POSITIVE_SLACK), near.contains(rest[1]),
                      near.contains(rest[2], POSITIVE_SLACK))
            rest, near_rest = (tuple(r[mask == keep] for r, mask in zip(rest, inside, strict=True))
                               for keep in (False, True))
            yield from self._add(near, near_maps, near_rest, learnt, regressor, box)
            yield from TrainingRun(trainer, optimizer, learnt.pos, learnt.neg, early, rng).as_job()
            iterations -= early
        if any(len(r) for r in rest):
            if maps is None:
                maps = t.network.frame_features(*frames, region, model=trainer.model)
                yield
            yield from self._add(region, maps, rest, learnt, regressor, box)
        yield from TrainingRun(trainer, optimizer, learnt.pos, learnt.neg, iterations, rng).as_job()

    def _add(self, region, feats, boxes: tuple[np.ndarray, ...], learnt: _Learnt, regressor, box):
        """Pool ``boxes`` (positives, negatives, regression boxes) into ``learnt`` and fit the box
        regressor on every regression box so far when some came (one step per pooled batch and one
        for the fit)."""
        pooled = yield from self._pooled(region, feats, boxes, learnt.pos)
        learnt.pos, learnt.neg = torch.cat([learnt.pos, pooled[0]]), torch.cat([learnt.neg, pooled[1]])
        learnt.reg_boxes = np.concatenate([learnt.reg_boxes, boxes[2]])
        learnt.reg = torch.cat([learnt.reg, pooled[2]])
        if len(boxes[2]):
            _fit_regressor(regressor, learnt.reg, learnt.reg_boxes, box)
            yield

    def _pooled(self, region, feats, boxes: tuple[np.ndarray, ...], like: torch.Tensor):
        """Fused features of each array of ``boxes`` (a generator whose value they are), pooled
        from ``region``'s maps ``feats`` in steps of ``budget.pool_batch`` boxes (``like``: a
        tensor of such features, for the empty result)."""
        t = self.tracker
        flat = np.concatenate(boxes)
        batch = t.config.budget.pool_batch
        parts = []
        for start in range(0, len(flat), batch):
            parts.append(t.network.pool(feats, region, flat[start:start + batch])[0])
            yield
        pooled = torch.cat(parts) if parts else like[:0]
        return torch.split(pooled, [len(b) for b in boxes])


@dataclass
class _Learnt:
    """What the first-frame fine-tuning has pooled so far: features of positives and negatives, and
    the regression boxes with theirs."""

    pos: torch.Tensor
    neg: torch.Tensor
    reg_boxes: np.ndarray
    reg: torch.Tensor


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
