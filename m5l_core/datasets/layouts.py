"""Reading one sequence directory in any of the benchmark layouts (``load_sequence``).

Layouts (names accepted by ``load_sequence(path, layout=...)``):

``gtot``
    ``v/*.png`` and ``i/*.png`` (one sequence uses ``.bmp``), ``groundTruth_v.txt`` and
    ``groundTruth_i.txt`` with ``x1 y1 x2 y2`` per frame (spaces), converted to ``x, y, w, h`` with
    ``w = x2 - x1`` as the GTOT toolkit does (no ``+1``); optional ``init.txt`` (``x y w h``, tabs).
``rgbt234``
    ``visible/*.jpg`` and ``infrared/*.jpg``, ``visible.txt`` and ``infrared.txt`` (``x,y,w,h``),
    ``init.txt`` (``x,y,w,h``; in RGBT234 the same boxes as ``visible.txt``).
``rgbt210`` / ``lasher``
    ``visible/`` and ``infrared/`` images, one ground truth ``init.txt`` (``x,y,w,h``) used for both
    modalities. In LasHeR a row with a non-positive value marks a frame where the target is absent.

Per-frame attribute flags may sit in the sequence directory as ``<NAME>.tag`` files with one
0/1 per frame (the VOT ``occlusion.tag`` convention); they become ``Sequence.attributes[NAME]``.

Frames are sorted by the number in their file name; a gap in the numbering, a different frame
count between the modalities, or a ground truth whose length differs from the frame count is an
error naming the sequence and the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from m5l_core.datasets.sequence import DatasetError, Sequence
from m5l_core.datasets.textfiles import read_flags, read_rows

LAYOUTS = ("gtot", "rgbt234", "rgbt210", "lasher")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_IMAGE_DIRS = {"gtot": ("v", "i"), "rgbt234": ("visible", "infrared"),
               "rgbt210": ("visible", "infrared"), "lasher": ("visible", "infrared")}
_NUMBER = re.compile(r"(\d+)")


def corners_to_xywh(corners: np.ndarray) -> np.ndarray:
    """GTOT ``x1 y1 x2 y2`` rows to ``x, y, w, h`` with ``w = x2 - x1`` (the toolkit's convention)."""
    return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)


def detect_layout(path: Path) -> str:
    if (path / "v").is_dir() or (path / "groundTruth_v.txt").is_file():
        return "gtot"
    if (path / "visible.txt").is_file() and (path / "infrared.txt").is_file():
        return "rgbt234"
    if (path / "init.txt").is_file():
        return "rgbt210"
    raise DatasetError(
        f"{path}: not a sequence directory in a known layout (expected v/, i/, groundTruth_v.txt, "
        "groundTruth_i.txt for GTOT, or visible/, infrared/ with visible.txt + infrared.txt "
        "(RGBT234) or init.txt (RGBT210, LasHeR))"
    )


def _frame_key(path: Path) -> tuple:
    parts = _NUMBER.split(path.stem)
    return tuple(int(p) if p.isdigit() else p for p in parts), path.suffix


