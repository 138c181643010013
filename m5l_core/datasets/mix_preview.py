"""A contact sheet of a generated mix: first, middle and last frame, RGB beside thermal, GT drawn.

One row per sequence, up to ``per_source`` sequences of each source, so a glance shows whether
the boxes sit on their targets and what each source looks like.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from m5l_core.datasets.loaders import load_benchmark
from m5l_core.datasets.sequence import DatasetError, Sequence

_TILE = (160, 120)


def _tiles(sequence: Sequence) -> np.ndarray:
    tiles = []
    for index in (0, len(sequence) // 2, len(sequence) - 1):
        x, y, w, h = (int(v) for v in sequence.gt_rgb[index])
        for path in (sequence.rgb_frames[index], sequence.thermal_frames[index]):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), 1)
            tiles.append(cv2.resize(image, _TILE, interpolation=cv2.INTER_AREA))
    row = np.hstack(tiles)
    cv2.putText(row, sequence.name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1, cv2.LINE_AA)
    return row


def write_contact_sheet(root: Path, out: Path, per_source: int = 3) -> Path:
    sequences = load_benchmark("rgbt234", root=root, require_images=True)
    picked: dict[str, list[Sequence]] = {}
    for sequence in sequences:
        group = picked.setdefault(sequence.name.rsplit("_", 1)[0], [])
        if len(group) < per_source:
            group.append(sequence)
    rows = [_tiles(sequence) for group in picked.values() for sequence in group]
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.vstack(rows)):
        raise DatasetError(f"{out}: cannot write the contact sheet")
    return out
