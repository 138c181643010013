"""Strict readers for the small text files of the benchmarks (boxes, name lists, flags).

Every reader names the file and the 1-based line of the first problem, so a bad
ground-truth or result file never turns into a silently wrong score or a bare traceback.
Values may be separated by commas, spaces or tabs (any mix); Windows line ends are accepted.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from m5l_core.datasets.sequence import DatasetError

_SEPARATORS = re.compile(r"[\s,]+")


def read_text(path: str | Path) -> str:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a text file (not UTF-8/ASCII)") from None


def _content_lines(path: Path, text: str) -> list[tuple[int, str]]:
    """Numbered non-empty lines; blank lines are allowed only at the end of the file.

    A blank line in the middle would shift every later row by one frame, so it is an error.
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    numbered = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DatasetError(f"{path}, line {number}: empty line inside the file")
        numbered.append((number, line.strip()))
    return numbered


def _parse_row(path: Path, number: int, line: str) -> list[float]:
    values = []
    for token in _SEPARATORS.split(line.strip(" ,\t")):
        try:
            values.append(float(token))
        except ValueError:
            raise DatasetError(f"{path}, line {number}: {token!r} is not a number") from None
    return values


def read_rows(
    path: str | Path,
    columns: tuple[int, ...] = (4,),
    allow_nonfinite: bool = False,
    what: str = "box",
) -> np.ndarray:
    """Read a table of numbers with one of ``columns`` values per row (same count in every row).

    Raises :class:`DatasetError` naming the file and line for an empty file, a non-number,
    a wrong column count, or (unless ``allow_nonfinite``) NaN/inf.
    """
    path = Path(path)
    numbered = _content_lines(path, read_text(path))
    if not numbered:
        raise DatasetError(f"{path}: file is empty (expected one {what} per line)")
    rows = []
    expected = None
    for number, line in numbered:
        row = _parse_row(path, number, line)
        if len(row) not in columns:
            wanted = " or ".join(str(c) for c in columns)
            raise DatasetError(f"{path}, line {number}: {len(row)} values, expected {wanted} ({what})")
        if expected is None:
            expected = len(row)
        elif len(row) != expected:
            raise DatasetError(
                f"{path}, line {number}: {len(row)} values, but earlier lines have {expected}"
            )
        if not allow_nonfinite and not all(math.isfinite(v) for v in row):
            raise DatasetError(f"{path}, line {number}: NaN or infinite value in {line!r}")
        rows.append(row)
    return np.asarray(rows, dtype=np.float64)


def read_name_list(path: str | Path) -> list[str]:
    """One sequence name per line; blank lines ignored; duplicates are an error."""
    path = Path(path)
    names = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path}: sequence list is empty")
    seen = set()
    for name in names:
        if name in seen:
            raise DatasetError(f"{path}: sequence {name!r} is listed twice")
        seen.add(name)
    return names


def read_flags(path: str | Path) -> np.ndarray:
    """A column of 0/1 flags (one per line) as a boolean array."""
    path = Path(path)
    flags = []
    for number, line in _content_lines(path, read_text(path)):
        if line not in ("0", "1"):
            raise DatasetError(f"{path}, line {number}: expected 0 or 1, got {line!r}")
        flags.append(line == "1")
    if not flags:
        raise DatasetError(f"{path}: file is empty (expected one 0/1 flag per line)")
    return np.asarray(flags, dtype=bool)


def read_flag_row(path: str | Path, count: int) -> np.ndarray:
    """One line of ``count`` 0/1 flags separated by commas or spaces (LasHeR ``AttriSeqsTxt``)."""
    path = Path(path)
    numbered = _content_lines(path, read_text(path))
    if len(numbered) != 1:
        raise DatasetError(f"{path}: expected exactly one line of {count} flags, found {len(numbered)}")
    number, line = numbered[0]
    row = _parse_row(path, number, line)
    if len(row) != count or any(v not in (0.0, 1.0) for v in row):
        raise DatasetError(f"{path}, line {number}: expected {count} values of 0 or 1, got {line!r}")
    return np.asarray(row, dtype=bool)