def list_frames(directory: Path, sequence: str) -> tuple[Path, ...]:
    """Image files of one modality in frame order; a gap in the numbering is an error."""
    frames = sorted((p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                    key=_frame_key)
    if not frames:
        raise DatasetError(f"sequence {sequence!r}: no images ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    numbers = [_NUMBER.findall(p.stem) for p in frames]
    if all(numbers):
        indices = [int(found[-1]) for found in numbers]
        for previous, current, frame in zip(indices[:-1], indices[1:], frames[1:], strict=True):
            if current == previous:
                raise DatasetError(f"sequence {sequence!r}: two images numbered {current} in {directory}")
            if current != previous + 1:
                raise DatasetError(
                    f"sequence {sequence!r}: frame {previous + 1} is missing in {directory} "
                    f"(numbering jumps from {previous} to {current} at {frame.name})"
                )
    return tuple(frames)


def _read_frames(path: Path, layout: str, require_images: bool) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    rgb_dir, thermal_dir = (path / name for name in _IMAGE_DIRS[layout])
    if not rgb_dir.is_dir() and not thermal_dir.is_dir() and not require_images:
        return (), ()
    for directory in (rgb_dir, thermal_dir):
        if not directory.is_dir():
            raise DatasetError(f"sequence {path.name!r}: image directory {directory} is missing")
    rgb, thermal = list_frames(rgb_dir, path.name), list_frames(thermal_dir, path.name)
    if len(rgb) != len(thermal):
        raise DatasetError(
            f"sequence {path.name!r}: {len(rgb)} frames in {rgb_dir} but {len(thermal)} in {thermal_dir}"
        )
    return rgb, thermal


def _read_ground_truth(path: Path, layout: str) -> tuple[np.ndarray, np.ndarray, Path]:
    """Both modalities' ground truth as x,y,w,h, and the file whose length defines the sequence."""
    if layout == "gtot":
        rgb_file, thermal_file = path / "groundTruth_v.txt", path / "groundTruth_i.txt"
        gt_rgb = corners_to_xywh(read_rows(rgb_file, what="x1 y1 x2 y2 box"))
        gt_thermal = corners_to_xywh(read_rows(thermal_file, what="x1 y1 x2 y2 box"))
    elif layout == "rgbt234":
        rgb_file, thermal_file = path / "visible.txt", path / "infrared.txt"
        gt_rgb, gt_thermal = read_rows(rgb_file), read_rows(thermal_file)
    else:
        rgb_file = thermal_file = path / "init.txt"
        gt_rgb = read_rows(rgb_file)
        gt_thermal = gt_rgb
    if len(gt_rgb) != len(gt_thermal):
        raise DatasetError(
            f"sequence {path.name!r}: {rgb_file.name} has {len(gt_rgb)} rows but {thermal_file.name} "
            f"has {len(gt_thermal)}"
        )
    return gt_rgb, gt_thermal, rgb_file


def read_tag_attributes(path: Path, frames: int) -> dict[str, np.ndarray]:
    """Per-frame ``<NAME>.tag`` flag files of one sequence directory."""
    attributes = {}
    for tag_file in sorted(path.glob("*.tag")):
        flags = read_flags(tag_file)
        if len(flags) != frames:
            raise DatasetError(f"{tag_file}: {len(flags)} flags but the sequence has {frames} frames")
        attributes[tag_file.stem] = flags
    return attributes


def load_sequence(
    path: str | Path,
    layout: str | None = None,
    *,
    benchmark: str | None = None,
    require_images: bool = True,
) -> Sequence:
    """Read one sequence directory; ``layout`` is detected when not given.

    With ``require_images=False`` a directory holding only the ground-truth files is accepted
    (``Sequence.rgb_frames`` is then empty); images that are present are always checked.
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: sequence directory not found")
    if layout is None:
        layout = detect_layout(path)
    elif layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    gt_rgb, gt_thermal, gt_file = _read_ground_truth(path, layout)
    rgb, thermal = _read_frames(path, layout, require_images)
    if rgb and len(rgb) != len(gt_rgb):
        raise DatasetError(
            f"sequence {path.name!r}: ground truth {gt_file} has {len(gt_rgb)} rows but the sequence "
            f"has {len(rgb)} frames"
        )
    init_file = path / "init.txt"
    init_box = read_rows(init_file)[0] if init_file.is_file() else gt_rgb[0]
    return Sequence(
        name=path.name,
        benchmark=benchmark or layout,
        rgb_frames=rgb,
        thermal_frames=thermal,
        gt_rgb=gt_rgb,
        gt_thermal=gt_thermal,
        init_box=np.asarray(init_box, dtype=np.float64),
        attributes=read_tag_attributes(path, len(gt_rgb)),
        root=path,
    )
