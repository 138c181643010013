"""The online M5L tracker: the RT-MDNet procedure (paper §III-C, GUIDE §6) on fused RGB-T features.

Per frame (one pass through the conv layers, everything else batched)::

    prepare_pair -> 256 Gaussian candidates around the last box -> ONE crop of their hull, both
    modalities -> model.features once -> model.pool for all candidates -> model.fuse ->
    fc4/fc5/fc6 in one batch -> mean of the top-5 -> failure test (failure.py) -> box regression
    (on success) -> the box head's size for the reported box (box_head.py) -> collect update
    samples from the same maps (on success; negatives include boxes inside the target, so that a
    part of it never outscores the whole) -> queue a short-term
    update (on failure, when samples came since the last) or a long-term one (every 10 frames;
    updates.py) -> a few learning steps (learner.py)

Updates train fc4-fc6 on fused features cached in bounded memories, never the conv layers, and
run within a per-frame budget of steps (``budget``), after the frame's result. The first frame
starts with a quick fit on a subset of the samples (``init.quick_*``); the rest of the
fine-tuning is the first job of that budget. After a failure the next frame's candidates spread
wider (``search.trans_expanded``), and with image stamps they also spread with the time since
the last tracked frame (motion.py), and part of them are drawn around where the optical flow
says the target went (flow.py); a widened crop never exceeds ``search.max_area_ratio`` times
an ordinary one, and with ``search.size_reuse`` a crop is padded to a size the conv layers met
before (crop_sizes.py). After ``redetect.after_lost`` failures, one tile of a whole-image grid is
scored per frame as well (redetect.py; on the learner thread when there is one).
The tracker is deterministic for its seed: numpy draws come from its own Generator, torch
draws (fc6 init, dropout) from a private stream, both reset by ``initialize``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import weakref

import numpy as np
import torch

from m5l_core.models.effnet import set_fused_convs
from m5l_core.preprocess import prepare_pair
from m5l_core.sampling import SampleGenerator, inner_boxes
from m5l_core.tracking.api import TrackerError, TrackResult, check_initial_box
from m5l_core.tracking.bbreg import BoxPrior
from m5l_core.tracking.box_head import BoxHead, BoxRefiner
from m5l_core.tracking.config import TrackerConfig
from m5l_core.tracking.crop_budget import CropBudget
from m5l_core.tracking.crop_sizes import CropSizes
from m5l_core.tracking.failure import ScoreReference
from m5l_core.tracking.first_frame import FirstFrameFit
from m5l_core.tracking.learner import Learner
from m5l_core.tracking.motion import MotionModel
from m5l_core.tracking.network_pass import NetworkPass
from m5l_core.tracking.online import (
    OnlineClassifier,
    learner_copy,
    online_parameters,
    weight_publisher,
)
from m5l_core.tracking.redetect import Redetection
from m5l_core.tracking.runtime import (
    PrivateTorchRng,
    StageTimer,
    autocast_factory,
    resolve_device,
    resolve_precision,
)
from m5l_core.tracking.search import SearchRegion, hull_corners, region_around, region_within, top_candidates
from m5l_core.tracking.updates import OnlineUpdates

RTMDNET_TARGET_SIZE = 107  # target side in crop pixels when neither config nor checkpoint gives one


class M5LTracker:
    """Implements :class:`m5l_core.tracking.api.RGBTTracker` with an M5L (or baseline) network."""

    def __init__(self, model: torch.nn.Module, model_config=None, config: TrackerConfig | None = None,
                 device: str | torch.device = "cpu", seed: int = 0, box_prior: BoxPrior | None = None,
                 box_head: BoxHead | None = None):
        self.config = config if config is not None else TrackerConfig()
        self.model_config = model_config
        self.device = resolve_device(device)
        self.seed = int(seed)
        runtime = self.config.runtime
        if runtime.threads > 0:
            torch.set_num_threads(runtime.threads)
        self.model = model.to(self.device).eval()
        set_fused_convs(self.model, runtime.fused_convs)
        self.precision = resolve_precision(self.device, runtime.precision)
        self._autocast = autocast_factory(self.device, self.precision)
        self.network = NetworkPass(self.model, self.device, runtime, self._autocast)
        self.model.to(memory_format=self.network.memory_format)
        self.box_prior = None if box_prior is None else box_prior.to(self.device)
        self.box_head = None if box_head is None else box_head.to(self.device).eval()
        self._store_dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        # fc4/fc5 change online (nothing else does): every sequence starts again from the loaded ones.
        self._initial_online = [p.detach().clone() for p in online_parameters(self.model)]
        self._box: np.ndarray | None = None
        self._trans = self.config.search.trans
        self._target_size = self.config.search.target_size or RTMDNET_TARGET_SIZE
        self._publish_weights = weight_publisher(self)
        self.learner = Learner(self.config.budget, publish=self._publish_weights)
        weakref.finalize(self, self.learner.stop)   # a dropped tracker leaves no learner thread behind
        self.motion = MotionModel(self.config.search)
        self.reference = ScoreReference(self.config.failure, self.config.search.success_threshold)
        self.last_region: SearchRegion | None = None   # the crop of the last frame (for reports)
        self.crop_sizes = CropSizes(self.config.search.size_reuse)
        budget = self.config.budget
        self.crop_budget = CropBudget(budget.conv_ms, active=budget.mode != "steps")
        self.counters: dict[str, int] = {}

    # -- public API -----------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self._box is not None

    @property
    def target_size(self) -> int:
        """Target side in crop pixels this tracker crops at."""
        return self._target_size

    @property
    def search_spread(self) -> float:
        """Candidate spread for the next frame: ``search.trans``, or ``trans_expanded`` after a failure
        (before any growth with the gap between stamps)."""
        return self._trans

    def initialize(self, rgb: np.ndarray, thermal: np.ndarray, box, stamp: float | None = None) -> None:
        """Start on ``box``; ``stamp`` (seconds, optional) is the frame's time, for time-aware search."""
        rgb, thermal = prepare_pair(rgb, thermal, self.config.preprocess)
        box = check_initial_box(box, rgb.shape)
        with self.learner.exclusive():
            self._initialize(rgb, thermal, box, stamp)

    def _initialize(self, rgb: np.ndarray, thermal: np.ndarray, box: np.ndarray, stamp: float | None) -> None:
        self.learner.clear()
        self.learner.take_error()
        with torch.no_grad():
            for param, initial in zip(online_parameters(self.model), self._initial_online, strict=True):
                param.copy_(initial)
        self._rng = np.random.default_rng(self.seed)
        self._torch_rng = PrivateTorchRng(self.seed, self.device)
        self._image_size = (rgb.shape[1], rgb.shape[0])
        self._box, self._trans, self._frame, self._lost = box, self.config.search.trans, 0, 0
        self.counters = {"frames": 0, "failures": 0, "short_term_updates": 0, "long_term_updates": 0,
                         "updates_skipped": 0, "redetections": 0, "learning_steps": 0}
        self.motion.reset(box, stamp, rgb)
        self.crop_sizes.reset()
        self.redetection = Redetection(self)
        self.updates = OnlineUpdates(self)
        bbreg = self.config.bbreg
        self.box_refiner = BoxRefiner(self.box_head, bbreg.head_weight, self.model.geometry.spatial_scale,
                                      bbreg.head_centre_weight, bbreg.head_centre_max)
        try:
            with self._torch_rng.active():
                head = self.model.new_head(self.config.init.head_from_domains)
                self.classifier = OnlineClassifier(self.model, head, self.config.optim, self._autocast)
                self._new_trainer()
                FirstFrameFit(self).run(rgb, thermal, box)
                self._update_optimizer = self.trainer.optimizer(self.config.update.lr)
        except BaseException:
            self._box = None   # a failed initialisation leaves the tracker uninitialised
            raise

    def _new_trainer(self) -> None:
        """What online learning trains: the scoring classifier itself, or, with a learner thread, a
        copy of it (a new one per target: a step of the last target may still be running) whose
        weights are published to the scoring one after every step, and which mines its hard negatives
        from ``budget.thread_neg_candidates`` (cheaper steps, so a live learner keeps up better)."""
        if not self.learner.threaded:
            self.trainer, self._learn_rng = self.classifier, self._rng
            return
        optim = self.config.optim
        if self.config.budget.thread_neg_candidates:
            optim = dataclasses.replace(optim, neg_candidates=self.config.budget.thread_neg_candidates)
        self.trainer = OnlineClassifier(learner_copy(self.model), copy.deepcopy(self.classifier.head),
                                        optim, self._autocast)
        self._learn_rng = np.random.default_rng([self.seed, 1])

    def track(self, rgb: np.ndarray, thermal: np.ndarray, stamp: float | None = None) -> TrackResult:
        """The target in this frame; ``stamp`` (seconds, optional) lets dropped frames widen the search."""
        if self._box is None:
            raise TrackerError("track() called before initialize()")
        error = self.learner.take_error()
        if error is not None:
            raise TrackerError(f"online learning failed on the learner thread: {error}") from error
        started = time.perf_counter()
        timer = StageTimer(self.device)
        with timer.stage("preprocess"):
            rgb, thermal = prepare_pair(rgb, thermal, self.config.preprocess)
            if (rgb.shape[1], rgb.shape[0]) != self._image_size:
                raise TrackerError(f"frame size {rgb.shape[1]}x{rgb.shape[0]} differs from the first frame's "
                                   f"{self._image_size[0]}x{self._image_size[1]}")
            with self.learner.exclusive():
                candidates, region = self._candidates(stamp, rgb)
            images = self.network.inputs(rgb, thermal, region)
        with timer.stage("features"):
            # the one part that runs while a learner thread may take a step (it never touches the convs)
            feats = self.network.features(*images)
        self.crop_budget.record(np.prod(region.input_size or region.out_size), timer.seconds["features"])
        with self.learner.exclusive(), self._torch_rng.active():
            result = self._locate(feats, region, candidates, timer)
            if self._redetecting():
                with timer.stage("redetect"):
                    result = self.redetection.frame(rgb, thermal, result)
            self._after_frame(result)
            with timer.stage("update"):
                # the first box after initialize goes out at once; learning resumes on the next frame
                if self._frame > 1:
                    self.learner.run_frame(started)
            self.counters["learning_steps"] = self.learner.steps   # either schedule: steps since initialize
            self._box = result.pop("search_box")
        return TrackResult(box=result["box"], score=result["score"], success=result["success"],
                           rgb_weight=result["weights"][0], thermal_weight=result["weights"][1],
                           timings={**timer.seconds, "total": sum(timer.seconds.values())})

    def _candidates(self, stamp: float | None, rgb: np.ndarray) -> tuple[np.ndarray, SearchRegion]:
        """This frame's candidate boxes and the crop that holds them."""
        found = self.redetection.take_proposal()
        if found is not None and self._redetecting():
            self.counters["redetections"] += 1
            self._box = found
        self.motion.advance(stamp, rgb)
        self.motion.follow(self._box)
        last_box = self.motion.rescaled(self._box)
        centre_box = self.motion.predict(last_box)
        spread, scale = self._jitter()
        flowed = self.motion.flow_proposal(last_box, spread)
        search = self.config.search
        aspect = search.aspect if search.aspect > 1.0 else None
        generator = self._generator("gaussian", spread, scale, aspect=aspect, clip=True)
        n_flow = 0 if flowed is None else int(round(search.flow_share * search.n_candidates))
        candidates = generator.draw(centre_box, search.n_candidates - n_flow, self._rng)
        if n_flow:
            candidates = np.concatenate([candidates, generator.draw(flowed, n_flow, self._rng)])
        # two places searched (the flow's proposal and the last box): capped like a widened search
        region = self.last_region = self._capped_region(candidates, None if n_flow else spread)
        return candidates, region

    def warm_up(self) -> None:
        """One throw-away initialisation and frame on a synthetic image, so that the first real box
        does not wait for the math libraries' one-time set-up (about a second on a CPU). The next
        ``initialize`` starts from the loaded weights and the seed as always."""
        rng = np.random.default_rng(0)
        frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        self.initialize(frame, frame[..., 0], (140.0, 100.0, 40.0, 40.0))
        self.track(frame, frame[..., 0])
        self.learner.clear()
        self._box = None

    def finish_learning(self) -> int:
        """Run every pending learning step now (e.g. while the robot stands still; with a learner
        thread, wait until it has run them); returns how many ran meanwhile."""
        if self.learner.threaded:
            ran = self.learner.run_all()
        else:
            with self.learner.exclusive(), self._torch_rng.active():
                ran = self.learner.run_all()
        self.counters["learning_steps"] = self.learner.steps
        return ran

    def close(self) -> None:
        """Stop the learner thread, if one runs (also done when the tracker is garbage-collected)."""
        self.learner.stop()

    # -- one frame ------------------------------------------------------------------------------
    def _jitter(self) -> tuple[float, float]:
        """This frame's candidate spread and scale jitter: widened after a failure (not while the
        grid search runs, which covers the image), grown with the gap since the last tracked frame."""
        base = self.config.search.trans if self._redetecting() else self._trans
        return self.motion.spread(base), self.motion.scale_jitter(base)

    def _locate(self, feats, region: SearchRegion, candidates: np.ndarray, timer: StageTimer) -> dict:
        cfg = self.config
        self._frame += 1
        with timer.stage("scoring"):
            fused, weights = self.network.pool(feats, region, candidates)
            scores = self.classifier.scores(fused)
            top = top_candidates(scores, candidates, cfg.search.top_k, cfg.search.top_k_overlap)
            score = float(scores[top].mean())
            top_np = top.cpu().numpy()
            search_box = candidates[top_np].mean(axis=0)
        # LOST (widened search, re-detection) needs the calibrated test; what is learnt from the frame
        # keeps RT-MDNet's rule: samples only above the threshold, a short-term update below it.
        success = not self.reference.is_failure(score)
        confident = success and score > cfg.search.success_threshold
        box = search_box
        with timer.stage("bbreg"):
            if success and cfg.bbreg.enabled:
                box = self._regressor.predict(fused[top], candidates[top_np]).mean(axis=0)
                if cfg.search.search_from_regressed:
                    search_box = box
            box = self.box_refiner.refine(feats, region, np.asarray(box, dtype=np.float64))
        with timer.stage("collect"):
            if confident:
                self.updates.collect(feats, region, search_box)
        modality = weights[top].float().mean(dim=0).cpu().numpy()
        return {"box": np.asarray(box, dtype=np.float64), "search_box": search_box, "score": score,
                "success": bool(success), "confident": confident,
                "weights": (float(modality[0]), float(modality[1]))}

    def _after_frame(self, result: dict) -> None:
        """Book-keeping of the frame's outcome, and the update it calls for (queued, not run)."""
        cfg = self.config
        success = result["success"]
        self.counters["frames"] += 1
        self.counters["failures"] += not success
        self._trans = cfg.search.trans if success else cfg.search.trans_expanded
        if success:
            self.reference.record(result["score"])
            self.motion.good_frame(result["search_box"])
            self._lost = 0
            self.redetection.stop()
        else:
            self._lost += 1
        self.updates.queue(result.pop("confident", success))

    def _inner_negatives(self, box: np.ndarray, n: int, iou_max: float) -> np.ndarray:
        """``n`` negatives inside ``box`` (sampling.inner_boxes), sides capped so IoU <= ``iou_max``."""
        low, high = self.config.update.inner_scale
        high = min(high, float(np.sqrt(iou_max)))
        return inner_boxes(box, n, self._rng, (min(low, high), high))

    # -- re-detection ---------------------------------------------------------------------------
    def _redetecting(self) -> bool:
        rd = self.config.redetect
        return rd.enabled and self._lost >= rd.after_lost

    # -- network plumbing -----------------------------------------------------------------------
    def _generator(self, kind: str, trans: float, scale: float, aspect: float | None = None,
                   clip: bool = False) -> SampleGenerator:
        return SampleGenerator(kind, self._image_size, trans, scale, aspect=aspect, clip_to_image=clip)

    def _region(self, boxes: np.ndarray, target_size: float | None = None,
                target_wh: np.ndarray | None = None) -> SearchRegion:
        """The crop of ``boxes``, a ``target_wh`` target (default: the last box's) at ``target_size``."""
        search = self.config.search
        return region_around(boxes, self._box[2:] if target_wh is None else target_wh, search.padding,
                             target_size or self._target_size, search.max_crop_side, self.model.geometry,
                             search.crop_stretch)

    def _capped_region(self, candidates: np.ndarray, spread: float | None = None) -> SearchRegion:
        """The crop of ``candidates``, at a coarser scale when a widened spread (or a re-detection
        tile or two searched places: ``spread`` None) would make it larger than ``max_area_ratio``
        ordinary crops (so a widened frame costs about an ordinary one), or any frame's crop larger
        than ``max_crop_pixels`` or than the conv layers' time budget allows (crop_budget.py)."""
        search = self.config.search
        ordinary = self._ordinary_region(self._box).area
        bound = min(float(search.max_crop_pixels or np.inf), self.crop_budget.max_pixels(ordinary))
        limit = bound
        if spread is None or spread > search.trans:
            limit = min(limit, search.max_area_ratio * ordinary)
        region = region_within(lambda size: self._region(candidates, size), self._target_size, limit)
        return self.crop_sizes.fit(region, bound)

    def _ordinary_region(self, box: np.ndarray) -> SearchRegion:
        """The crop of an ordinary frame's candidates around ``box``, a target of ``box``'s size."""
        search = self.config.search
        return self._region(hull_corners(box, search.trans, search.scale), target_wh=box[2:])
