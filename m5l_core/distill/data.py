"""Training crops for distillation: real photos (RGB stream) and aligned RGB/thermal pairs (thermal stream).

A batch is a pure function of ``(seed, stream, purpose, index)``, so a resumed run reads exactly
the crops an uninterrupted one would, and prefetching changes nothing but speed. Images are read
from disk per batch (a folder of photos can be larger than memory is worth spending on it).

Crop: a square window of ``crop_size / scale`` source pixels, resized to ``crop_size`` (INTER_AREA
when shrinking, so small scales do not alias). The scale is raised where needed for the window
to fit inside the image: no crop ever shows padding, which neither network sees at tracking time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from m5l_core.datasets import image_folders
from m5l_core.datasets.frames import read_frame
from m5l_core.datasets.image_folders import list_images
from m5l_core.datasets.sequence import DatasetError
from m5l_core.distill.config import STREAMS, AugmentConfig, DistillConfig
from m5l_core.preprocess import prepare_pair

PURPOSES = {"train": 0, "stats": 1}


@dataclass(frozen=True)
class CropBatch:
    """``(B, S, S, 3)`` uint8 images: what the teacher sees and what the student sees."""

    teacher: np.ndarray
    student: np.ndarray   # the same array as ``teacher`` for the RGB stream


@dataclass(frozen=True)
class Window:
    x0: int
    y0: int
    side: int
    flip: bool


MISSING_FOLDER_HINT = "fix the path in the distill config or with --set"


def require_folder(path: str | Path, key: str) -> Path:
    return image_folders.require_folder(path, key, MISSING_FOLDER_HINT)


def photo_files(folders: tuple[str, ...]) -> list[Path]:
    """Every image below the ``photo_folders``, in a fixed order."""
    files = []
    for index, folder in enumerate(folders):
        found = list_images(require_folder(folder, f"photo_folders[{index}]"))
        if not found:
            raise DatasetError(f"photo_folders[{index}]: no images in {folder}")
        files += found
    return files


def pair_files(folders: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """``(visible, infrared)`` files of the same name below every ``pair_folders`` root."""
    pairs = []
    for index, folder in enumerate(folders):
        key = f"pair_folders[{index}]"
        root = require_folder(folder, key)
        found = image_folders.aligned_pairs(root, key, MISSING_FOLDER_HINT)
        if not found:
            raise DatasetError(f"{key}: no file of {root / 'visible'} has a partner of the same name in "
                               f"{root / 'infrared'}")
        pairs += found
    return pairs


def draw_window(height: int, width: int, crop_size: int, augment: AugmentConfig,
                rng: np.random.Generator) -> Window:
    low, high = augment.scale_range
    scale = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    side = min(int(round(crop_size / scale)), height, width)   # a smaller window = a larger scale
    x0 = int(rng.integers(0, width - side + 1))
    y0 = int(rng.integers(0, height - side + 1))
    return Window(x0, y0, side, flip=bool(augment.flip and rng.random() < 0.5))


def cut(image: np.ndarray, window: Window, crop_size: int) -> np.ndarray:
    patch = image[window.y0:window.y0 + window.side, window.x0:window.x0 + window.side]
    interpolation = cv2.INTER_AREA if window.side > crop_size else cv2.INTER_LINEAR
    patch = cv2.resize(patch, (crop_size, crop_size), interpolation=interpolation)
    return np.ascontiguousarray(patch[:, ::-1]) if window.flip else patch


def jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Contrast about mid-grey, then a brightness offset: the lighting changes a tracker meets."""
    if strength == 0.0:
        return image
    contrast = rng.uniform(1.0 - strength, 1.0 + strength)
    brightness = rng.uniform(-64.0 * strength, 64.0 * strength)
    values = (image.astype(np.float32) - 128.0) * contrast + 128.0 + brightness
    return np.clip(values, 0, 255).astype(np.uint8)


class CropSource:
    """Seeded crop batches of one stream: photos (RGB) or aligned pairs (thermal)."""

    def __init__(self, stream: str, config: DistillConfig):
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
        self.stream = stream
        self.config = config
        self.files = photo_files(config.photo_folders) if stream == "rgb" else pair_files(config.pair_folders)

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, index: int, purpose: str = "train") -> CropBatch:
        rng = np.random.default_rng([self.config.seed, STREAMS.index(self.stream), PURPOSES[purpose], index])
        size = self.config.batch_size
        if self.stream == "rgb":
            photos = np.stack([self._photo_crop(rng) for _ in range(size)])
            return CropBatch(photos, photos)
        pairs = [self._pair_crop(rng) for _ in range(size)]
        return CropBatch(np.stack([rgb for rgb, _ in pairs]), np.stack([thermal for _, thermal in pairs]))

    def _photo_crop(self, rng: np.random.Generator) -> np.ndarray:
        config = self.config
        image = read_frame(self.files[int(rng.integers(len(self.files)))], thermal=False)
        window = draw_window(*image.shape[:2], config.crop_size, config.augment, rng)
        return jitter(cut(image, window, config.crop_size), config.augment.photometric, rng)

    def _pair_crop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        config = self.config
        visible, infrared = self.files[int(rng.integers(len(self.files)))]
        # prepare_pair: the project's one path for thermal (8/16-bit, colour-mapped, other size).
        rgb, thermal = prepare_pair(read_frame(visible, thermal=False), read_frame(infrared, thermal=True))
        window = draw_window(*rgb.shape[:2], config.crop_size, config.augment, rng)
        return (jitter(cut(rgb, window, config.crop_size), config.augment.photometric, rng),
                jitter(cut(thermal, window, config.crop_size), config.augment.photometric, rng))
