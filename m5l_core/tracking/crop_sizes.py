"""Crop sizes the conv layers have met before, reused for later frames.

The CPU's oneDNN (and a GPU's cuDNN) prepares its convolution kernels per input size, and keeps
a bounded cache of them (oneDNN's default: 1024 primitives, a few dozen sizes of the node's
33-convolution trunk): on this project's CPU the node's trunk takes ~18 ms on a crop size it
has met and ~50 ms on a new one. Every frame's crop has its own size (the candidates' hull at the
target's scale, see search.py), and on a live camera the gaps between tracked frames, the
target's changing shape and the widened searches make nearly every size new: 20-35 sizes in 25-40
frames of the real sequences. So a frame whose crop fits inside a size already met, at no more
than ``slack`` times its pixels, is cropped at that size instead: the same scale, the region grown
about its centre with more of the scene (no candidate moves; the classifier sees more context
around them; the samples kept for online learning are those of the crop before it grew). A crop
that fits none becomes a new size, its sides rounded up to ``SIDE_STEP``
pixels so that the next crops, a little larger or smaller, fit it too.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from m5l_core.tracking.search import SearchRegion

SIDE_STEP = 32     # new crop sides are rounded up to this (fewer sizes than 16 on real sequences)
CAPACITY = 16      # sizes remembered, most recently used first


class CropSizes:
    """Sizes met by one tracker's conv layers since its ``initialize``, most recently used first."""

    def __init__(self, slack: float):
        self.slack = float(slack)
        self._sizes: list[tuple[int, int]] = []

    @property
    def enabled(self) -> bool:
        return self.slack > 1.0

    def reset(self) -> None:
        self._sizes.clear()

    def fit(self, region: SearchRegion, max_pixels: float = np.inf) -> SearchRegion:
        """``region`` at a size met before (or a new rounded one) of at most ``max_pixels``, grown
        about its centre."""
        if not self.enabled:
            return region
        size = self._choose(*region.out_size, max_pixels)
        self._sizes = [size] + [s for s in self._sizes if s != size][: CAPACITY - 1]
        return grown_to(region, size)

    def _choose(self, width: int, height: int, max_pixels: float) -> tuple[int, int]:
        limit = max(min(self.slack * width * height, max_pixels), width * height)
        fitting = [s for s in self._sizes if s[0] >= width and s[1] >= height and s[0] * s[1] <= limit]
        if fitting:
            return min(fitting, key=lambda s: s[0] * s[1])
        rounded = (-(-width // SIDE_STEP) * SIDE_STEP, -(-height // SIDE_STEP) * SIDE_STEP)
        return rounded if rounded[0] * rounded[1] <= limit else (width, height)   # a small crop: exact


def grown_to(region: SearchRegion, size: tuple[int, int]) -> SearchRegion:
    """``region`` cropped at ``size`` pixels, at its own scale per axis, about the same centre."""
    if tuple(region.out_size) == tuple(size):
        return region
    scale = np.asarray(region.out_size, dtype=np.float64) / region.box[2:]
    wh = np.asarray(size, dtype=np.float64) / scale
    centre = region.box[:2] + region.box[2:] / 2
    held = region.box if region.sample_box is None else region.sample_box
    return dataclasses.replace(region, box=np.concatenate([centre - wh / 2, wh]),
                               out_size=(int(size[0]), int(size[1])), sample_box=held)
