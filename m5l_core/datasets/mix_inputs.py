"""Finding and reading the real inputs of the training mix: photos, boxes, polygons, aligned pairs.

Folder layouts (the ones under ``../shared/data``):

YOLO-style  ``<root>/images/<sub>/<name>.jpg`` with ``<root>/boxes/<sub>/<name>.txt`` (rows
            ``class cx cy w h``, normalised to the image size) and/or
            ``<root>/polygons/<sub>/<name>.txt`` (rows ``class x1 y1 x2 y2 ...``, normalised);
            a photo without an annotation file has no objects.
aligned     ``<root>/visible/<name>`` and ``<root>/infrared/<name>``: pixel-aligned pairs of the
            same file name; a file without its partner is skipped.
backgrounds any folder of photos, searched recursively.

Every list is sorted, so the inputs of a seeded mix do not depend on the file system's order.
A folder that is missing is an error naming it and the config key that named it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from m5l_core.datasets import image_folders
from m5l_core.datasets.frames import read_frame
from m5l_core.datasets.image_folders import list_images
from m5l_core.datasets.sequence import DatasetError


@dataclass(frozen=True)
class BoxedObject:
    """One annotated object of a photo: its box (``x, y, w, h`` px) and, for polygons, its outline."""

    image: Path
    size: tuple[int, int]               # the photo's width, height
    box: np.ndarray
    polygon: np.ndarray | None = None   # (K, 2) px, edge coordinates


MISSING_FOLDER_HINT = "fix the path in the config or set the source's sequences to 0"


def require_folder(path: str | Path, key: str) -> Path:
    return image_folders.require_folder(path, key, MISSING_FOLDER_HINT)


def require_roots(roots: tuple[str, ...], key: str, sequences: int) -> list[Path]:
    if not roots:
        raise DatasetError(f"{key} is empty but {key.rsplit('.', 1)[0]}.sequences is {sequences}: name the "
                           f"folders (see config/train_real.yaml) or set the sequences to 0")
    return [require_folder(root, key) for root in roots]


def gather(roots: tuple[str, ...], key: str, sequences: int, find: Callable[[Path], list]) -> list:
    """``find(root)`` over every configured root, concatenated; an error when none is named or found."""
    found: list = []
    for root in require_roots(roots, key, sequences):
        found += find(root)
    if not found:
        raise DatasetError(f"{key}: nothing usable found in {', '.join(roots)}")
    return found


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{path}: cannot read image (missing or not an image)")
    return image.shape[1], image.shape[0]


def _numbers(path: Path, line_no: int, line: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in line.split()])
    except ValueError:
        raise DatasetError(f"{path}:{line_no}: expected numbers, got {line.strip()!r}") from None


def read_yolo_boxes(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """``class cx cy w h`` rows (normalised) as ``x, y, w, h`` px boxes."""
    width, height = size
    boxes = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        values = _numbers(path, line_no, line)
        if len(values) != 5:
            raise DatasetError(f"{path}:{line_no}: expected 'class cx cy w h', got {len(values)} values")
        cx, cy, w, h = values[1:] * (width, height, width, height)
        boxes.append(np.array([cx - w / 2, cy - h / 2, w, h]))
    return boxes


def read_yolo_polygons(path: Path, size: tuple[int, int]) -> list[np.ndarray]:
    """``class x1 y1 x2 y2 ...`` rows (normalised) as ``(K, 2)`` px outlines."""
    polygons = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        values = _numbers(path, line_no, line)
        if len(values) < 7 or len(values) % 2 == 0:
            raise DatasetError(f"{path}:{line_no}: expected 'class x1 y1 x2 y2 x3 y3 ...' (3+ points)")
        polygons.append(values[1:].reshape(-1, 2) * size)
    return polygons


def polygon_box(polygon: np.ndarray) -> np.ndarray:
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    return np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]])


def annotated_objects(root: Path, folder: str, key: str) -> list[BoxedObject]:
    """Every object of a YOLO-style root from ``boxes/`` or ``polygons/``, in path and row order."""
    images = require_folder(root / "images", key)
    notes = require_folder(root / folder, key)
    found = []
    for image in list_images(images):
        note = notes / image.relative_to(images).with_suffix(".txt")
        if not note.is_file():
            continue
        size = image_size(image)
        if folder == "boxes":
            found += [BoxedObject(image, size, box) for box in read_yolo_boxes(note, size)]
        else:
            found += [BoxedObject(image, size, polygon_box(p), p) for p in read_yolo_polygons(note, size)]
    return found


def usable(objects: list[BoxedObject], min_side: float, max_fraction: float = 1.0) -> list[BoxedObject]:
    """Objects big enough to track and small enough to leave the camera room."""
    return [item for item in objects
            if min(item.box[2], item.box[3]) >= min_side
            and item.box[2] <= max_fraction * item.size[0] and item.box[3] <= max_fraction * item.size[1]]


def aligned_pairs(root: Path, key: str) -> list[tuple[Path, Path]]:
    """``(visible, infrared)`` files of the same name under ``root``."""
    return image_folders.aligned_pairs(root, key, MISSING_FOLDER_HINT)


def read_rgb(path: Path) -> np.ndarray:
    return read_frame(path, thermal=False)


def read_grey8(path: Path) -> np.ndarray:
    """A thermal image as ``HxW`` uint8; 16-bit counts are stretched between their 1st and 99th percentile."""
    image = read_frame(path, thermal=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.dtype != np.uint8:
        low, high = np.percentile(image, (1, 99))
        image = np.clip((image.astype(np.float32) - low) * (255.0 / max(high - low, 1e-6)), 0, 255)
        image = image.astype(np.uint8)
    return image
