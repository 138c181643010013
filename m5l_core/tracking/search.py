"""The one crop a frame is scored on, and the mapping of sample boxes into it.

RT-MDNet crops, per frame, the smallest region holding every candidate grown by the RoI
context (``padding``), resized so that the last target size maps to ``target_size`` crop
pixels per axis (the scale the network was trained at; ``search.crop_stretch`` below 1 keeps
part of a non-square target's aspect, see :func:`m5l_core.crops.crop_sides`). Both modalities
are cropped with the same region, so one set of RoIs serves both streams. Samples for online
updates are pooled from this same crop; only those whose context box lies inside it are kept, so
an update never needs a second pass through the conv layers.

RoIs pool the feature cells whose receptive-field centres fall inside them
(:func:`m5l_core.models.roi_align.align_rois_to_receptive_field`). For VGG-M (no padding) a
conv3 cell exists only where its whole 75-pixel receptive field lies inside the crop, so the
crop is the hull plus a margin of half a receptive field on every side; padded backbones need
only a couple of cells (``BackboneGeometry.crop_margin``). Without the margin a box near the
hull's edge pools zeros instead of features, which biases the classifier against large or
off-centre boxes (a tracker that shrinks onto part of the target).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from m5l_core.crops import boxes_to_rois, crop_region, crop_sides
from m5l_core.geometry import overlap_ratio
from m5l_core.models.backbones import BackboneGeometry
from m5l_core.models.roi_align import align_rois_to_receptive_field

# Positives (and regression boxes) may reach this share of the crop's size past its cells: they
# overlap the target, so a little of their context missing costs less than losing them.
POSITIVE_SLACK = 0.05
MIN_CROP_EXTRA = 16   # crop pixels beyond the backbone's smallest input (a map of a few cells at least)


@dataclass(frozen=True)
class SearchRegion:
    box: np.ndarray                 # (4,) region x, y, w, h in frame pixels
    out_size: tuple[int, int]       # crop (width, height) in pixels
    context: float                  # RoI context factor (RT-MDNet padding)
    feature_offset: float           # the backbone's receptive-field offset, crop pixels
    margin: np.ndarray = field(default_factory=lambda: np.zeros(2))  # (mx, my) in frame pixels
    input_size: tuple[int, int] | None = None   # (width, height) the crop is padded to (crop_sizes.py)

    @property
    def area(self) -> float:
        """Crop pixels: what the conv layers pay for."""
        return float(self.out_size[0] * self.out_size[1])

    def rois(self, boxes: np.ndarray, device: torch.device) -> torch.Tensor:
        """``(N, 5)`` RoIs for ``M5LNet.pool`` (context grown, receptive-field aligned)."""
        rois = torch.from_numpy(boxes_to_rois(boxes, self.box, self.out_size, 0, context=self.context))
        return align_rois_to_receptive_field(rois.to(device), self.feature_offset)

    def contains(self, boxes: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
        """Mask of boxes whose context box lies where the crop has conv cells (up to ``tolerance``
        of the region's size outside)."""
        grown = context_boxes(boxes, self.context)
        slack = tolerance * self.box[2:] - self.margin
        low = self.box[:2] - slack
        high = self.box[:2] + self.box[2:] + slack
        return np.all((grown[:, :2] >= low) & (grown[:, :2] + grown[:, 2:] <= high), axis=1)


def context_boxes(boxes: np.ndarray, context: float) -> np.ndarray:
    """Boxes grown about their centres by ``context`` (what RoIAlign actually pools)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    grown = boxes.copy()
    grown[:, 2:] *= context
    grown[:, :2] -= (grown[:, 2:] - boxes[:, 2:]) / 2
    return grown


def region_around(boxes: np.ndarray, target_wh: np.ndarray, context: float, target_size: int,
                  max_side: int, geometry: BackboneGeometry, stretch: float) -> SearchRegion:
    """The hull of ``boxes`` grown by ``context`` plus the backbone's crop margin, at ``target_size``
    crop pixels per target side (see :func:`crop_sides`; fewer when the crop would exceed
    ``max_side``)."""
    grown = context_boxes(boxes, context)
    low = grown[:, :2].min(axis=0)
    high = (grown[:, :2] + grown[:, 2:]).max(axis=0)
    scale = target_size / crop_sides(target_wh, stretch)
    margin = geometry.crop_margin / scale                 # image pixels
    box = np.concatenate([low - margin, high - low + 2 * margin])
    min_side = geometry.min_input + MIN_CROP_EXTRA
    out = np.clip(np.round(box[2:] * scale), min_side, max(max_side, min_side)).astype(int)
    return SearchRegion(box=box, out_size=(int(out[0]), int(out[1])), context=context, margin=margin,
                        feature_offset=geometry.offset)


def hull_corners(box: np.ndarray, trans: float, scale: float) -> np.ndarray:
    """Two boxes spanning the hull of Gaussian candidates around ``box`` with spread ``trans`` (see
    sampling.py: offsets reach ``trans`` mean sides, sizes ``scale`` times)."""
    reach = trans * float(np.mean(box[2:]))
    size = box[2:] * scale
    centre = box[:2] + box[2:] / 2
    return np.array([[*(centre - reach - size / 2), *size], [*(centre + reach - size / 2), *size]])


def region_within(region_at: Callable[[float], SearchRegion], target_size: float, limit: float
                  ) -> SearchRegion:
    """``region_at(target_size)``, or at a smaller target size (a coarser scale) until its area is at
    most ``limit`` crop pixels."""
    region = region_at(target_size)
    size = float(target_size)
    for _ in range(8):   # the margin does not shrink with the scale: converge in a few rounds
        if region.area <= limit:
            break
        size *= float(np.sqrt(limit / region.area))
        region = region_at(size)
    return region


def crop_pair(rgb: np.ndarray, thermal: np.ndarray, region: SearchRegion) -> tuple[np.ndarray, np.ndarray]:
    """Both modalities resampled from the same region (mean-colour border, as in training)."""
    return crop_region(rgb, region.box, region.out_size), crop_region(thermal, region.box, region.out_size)


def top_candidates(scores: torch.Tensor, candidates: np.ndarray, k: int,
                   min_overlap: float = 0.0) -> torch.Tensor:
    """Indices of the ``k`` best-scored candidates, best first; with ``min_overlap`` > 0 only among
    those overlapping the best one by at least that IoU. The result box is their mean: where two
    look-alikes both score high (a pedestrian passing the target), the plain top-k splits between
    them and their mean lands between the two, on neither."""
    if min_overlap <= 0:
        return scores.topk(min(k, len(scores))).indices
    order = scores.argsort(descending=True)
    ranked = order.cpu().numpy()
    near_best = overlap_ratio(candidates[ranked], candidates[ranked[0]]) >= min_overlap
    return order[torch.as_tensor(np.flatnonzero(near_best)[:k], device=order.device)]
