"""The online M5L tracker: the RT-MDNet procedure (paper §III-C, GUIDE §6) on fused RGB-T features.

Per frame (one pass through the conv layers, everything else batched)::

    prepare_pair -> 256 Gaussian candidates around the last box -> ONE crop of their hull, both
    modalities -> model.features once -> model.pool for all candidates -> model.fuse ->
    fc4/fc5/fc6 in one batch -> mean of the top-5 -> success if its score is above the threshold
    -> box regression (on success) -> collect update samples from the same maps (on success)
    -> short-term update (on failure) or long-term update (every 10 frames)

Updates train fc4-fc6 on fused features cached in bounded memories, never the conv layers.
After a failure the next frame's candidates spread wider (``search.trans_expanded``).
The tracker is deterministic for its seed: numpy draws come from its own Generator, torch
draws (fc6 init, dropout) from a private stream, both reset by ``initialize``.
"""

from __future__ import annotations

import numpy as np
import torch

from m5l_core.preprocess import prepare_pair, to_network_input
from m5l_core.sampling import SampleGenerator
from m5l_core.tracking.api import TrackerError, TrackResult
from m5l_core.tracking.bbreg import BoxRegressor
from m5l_core.tracking.config import TrackerConfig
from m5l_core.tracking.memory import FrameMemory
from m5l_core.tracking.online import OnlineClassifier
from m5l_core.tracking.runtime import (
    PrivateTorchRng,
    StageTimer,
    autocast_factory,
    resolve_device,
    resolve_precision,
)
from m5l_core.tracking.search import SearchRegion, crop_pair, region_around

SAMPLE_ASPECT = 1.1   # aspect jitter of uniform sample generators (RT-MDNet)
RTMDNET_TARGET_SIZE = 107  # target side in crop pixels when neither config nor checkpoint gives one
POOL_CHUNK = 2048     # RoIs pooled per call on the first frame (bounds peak memory)


