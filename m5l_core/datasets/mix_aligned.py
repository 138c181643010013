"""``aligned_pairs``: pixel-aligned RGB/thermal photos filmed by one camera, so the thermal stream
sees real thermal images.

The pairs carry no boxes, so the target is the most distinctive of a few random boxes: one
that stands out from its surroundings and has texture in *both* modalities (the smaller of the
two scores counts), which is what a tracker can follow. The same warp moves both images.
"""

from __future__ import annotations

import cv2
import numpy as np

from m5l_core.datasets.mix_config import AlignedPairsConfig
from m5l_core.datasets.mix_inputs import aligned_pairs, gather, read_grey8, read_rgb
from m5l_core.datasets.mix_photo import RenderedSequence, film_still, seeded_order
from m5l_core.datasets.sequence import DatasetError


def _box_sums(integral: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Sums over integer ``x1, y1, x2, y2`` boxes (exclusive ends) from a ``cv2.integral`` table."""
    x1, y1, x2, y2 = boxes.T
    return integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]


def distinctiveness(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per box: (|mean inside - mean of the surrounding ring| + std inside) / the image's std."""
    height, width = image.shape
    sums, squares = cv2.integral2(image, sdepth=cv2.CV_64F)
    inner = boxes.astype(int)
    grow = np.stack([(inner[:, 2] - inner[:, 0]) // 2, (inner[:, 3] - inner[:, 1]) // 2], axis=1)
    outer = np.concatenate([inner[:, :2] - grow, inner[:, 2:] + grow], axis=1)
    outer = np.clip(outer, 0, [width, height, width, height])
    area_in = np.prod(inner[:, 2:] - inner[:, :2], axis=1).astype(float)
    area_out = np.prod(outer[:, 2:] - outer[:, :2], axis=1).astype(float)
    sum_in, sum_out = _box_sums(sums, inner), _box_sums(sums, outer)
    mean_in = sum_in / area_in
    mean_ring = (sum_out - sum_in) / np.maximum(area_out - area_in, 1.0)
    std_in = np.sqrt(np.maximum(_box_sums(squares, inner) / area_in - mean_in ** 2, 0.0))
    return (np.abs(mean_in - mean_ring) + std_in) / max(float(image.std()), 1e-6)


def candidate_boxes(size: tuple[int, int], config: AlignedPairsConfig,
                    rng: np.random.Generator) -> np.ndarray:
    """``(N, 4)`` integer ``x1, y1, x2, y2`` boxes, each a box side away from the photo's edge."""
    width, height = size
    n = config.candidates
    side = rng.uniform(*config.box_fraction, n) * min(width, height)
    aspect = np.exp(rng.uniform(*np.log(config.box_aspect), n))
    w = np.clip(side * np.sqrt(aspect), 4, width / 3).astype(int)
    h = np.clip(side / np.sqrt(aspect), 4, height / 3).astype(int)
    x = (w + rng.random(n) * np.maximum(width - 3 * w, 0)).astype(int)
    y = (h + rng.random(n) * np.maximum(height - 3 * h, 0)).astype(int)
    return np.stack([x, y, x + w, y + h], axis=1)


def distinctive_box(rgb: np.ndarray, thermal: np.ndarray, config: AlignedPairsConfig,
                    rng: np.random.Generator) -> np.ndarray:
    """The candidate that stands out most in its weaker modality, as ``x, y, w, h``."""
    boxes = candidate_boxes((rgb.shape[1], rgb.shape[0]), config, rng)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    score = np.minimum(distinctiveness(grey, boxes), distinctiveness(thermal, boxes))
    x1, y1, x2, y2 = boxes[int(np.argmax(score))]
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=float)


class AlignedPairsSource:
    """Every aligned pair of the configured folders, in a seeded order, with a chosen target each time."""

    key = "mix.aligned_pairs"

    def __init__(self, config: AlignedPairsConfig, seed: int):
        self.config = config
        key = f"{self.key}.roots"
        self.pairs = gather(config.roots, key, config.sequences, lambda root: aligned_pairs(root, key))
        self.order = seeded_order(len(self.pairs), seed, "aligned_pairs")

    def render(self, index: int, rng: np.random.Generator) -> RenderedSequence:
        visible, infrared = self.pairs[self.order[index % len(self.pairs)]]
        rgb, thermal = read_rgb(visible), read_grey8(infrared)
        if thermal.shape != rgb.shape[:2]:
            raise DatasetError(f"{infrared}: {thermal.shape[1]}x{thermal.shape[0]} but {visible} is "
                               f"{rgb.shape[1]}x{rgb.shape[0]}; aligned pairs must have the same size")
        config = self.config
        box = distinctive_box(rgb, thermal, config, rng)
        made = film_still(rgb, thermal, box, (config.width, config.height), config.frames, config.motion,
                          None, rng)
        info = {"image": str(visible), "thermal": str(infrared), "box": [float(v) for v in box]}
        return RenderedSequence(made.rgb, made.thermal, made.boxes, info)
