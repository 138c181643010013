"""One ``Sequence`` type for every benchmark layout and for synthetic sequences."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names it."""


@dataclass(frozen=True)
class Sequence:
    """A synchronized RGB-T sequence.

    ``gt_rgb`` and ``gt_thermal`` are ``(N, 4)`` float arrays of ``x, y, w, h`` per frame
    (for benchmarks with a single ground truth both hold the same array). Rows with
    non-positive width or height mark frames where the target is absent (LasHeR rule).
    ``attributes`` maps an attribute name (``OCC``, ``TC``, ...) to a per-frame boolean
    array, or to a length-1 array for sequence-level flags.
    ``rgb_frames``/``thermal_frames`` may be empty when only ground truth is available
    (scoring result files without the images on disk).
    """

    name: str
    benchmark: str
    rgb_frames: tuple[Path, ...]
    thermal_frames: tuple[Path, ...]
    gt_rgb: np.ndarray
    gt_thermal: np.ndarray
    init_box: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    root: Path | None = None

    def __len__(self) -> int:
        return len(self.gt_rgb)

    @property
    def has_images(self) -> bool:
        return bool(self.rgb_frames)