class M5LTracker:
    """Implements :class:`m5l_core.tracking.api.RGBTTracker` with an M5L (or baseline) network."""

    def __init__(self, model: torch.nn.Module, model_config=None, config: TrackerConfig | None = None,
                 device: str | torch.device = "cpu", seed: int = 0):
        self.config = config if config is not None else TrackerConfig()
        self.model_config = model_config
        self.device = resolve_device(device)
        self.seed = int(seed)
        runtime = self.config.runtime
        if runtime.threads > 0:
            torch.set_num_threads(runtime.threads)
        self.model = model.to(self.device).eval()
        self._memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
        self.model.to(memory_format=self._memory_format)
        self.precision = resolve_precision(self.device, runtime.precision)
        self._autocast = autocast_factory(self.device, self.precision)
        self._store_dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        # fc4/fc5 change online: every sequence starts again from the loaded weights.
        self._initial_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._box: np.ndarray | None = None
        self._trans = self.config.search.trans
        self._target_size = self.config.search.target_size or RTMDNET_TARGET_SIZE
        self.last_region: SearchRegion | None = None   # the crop of the last frame (for reports)
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
        """Candidate spread for the next frame: ``search.trans``, or ``trans_expanded`` after a failure."""
        return self._trans

    def initialize(self, rgb: np.ndarray, thermal: np.ndarray, box) -> None:
        rgb, thermal = prepare_pair(rgb, thermal, self.config.preprocess)
        box = _check_box(box, rgb.shape)
        self.model.load_state_dict(self._initial_state)
        self._rng = np.random.default_rng(self.seed)
        self._torch_rng = PrivateTorchRng(self.seed, self.device)
        self._image_size = (rgb.shape[1], rgb.shape[0])
        self._box, self._trans, self._frame = box, self.config.search.trans, 0
        self.counters = {"frames": 0, "failures": 0, "short_term_updates": 0, "long_term_updates": 0}
        try:
            with self._torch_rng.active():
                self.classifier = OnlineClassifier(self.model, self.model.new_head(), self.config.optim,
                                                   self._autocast)
                self._fit_first_frame(rgb, thermal, box)
                self._update_optimizer = self.classifier.optimizer(self.config.update.lr)
        except BaseException:
            self._box = None   # a failed initialisation leaves the tracker uninitialised
            raise

    def track(self, rgb: np.ndarray, thermal: np.ndarray) -> TrackResult:
        if self._box is None:
            raise TrackerError("track() called before initialize()")
        timer = StageTimer(self.device)
        with timer.stage("preprocess"):
            rgb, thermal = prepare_pair(rgb, thermal, self.config.preprocess)
            if (rgb.shape[1], rgb.shape[0]) != self._image_size:
                raise TrackerError(f"frame size {rgb.shape[1]}x{rgb.shape[0]} differs from the first frame's "
                                   f"{self._image_size[0]}x{self._image_size[1]}")
            search = self.config.search
            candidates = self._generator("gaussian", self._trans, search.scale, clip=True).draw(
                self._box, search.n_candidates, self._rng)
            region = self.last_region = self._region(candidates)
            images = self._network_input(*crop_pair(rgb, thermal, region))
        with self._torch_rng.active():
            result = self._locate(images, region, candidates, timer)
        self._box = result.pop("search_box")
        return TrackResult(box=result["box"], score=result["score"], success=result["success"],
                           rgb_weight=result["weights"][0], thermal_weight=result["weights"][1],
                           timings={**timer.seconds, "total": sum(timer.seconds.values())})

    # -- one frame ------------------------------------------------------------------------------
    def _locate(self, images, region: SearchRegion, candidates: np.ndarray, timer: StageTimer) -> dict:
        cfg = self.config
        self._frame += 1
        with timer.stage("features"):
            feats = self._features(*images)
        with timer.stage("scoring"):
            fused, weights = self._pool(feats, region, candidates)
            scores = self.classifier.scores(fused)
            top = scores.topk(min(cfg.search.top_k, len(scores))).indices
            score = float(scores[top].mean())
            top_np = top.cpu().numpy()
            search_box = candidates[top_np].mean(axis=0)
        success = score > cfg.search.success_threshold
        self.counters["frames"] += 1
        self.counters["failures"] += not success
        self._trans = cfg.search.trans if success else cfg.search.trans_expanded
        box = search_box
        with timer.stage("bbreg"):
            if success and cfg.bbreg.enabled:
                box = self._regressor.predict(fused[top], candidates[top_np]).mean(axis=0)
                if cfg.search.search_from_regressed:
                    search_box = box
        with timer.stage("collect"):
            if success:
                self._collect(feats, region, search_box)
        with timer.stage("update"):
            self._update(success)
        modality = weights[top].float().mean(dim=0).cpu().numpy()
        return {"box": np.asarray(box, dtype=np.float64), "search_box": search_box, "score": score,
                "success": bool(success), "weights": (float(modality[0]), float(modality[1]))}

    def _update(self, success: bool) -> None:
        """Short-term update on failure, long-term update every ``long_term_interval`` frames."""
        upd = self.config.update
        if not self._pos_memory or not self._neg_memory:
            return
        if not success:
            pos = self._pos_memory.latest(upd.short_term_frames)
            self.counters["short_term_updates"] += 1
        elif self._frame % upd.long_term_interval == 0:
            pos = self._pos_memory.latest()
            self.counters["long_term_updates"] += 1
        else:
            return
        neg = self._neg_memory.latest()
        self.classifier.train(self._update_optimizer, pos, neg, upd.iterations, self._rng)

    def _collect(self, feats, region: SearchRegion, box: np.ndarray) -> None:
        """Pool this frame's update samples from the maps already computed (no second conv pass)."""
        upd = self.config.update
        pos = self._generator("gaussian", upd.pos_trans, upd.pos_scale).sample(
            box, upd.n_pos, self._rng, (upd.pos_iou_min, 1.0))
        # Negatives are drawn generously and only those inside the crop are kept (see search.py).
        neg = self._generator("uniform", upd.neg_trans, upd.neg_scale, aspect=SAMPLE_ASPECT).sample(
            box, 4 * upd.n_neg, self._rng, (0.0, upd.neg_iou_max))
        neg = neg[region.contains(neg)][: upd.n_neg]
        pos = pos[region.contains(pos, tolerance=0.05)]
        if len(pos) == 0 or len(neg) == 0:
            return
        fused, _ = self._pool(feats, region, np.concatenate([pos, neg]))
        self._pos_memory.add(fused[: len(pos)].to(self._store_dtype))
        self._neg_memory.add(fused[len(pos):].to(self._store_dtype))

    # -- first frame ----------------------------------------------------------------------------
    def _fit_first_frame(self, rgb: np.ndarray, thermal: np.ndarray, box: np.ndarray) -> None:
        cfg = self.config
        init, bb = cfg.init, cfg.bbreg
        pos = self._generator("gaussian", init.pos_trans, init.pos_scale).sample(
            box, init.n_pos, self._rng, (init.pos_iou_min, 1.0))
        pos = pos if len(pos) else box[None]
        neg = self._generator("uniform", init.neg_trans, init.neg_scale, aspect=SAMPLE_ASPECT).sample(
            box, init.n_neg, self._rng, (0.0, init.neg_iou_max))
        reg = self._generator("uniform", bb.trans, bb.scale, aspect=SAMPLE_ASPECT).sample(
            box, bb.n_samples if bb.enabled else 0, self._rng, (bb.iou_min, 1.0))
        boxes = np.concatenate([pos, neg, reg, box[None]])
        region = self._region(boxes)
        feats = self._features(*self._network_input(*crop_pair(rgb, thermal, region)))
        fused = self._pool_chunked(feats, region, boxes[:-1])
        pos_f, neg_f, reg_f = torch.split(fused, [len(pos), len(neg), len(reg)])
        if len(neg_f) == 0:
            raise TrackerError(f"no negative samples could be drawn around {box.tolist()}")
        optimizer = self.classifier.optimizer(init.lr)
        self.classifier.train(optimizer, pos_f, neg_f, init.iterations, self._rng)
        self._regressor = BoxRegressor(bb.alpha)
        if len(reg_f):
            self._regressor.fit(reg_f, reg, box)
        self._pos_memory = FrameMemory(cfg.update.long_term_frames)
        self._neg_memory = FrameMemory(cfg.update.short_term_frames)
        self._pos_memory.add(_subset(pos_f, cfg.update.n_pos, self._rng).to(self._store_dtype))
        self._neg_memory.add(_subset(neg_f, cfg.update.n_neg, self._rng).to(self._store_dtype))

    # -- network plumbing -----------------------------------------------------------------------
    def _generator(self, kind: str, trans: float, scale: float, aspect: float | None = None,
                   clip: bool = False) -> SampleGenerator:
        return SampleGenerator(kind, self._image_size, trans, scale, aspect=aspect, clip_to_image=clip)

    def _region(self, boxes: np.ndarray) -> SearchRegion:
        search = self.config.search
        return region_around(boxes, self._box[2:], search.padding, self._target_size, search.max_crop_side)

    def _network_input(self, rgb_crop: np.ndarray, thermal_crop: np.ndarray):
        return tuple(to_network_input(c, self.device).contiguous(memory_format=self._memory_format)
                     for c in (rgb_crop, thermal_crop))

    def _features(self, rgb: torch.Tensor, thermal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), self._autocast():
            feats = self.model.features(rgb, thermal)
        # RoI coordinates must not be rounded to bf16, so pooling always runs in float32.
        return tuple(f.float().clone() for f in feats)

    def _pool(self, feats, region: SearchRegion, boxes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            pooled = self.model.pool(feats, region.rois(boxes, self.device))
            return self.model.fuse(pooled)

    def _pool_chunked(self, feats, region: SearchRegion, boxes: np.ndarray) -> torch.Tensor:
        starts = range(0, len(boxes), POOL_CHUNK)
        parts = [self._pool(feats, region, boxes[i:i + POOL_CHUNK])[0] for i in starts]
        return torch.cat(parts) if parts else torch.zeros((0, 0), device=self.device)


def _check_box(box, image_shape) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise TrackerError(f"initial box must be 4 finite numbers x, y, w, h; got {box.tolist()}")
    if box[2] <= 0 or box[3] <= 0:
        raise TrackerError(f"initial box must have a positive width and height; got {box.tolist()}")
    height, width = image_shape[:2]
    if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
        raise TrackerError(f"initial box {box.tolist()} lies outside the {width}x{height} frame")
    return box


def _subset(features: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    if len(features) <= n:
        return features
    index = torch.from_numpy(rng.choice(len(features), n, replace=False)).to(features.device)
    return features.index_select(0, index)
