"""Helpers (no tests) that write tiny fake datasets in the official layouts into tmp_path.

Images are empty files: the loaders list and count frames, they never decode them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def boxes_track(frames: int, start=(10.0, 20.0, 30.0, 40.0), step=(2.0, 1.0)) -> np.ndarray:
    """A target moving ``step`` px per frame: rows of x, y, w, h."""
    boxes = np.tile(np.asarray(start, dtype=np.float64), (frames, 1))
    boxes[:, 0] += np.arange(frames) * step[0]
    boxes[:, 1] += np.arange(frames) * step[1]
    return boxes


def _touch_frames(directory: Path, frames: int, pattern: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(1, frames + 1):
        (directory / pattern.format(index)).write_bytes(b"")


def _write(path: Path, boxes: np.ndarray, sep: str) -> None:
    path.write_text("".join(sep.join(f"{v:g}" for v in row) + "\n" for row in boxes))


def write_gtot_sequence(root: Path, name: str, frames: int = 6, gt_rgb=None, gt_thermal=None) -> Path:
    """GTOT layout: v/*.png, i/*.png, groundTruth_{v,i}.txt (x1 y1 x2 y2), init.txt (tabs)."""
    path = root / name
    gt_rgb = boxes_track(frames) if gt_rgb is None else np.asarray(gt_rgb, dtype=np.float64)
    gt_thermal = gt_rgb + [1, 0, 0, 0] if gt_thermal is None else np.asarray(gt_thermal, dtype=np.float64)
    _touch_frames(path / "v", len(gt_rgb), "{:05d}v.png")
    _touch_frames(path / "i", len(gt_rgb), "{:05d}i.png")
    for file_name, boxes in (("groundTruth_v.txt", gt_rgb), ("groundTruth_i.txt", gt_thermal)):
        corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        _write(path / file_name, corners, " ")
    _write(path / "init.txt", gt_rgb, "\t")
    return path


def write_rgbt234_sequence(root: Path, name: str, frames: int = 6, gt_rgb=None, gt_thermal=None) -> Path:
    """RGBT234 layout: visible/*.jpg, infrared/*.jpg, visible.txt, infrared.txt, init.txt (commas)."""
    path = root / name
    gt_rgb = boxes_track(frames) if gt_rgb is None else np.asarray(gt_rgb, dtype=np.float64)
    gt_thermal = gt_rgb + [0, 1, 0, 0] if gt_thermal is None else np.asarray(gt_thermal, dtype=np.float64)
    _touch_frames(path / "visible", len(gt_rgb), "{:05d}v.jpg")
    _touch_frames(path / "infrared", len(gt_rgb), "{:05d}i.jpg")
    _write(path / "visible.txt", gt_rgb, ",")
    _write(path / "infrared.txt", gt_thermal, ",")
    _write(path / "init.txt", gt_rgb, ",")
    return path


def write_single_gt_sequence(root: Path, name: str, frames: int = 6, gt=None) -> Path:
    """RGBT210 / LasHeR layout: visible/, infrared/, one init.txt."""
    path = root / name
    gt = boxes_track(frames) if gt is None else np.asarray(gt, dtype=np.float64)
    _touch_frames(path / "visible", len(gt), "v{:06d}.jpg")
    _touch_frames(path / "infrared", len(gt), "i{:06d}.jpg")
    _write(path / "init.txt", gt, ",")
    return path


def write_results(directory: Path, results: dict[str, np.ndarray], prefix: str = "", sep: str = ",") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, boxes in results.items():
        _write(directory / f"{prefix}{name}.txt", np.asarray(boxes), sep)
    return directory
