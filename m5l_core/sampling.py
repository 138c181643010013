"""Box sampling around a target, as in the MDNet family (training, first-frame and online updates).

Three kinds of sample generator:

* ``gaussian`` — centre offsets ``trans * mean side * clip(N(0, 0.5^2), -1, 1)`` and scale factor
  ``scale ** clip(N(0, 0.5^2), -1, 1)``, the RT-MDNet parameterisation;
* ``uniform`` — offsets uniform in ``+-trans * mean side``, scale exponent uniform in ``+-1``;
* ``whole`` — boxes anywhere in the image, side from 10 % to 70 % of the frame (negatives).

:func:`inner_boxes` draws boxes lying inside the target, smaller than it: negatives that teach
a classifier that a part of the target is not the target (without them a classifier scores a
box filled by the target above one that also holds its edges, and the tracked box shrinks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m5l_core.geometry import overlap_ratio

KINDS = ("gaussian", "uniform", "whole")
# RT-MDNet keeps every sample's side at 10 px or more. For a target thinner than 20 px the floor
# is half of the target's own side instead: a 6 px wide target (a distant person at 640x480) would
# otherwise get no sample overlapping it by 0.7, so no positives on the first frame or after.
MIN_SIDE = 10.0


@dataclass(frozen=True)
class SampleGenerator:
    kind: str
    image_size: tuple[int, int]        # (width, height)
    trans: float = 1.0
    scale: float = 1.0
    aspect: float | None = None        # allowed aspect-ratio jitter factor, None = keep aspect
    clip_to_image: bool = False        # keep boxes inside the image (RT-MDNet's ``valid``)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown sample generator kind {self.kind!r}; choose from {KINDS}")

    def draw(self, box, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` boxes (x, y, w, h) around ``box`` without any overlap filtering."""
        box = np.asarray(box, dtype=np.float64)
        centre = box[:2] + box[2:] / 2
        samples = np.tile(np.concatenate([centre, box[2:]]), (n, 1))
        if self.aspect is not None:
            ratio = self.aspect ** (rng.random((n, 1)) * 2 - 1)
            samples[:, 2:] *= np.concatenate([ratio, 1 / ratio], axis=1)
        samples = self._jitter(samples, rng)
        width, height = self.image_size
        floor = np.minimum(MIN_SIDE, box[2:] / 2)
        samples[:, 2:] = np.clip(samples[:, 2:], floor, [width - MIN_SIDE, height - MIN_SIDE])
        if self.clip_to_image:
            half = samples[:, 2:] / 2
            samples[:, :2] = np.clip(samples[:, :2], half, [width, height] - half)
        else:
            samples[:, :2] = np.clip(samples[:, :2], 0, [width, height])
        samples[:, :2] -= samples[:, 2:] / 2
        return samples

    def _jitter(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(samples)
        mean_side = samples[:, 2:].mean(axis=1, keepdims=True)
        if self.kind == "gaussian":
            samples[:, :2] += self.trans * mean_side * np.clip(0.5 * rng.standard_normal((n, 2)), -1, 1)
            samples[:, 2:] *= self.scale ** np.clip(0.5 * rng.standard_normal((n, 1)), -1, 1)
        elif self.kind == "uniform":
            samples[:, :2] += self.trans * mean_side * (rng.random((n, 2)) * 2 - 1)
            samples[:, 2:] *= self.scale ** (rng.random((n, 1)) * 2 - 1)
        else:
            width, height = self.image_size
            side = min(width, height)
            sides = side * (0.1 + 0.6 * rng.random((n, 1)))
            aspect = samples[0, 2] / max(samples[0, 3], 1e-6)
            samples[:, 2:] = np.concatenate([sides * np.sqrt(aspect), sides / np.sqrt(aspect)], axis=1)
            samples[:, :2] = rng.random((n, 2)) * [width, height]
        return samples

    def sample(self, box, n: int, rng: np.random.Generator, iou_range: tuple[float, float] | None = None,
               max_rounds: int = 20) -> np.ndarray:
        """``n`` boxes whose IoU with ``box`` lies in ``iou_range`` (inclusive), drawn in rounds.

        Returns fewer than ``n`` only when ``max_rounds`` rounds could not find enough; callers
        that need exactly ``n`` (training batches) resample with replacement.
        """
        if iou_range is None:
            return self.draw(box, n, rng)
        kept: list[np.ndarray] = []
        found = 0
        for _ in range(max_rounds):
            candidates = self.draw(box, max(n * 2, 16), rng)
            iou = overlap_ratio(candidates, np.asarray(box, dtype=np.float64))
            good = candidates[(iou >= iou_range[0]) & (iou <= iou_range[1])]
            kept.append(good)
            found += len(good)
            if found >= n:
                break
        pool = np.concatenate(kept) if kept else np.zeros((0, 4))
        if len(pool) > n:
            pool = pool[rng.choice(len(pool), n, replace=False)]
        return pool


def inner_boxes(box, n: int, rng: np.random.Generator, scale_range: tuple[float, float]) -> np.ndarray:
    """``n`` boxes inside ``box`` with its aspect and ``scale_range`` times its sides (uniform), at
    uniform positions (IoU with ``box`` = scale squared)."""
    box = np.asarray(box, dtype=np.float64)
    low, high = scale_range
    if not 0.0 < low <= high < 1.0:
        raise ValueError(f"inner box scales must satisfy 0 < low <= high < 1, got {scale_range}")
    scale = low + (high - low) * rng.random((n, 1))
    sides = box[2:] * scale
    corners = box[:2] + (box[2:] - sides) * rng.random((n, 2))
    return np.concatenate([corners, sides], axis=1)
