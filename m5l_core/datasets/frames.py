"""Reading frames from disk, the same way for training, the runner, the box head and the bag converter."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from m5l_core.datasets.sequence import DatasetError, Sequence
from m5l_core.preprocess import PreprocessConfig, prepare_pair


def read_frame(path: Path, thermal: bool) -> np.ndarray:
    """An image as stored (thermal keeps its bit depth); colour comes back in RGB order."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED if thermal else cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: cannot read image (missing or not an image)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def read_pair(sequence: Sequence, index: int, preprocess: PreprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``index`` of a sequence as two registered ``HxWx3`` uint8 images."""
    rgb = read_frame(sequence.rgb_frames[index], thermal=False)
    # Thermal keeps its bit depth: prepare_pair owns the 16-bit normalisation rule.
    thermal = read_frame(sequence.thermal_frames[index], thermal=True)
    return prepare_pair(rgb, thermal, preprocess)
