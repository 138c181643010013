"""One target's online updates (RT-MDNet): samples collected on confident frames, a short-term
update on failure and a long-term one every ``update.long_term_interval`` frames.

A confident frame's samples are pooled from the feature maps the frame already computed (no second
conv pass) into bounded memories (memory.py); an update is a learner job (learner.py) training the
classifier on them. With a learner thread the pooling is a job too, and an update takes its
samples when it starts, after the pooling jobs queued before it, so it learns from what an update
of the deterministic schedules learns from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from m5l_core.tracking.first_frame import SAMPLE_ASPECT
from m5l_core.tracking.learner import Job, one_step
from m5l_core.tracking.memory import FrameMemory
from m5l_core.tracking.online import TrainingRun
from m5l_core.tracking.search import POSITIVE_SLACK, SearchRegion

if TYPE_CHECKING:
    from m5l_core.tracking.tracker import M5LTracker


class OnlineUpdates:
    """Runs on ``tracker``'s state (its memories, classifier copy, learner); a new one per target."""

    def __init__(self, tracker: M5LTracker):
        self.tracker = tracker
        self.frames_collected = 0   # frames whose samples were taken (pooled or queued to pool)
        self._last_update: int | None = None   # frames_collected when the last update was queued

    def queue(self, confident: bool) -> None:
        """Short-term update when the frame is not confident (and samples came since the last
        update), long-term update every ``long_term_interval`` frames."""
        t, upd = self.tracker, self.tracker.config.update
        if not t._pos_memory or not t._neg_memory:
            return
        collected = self.frames_collected
        if not confident:
            if upd.skip_unchanged and collected == self._last_update:
                t.counters["updates_skipped"] += 1
                return
            pos_frames = upd.short_term_frames
            t.counters["short_term_updates"] += 1
        elif t._frame % upd.long_term_interval == 0:
            pos_frames = None
            t.counters["long_term_updates"] += 1
        else:
            return
        self._last_update = collected
        memories = (t._pos_memory, t._neg_memory)
        if not t.learner.threaded:
            run = TrainingRun(t.trainer, t._update_optimizer, memories[0].latest(pos_frames),
                              memories[1].latest(), upd.iterations, t._rng)
            t.learner.submit("update", run.as_job())
        else:
            t.learner.submit("update", self._on_learner(
                memories, pos_frames, (t.trainer, t._update_optimizer, t._learn_rng)))

    def _on_learner(self, memories: tuple[FrameMemory, FrameMemory], pos_frames: int | None,
                    learning) -> Job:
        """An update as a learner-thread job that takes its samples when it starts. ``learning``:
        (trainer, optimizer, rng) of this target, taken when the job is made."""
        trainer, optimizer, rng = learning
        with self.tracker.learner.exclusive():   # where the pooling jobs add to the memories
            pos, neg = memories[0].latest(pos_frames), memories[1].latest()
        yield from TrainingRun(trainer, optimizer, pos, neg, self.tracker.config.update.iterations,
                               rng).as_job()

    def collect(self, feats, region: SearchRegion, box: np.ndarray) -> None:
        """Pool this frame's update samples from the maps already computed (no second conv pass)."""
        t = self.tracker
        samples = self._samples(region, box)
        if samples is None:
            return
        n_pos, memories = len(samples[0]), (t._pos_memory, t._neg_memory)
        self.frames_collected += 1

        def pool_and_store() -> None:
            fused = t.network.pool(feats, region, np.concatenate(samples))[0]
            with t.learner.exclusive():   # where the tracking thread reads the memories
                memories[0].add(fused[:n_pos].to(t._store_dtype))
                memories[1].add(fused[n_pos:].to(t._store_dtype))

        if t.learner.threaded:
            # The learner pools (10-15 ms of a 70-110 ms frame in the node), so the result does not
            # wait; each frame's samples are a job of their own. A job that runs after a new
            # initialize fills this target's memories, no longer used.
            t.learner.submit("collect", one_step(pool_and_store), replace=False)
        else:
            pool_and_store()

    def _samples(self, region: SearchRegion, box: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Positive and negative boxes around ``box`` whose context lies in ``region``; None if
        either kind has none."""
        t, upd = self.tracker, self.tracker.config.update
        pos = t._generator("gaussian", upd.pos_trans, upd.pos_scale).sample(
            box, upd.n_pos, t._rng, (upd.pos_iou_min, 1.0))
        # Negatives are drawn generously and only those inside the crop are kept (see search.py).
        neg = t._generator("uniform", upd.neg_trans, upd.neg_scale, aspect=SAMPLE_ASPECT).sample(
            box, 4 * upd.n_neg, t._rng, (0.0, upd.neg_iou_max))
        neg = neg[region.contains(neg)][: upd.n_neg]
        if upd.n_inner_neg:
            neg = np.concatenate([neg, t._inner_negatives(box, upd.n_inner_neg, upd.neg_iou_max)])
        pos = pos[region.contains(pos, tolerance=POSITIVE_SLACK)]
        return None if len(pos) == 0 or len(neg) == 0 else (pos, neg)
