"""The one crop a frame is scored on, and the mapping of sample boxes into it.

RT-MDNet crops, per frame, the smallest region holding every candidate grown by the RoI
context (``padding``), resized so that the last target size maps to ``target_size`` crop
pixels per axis (the scale the network was trained at). Both modalities are cropped with the
same region, so one set of RoIs serves both streams. Samples for online updates are pooled
from this same crop; only those whose context box lies inside it are kept, so an update never
needs a second pass through the conv layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from m5l_core.crops import boxes_to_rois, crop_region
from m5l_core.models.roi_align import RECEPTIVE_FIELD, align_rois_to_receptive_field

# A crop smaller than one receptive field has no conv3 cell at all.
MIN_CROP_SIDE = RECEPTIVE_FIELD + 16


@dataclass(frozen=True)
class SearchRegion:
    box: np.ndarray                 # (4,) region x, y, w, h in frame pixels
    out_size: tuple[int, int]       # crop (width, height) in pixels
    context: float                  # RoI context factor (RT-MDNet padding)

    def rois(self, boxes: np.ndarray, device: torch.device) -> torch.Tensor:
        """``(N, 5)`` RoIs for ``M5LNet.pool`` (context grown, receptive-field aligned)."""
        rois = torch.from_numpy(boxes_to_rois(boxes, self.box, self.out_size, 0, context=self.context))
        return align_rois_to_receptive_field(rois.to(device))

    def contains(self, boxes: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
        """Boolean mask of boxes whose context box lies inside the region (up to ``tolerance`` of it)."""
        grown = context_boxes(boxes, self.context)
        slack = tolerance * self.box[2:]
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
                  max_side: int) -> SearchRegion:
    """The hull of ``boxes`` grown by ``context``, cropped at ``target_size`` px per target side."""
    grown = context_boxes(boxes, context)
    low = grown[:, :2].min(axis=0)
    high = (grown[:, :2] + grown[:, 2:]).max(axis=0)
    box = np.concatenate([low, high - low])
    scale = target_size / np.maximum(np.asarray(target_wh, dtype=np.float64), 1e-6)
    out = np.clip(np.round(box[2:] * scale), MIN_CROP_SIDE, max(max_side, MIN_CROP_SIDE)).astype(int)
    return SearchRegion(box=box, out_size=(int(out[0]), int(out[1])), context=context)


def crop_pair(rgb: np.ndarray, thermal: np.ndarray, region: SearchRegion) -> tuple[np.ndarray, np.ndarray]:
    """Both modalities resampled from the same region (mean-colour border, as in training)."""
    return crop_region(rgb, region.box, region.out_size), crop_region(thermal, region.box, region.out_size)
