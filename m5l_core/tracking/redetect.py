"""Re-detection after a loss: a coarse grid of candidates over the whole image, one tile per frame.

After ``after_lost`` failed frames the target has probably left the local search (out of view,
occluded, a jump). Candidates of the last good size are laid on a grid with a step of
``stride`` target sides over the whole image and grouped into square tiles of ``tile`` target
sides; each frame scores one tile (one crop at most ``search.max_area_ratio`` ordinary crops,
at a coarser scale where the tile needs it, and fewer candidates than the local search), in
raster order, starting again after the last tile. The
tracker takes a tile's best candidate when it scores like a good frame and better than the
local search. With a learner thread (``budget.mode: thread``) the tile is scored on that thread,
with its copy of the network, and the tracking thread only queues it: its best box, when it
scores like a good frame, becomes the centre of the local search of the next frame, which
confirms it or not. A lost frame then costs what an ordinary frame costs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from m5l_core.tracking.config import RedetectConfig
from m5l_core.tracking.learner import one_step
from m5l_core.tracking.search import SearchRegion

if TYPE_CHECKING:
    from m5l_core.tracking.online import OnlineClassifier
    from m5l_core.tracking.tracker import M5LTracker


class Redetection:
    """One target's re-detection, run on ``tracker``'s network plumbing (a new one per target)."""

    def __init__(self, tracker: M5LTracker):
        self.tracker = tracker
        self.sweep = TileSweep(tracker.config.redetect, tracker._image_size)
        self._proposal: tuple[np.ndarray, float] | None = None   # the learner's best box and score
        self._pending = False                                      # a tile job is queued or running

    def stop(self) -> None:
        """The target is found: the next loss starts a new sweep."""
        self.sweep.stop()

    def frame(self, rgb: np.ndarray, thermal: np.ndarray, result: dict) -> dict:
        """This lost frame's share: score the next tile (or queue it on the learner thread); returns
        the frame's result, replaced by the tile's best box when that looks like the target and
        scores above the local search."""
        t = self.tracker
        if not self.sweep.active:
            self.sweep.start(t._box[2:])
        if t.learner.threaded:
            if self._proposal is None and not self._pending:
                self._pending = True
                tile = self.sweep.next_tile()
                t.learner.submit("redetect", self._tile_job(rgb, thermal, tile, t._capped_region(tile)))
            return result
        tile = self.sweep.next_tile()
        box, score, weights = self._best_in_tile(rgb, thermal, tile, t._capped_region(tile), t.classifier)
        if t.reference.is_failure(score) or score <= result["score"]:
            return result
        t.counters["redetections"] += 1
        return {"box": box, "search_box": box.copy(), "score": score, "success": True,
                "confident": score > t.config.search.success_threshold, "weights": weights}

    def take_proposal(self) -> np.ndarray | None:
        """The learner's re-detected box, when one came since the last frame and scored like the target."""
        proposal, self._proposal = self._proposal, None
        if proposal is None or self.tracker.reference.is_failure(proposal[1]):
            return None
        return proposal[0]

    def _best_in_tile(self, rgb, thermal, tile: np.ndarray, region: SearchRegion,
                      classifier: OnlineClassifier) -> tuple[np.ndarray, float, tuple[float, float]]:
        """The tile's best candidate, its score and modality weights, with ``classifier``'s network."""
        t, model = self.tracker, classifier.model
        feats = t.network.frame_features(rgb, thermal, region, model=model)
        fused, weights = t.network.pool(feats, region, tile, model=model)
        scores = classifier.scores(fused)
        best = int(scores.argmax())
        modality = weights[best].float().cpu().numpy()
        return tile[best].copy(), float(scores[best]), (float(modality[0]), float(modality[1]))

    def _tile_job(self, rgb, thermal, tile: np.ndarray, region: SearchRegion):
        """A learner job (one step) scoring one tile with the learner's copy of the network."""
        t, trainer = self.tracker, self.tracker.trainer

        def score_tile() -> None:
            proposal = self._best_in_tile(rgb, thermal, tile, region, trainer)
            with t.learner.exclusive():
                if t.redetection is self:   # a job of an earlier target leaves no proposal
                    self._proposal, self._pending = proposal, False

        return one_step(score_tile)


class TileSweep:
    def __init__(self, config: RedetectConfig, image_size: tuple[int, int]):
        self.config = config
        self.image_size = image_size
        self._tiles: list[np.ndarray] = []
        self._next = 0

    @property
    def active(self) -> bool:
        return bool(self._tiles)

    @property
    def tiles(self) -> int:
        return len(self._tiles)

    def start(self, size: np.ndarray) -> None:
        """Lay the grid for a target of ``size`` (w, h); the sweep begins with the first tile."""
        self._tiles = grid_tiles(np.asarray(size, dtype=np.float64), self.image_size, self.config.stride,
                                 self.config.tile)
        self._next = 0

    def stop(self) -> None:
        self._tiles = []
        self._next = 0

    def next_tile(self) -> np.ndarray:
        """The candidate boxes (x, y, w, h) of the next tile."""
        tile = self._tiles[self._next]
        self._next = (self._next + 1) % len(self._tiles)
        return tile


def grid_tiles(size: np.ndarray, image_size: tuple[int, int], stride: float, tile: float) -> list[np.ndarray]:
    """Boxes of ``size`` centred on a grid covering the image, grouped by square tiles."""
    width, height = image_size
    side = float(size.mean())
    step = max(stride * side, 1.0)
    cx = np.arange(step / 2, width, step)
    cy = np.arange(step / 2, height, step)
    tile_px = max(tile * side, step)
    tiles = []
    for y0 in np.arange(0, height, tile_px):
        for x0 in np.arange(0, width, tile_px):
            xs = cx[(cx >= x0) & (cx < x0 + tile_px)]
            ys = cy[(cy >= y0) & (cy < y0 + tile_px)]
            if len(xs) == 0 or len(ys) == 0:
                continue
            gx, gy = np.meshgrid(xs, ys)
            centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
            tiles.append(np.concatenate([centres - size / 2, np.tile(size, (len(centres), 1))], axis=1))
    return tiles
