"""Crop sizes the conv layers have met before, reused for later frames.

The CPU's oneDNN (and a GPU's cuDNN) prepares its convolution kernels per input size, and keeps
a bounded cache of them (oneDNN's default: 1024 primitives, a few dozen sizes of the node's
33-convolution trunk): on this project's CPU the node's trunk takes ~18 ms on a crop size it
has met and ~50 ms on a new one. Every frame's crop has its own size (the candidates' hull at the
target's scale, see search.py), and on a live camera the gaps between tracked frames, the
target's changing shape and the widened searches make nearly every size new: 20-35 sizes in 25-40
frames of the real sequences. So a frame whose crop fits inside a size already met, at no more
than ``slack`` times its pixels, goes to the conv layers at that size: the crop is padded at its
bottom and right edges with the pixel mean (zero once the mean is subtracted, what the first
convolution's own padding adds), so no pixel, RoI or sample moves. A crop that fits none becomes
a new size, its sides rounded up to ``SIDE_STEP`` pixels so that the next crops, a little larger
or smaller, fit it too. (Growing the crop with more of the scene instead, a first version, lost a
5 px wide target more often at realtime gaps; docs/experiments.md, session 17.)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from m5l_core.tracking.search import SearchRegion

SIDE_STEP = 32     # new sizes' sides are rounded up to this (fewer sizes than 16 on real sequences)
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
        """``region`` with the input size its crop is padded to: one met before, or a new rounded
        one, of at most ``max_pixels``."""
        if not self.enabled:
            return region
        size = self._choose(*region.out_size, max_pixels)
        self._sizes = [size] + [s for s in self._sizes if s != size][: CAPACITY - 1]
        return region if size == tuple(region.out_size) else dataclasses.replace(region, input_size=size)

    def _choose(self, width: int, height: int, max_pixels: float) -> tuple[int, int]:
        limit = max(min(self.slack * width * height, max_pixels), width * height)
        fitting = [s for s in self._sizes if s[0] >= width and s[1] >= height and s[0] * s[1] <= limit]
        if fitting:
            return min(fitting, key=lambda s: s[0] * s[1])
        rounded = (-(-width // SIDE_STEP) * SIDE_STEP, -(-height // SIDE_STEP) * SIDE_STEP)
        return rounded if rounded[0] * rounded[1] <= limit else (width, height)   # a small crop: exact
