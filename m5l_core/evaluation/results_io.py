"""Tracker result files: reading (prefix detection, 4 or 8 columns, any separator) and writing.

A results directory holds one text file per sequence, named ``<sequence>.txt`` or with a prefix
shared by the directory's files (``MANet_BlackCar.txt``, ``JMMAC_234_final_afterrain.txt``).
Rows hold 4 values (x, y, w, h) or 8 (corner polygon ``x1 y1 x2 y2 x3 y3 x4 y4``) separated by
commas, spaces or tabs. Corner rows become their bounding box, rounded as the toolkits'
``corner2rect`` does (MATLAB rounding, halves away from zero).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from m5l_core.atomic import atomic_write_text
from m5l_core.datasets.sequence import DatasetError
from m5l_core.datasets.textfiles import read_rows
from m5l_core.evaluation.metrics import ResultsError, matlab_round
from m5l_core.geometry import polygon_to_xywh


def read_result_file(path: str | os.PathLike, *, allow_nonfinite: bool = False) -> np.ndarray:
    """One result file as an ``(N, 4)`` x,y,w,h array.

    NaN/inf is an error naming the line unless ``allow_nonfinite`` (LasHeR, whose toolkit replaces
    such rows by the previous one).
    """
    try:
        rows = read_rows(path, columns=(4, 8), allow_nonfinite=allow_nonfinite, what="result box")
    except DatasetError as exc:
        raise ResultsError(str(exc)) from None
    if rows.shape[1] == 8:
        with np.errstate(invalid="ignore"):
            rows = matlab_round(polygon_to_xywh(rows))
    return rows


def _candidate_prefixes(files: list[str], names: Iterable[str]) -> set[str]:
    candidates = set()
    for name in names:
        suffix = f"{name}.txt"
        candidates.update(f[: -len(suffix)] for f in files if f.endswith(suffix))
    return candidates


def detect_prefix(directory: str | os.PathLike, sequence_names: Iterable[str]) -> str:
    """The file-name prefix shared by the directory's result files ("" for ``<sequence>.txt``).

    The prefix that names a file for the most requested sequences wins; ties go to the prefix
    shared by more files of the directory, then to the shorter one.
    """
    directory = Path(directory)
    names = list(sequence_names)
    files = sorted(p.name for p in directory.iterdir() if p.suffix == ".txt" and p.is_file())
    available = set(files)
    best, best_key = "", None
    for prefix in _candidate_prefixes(files, names):
        matched = sum(f"{prefix}{n}.txt" in available for n in names)
        sharing = sum(f.startswith(prefix) for f in files)
        key = (matched, sharing, -len(prefix))
        if best_key is None or key > best_key:
            best, best_key = prefix, key
    return best


def result_paths(directory: str | os.PathLike, sequence_names: Iterable[str],
                 prefix: str | None = None) -> dict[str, Path]:
    """Result file of every sequence; a missing one is an error listing what is missing."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ResultsError(f"results directory {directory} not found")
    names = list(sequence_names)
    if prefix is None:
        prefix = detect_prefix(directory, names)
    paths = {name: directory / f"{prefix}{name}.txt" for name in names}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        shown = ", ".join(f"{prefix}{n}.txt" for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        hint = ""
        if len(missing) == len(names):
            found = sorted(p.name for p in directory.glob("*.txt"))
            hint = (f"; the directory has {len(found)} .txt files" + (f", e.g. {found[0]}" if found else "")
                    + ": wrong benchmark or split?")
        raise ResultsError(f"{directory}: no result file for {len(missing)} of {len(names)} sequences "
                           f"(missing: {shown}){hint}")
    return paths


def read_results_dir(path: str | os.PathLike, sequence_names: Iterable[str], *, prefix: str | None = None,
                     allow_nonfinite: bool = False) -> dict[str, np.ndarray]:
    """Sequence name -> ``(N, 4)`` x,y,w,h array for every name (prefix auto-detected)."""
    paths = result_paths(path, sequence_names, prefix)
    return {name: read_result_file(p, allow_nonfinite=allow_nonfinite) for name, p in paths.items()}


def _format_value(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def write_result_file(path: str | os.PathLike, boxes) -> Path:
    """Write ``(N, 4)`` x,y,w,h boxes as comma-separated rows (what the toolkits read), atomically."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
        raise ResultsError(f"{path}: boxes must be a non-empty (N, 4) array, got shape {boxes.shape}")
    if not np.isfinite(boxes).all():
        frame = int(np.flatnonzero(~np.isfinite(boxes).all(axis=1))[0]) + 1
        raise ResultsError(f"{path}: frame {frame} has a NaN or infinite value; refusing to write it")
    text = "".join(",".join(_format_value(v) for v in row) + "\n" for row in boxes)
    return atomic_write_text(path, text)
