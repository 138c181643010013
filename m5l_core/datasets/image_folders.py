"""Folders of loose images for the real-image tools (training mix, distillation): existence checks
that name the config key, sorted listings, and RGB/thermal pairs matched by file name."""

from __future__ import annotations

from pathlib import Path

from m5l_core.datasets.layouts import IMAGE_SUFFIXES
from m5l_core.datasets.sequence import DatasetError


def require_folder(path: str | Path, key: str, hint: str) -> Path:
    """``path`` as a Path, or a DatasetError naming the config ``key`` and how to fix it (``hint``)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"{key}: folder {folder} not found (resolved to {folder.resolve()}); {hint}")
    return folder


def list_images(folder: Path) -> list[Path]:
    """Image files below ``folder`` (recursively), sorted: a seeded run must not follow the disk's order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def aligned_pairs(root: Path, key: str, hint: str) -> list[tuple[Path, Path]]:
    """``(visible, infrared)`` files of the same name under ``root/visible`` and ``root/infrared``."""
    visible = require_folder(root / "visible", key, hint)
    infrared = require_folder(root / "infrared", key, hint)
    return [(image, infrared / image.name) for image in list_images(visible)
            if (infrared / image.name).is_file()]
