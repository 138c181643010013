"""RGB-T benchmark evaluation with the official toolkits' protocols (GTOT, RGBT234, RGBT210, LasHeR).

Public API::

    evaluate_tracker(benchmark, sequences, results, round_results=False) -> TrackerScore
    sequence_scores(benchmark, sequence, boxes) -> SequenceScore
    read_results_dir(path, sequence_names) / read_result_file(path) / write_result_file(path, boxes)
    markdown_table(scores) / plot_curves(scores, out_dir)

The protocol details are documented in :mod:`m5l_core.evaluation.protocols`; the CLI is ``m5l-eval``.
"""

from m5l_core.evaluation.metrics import Curve, ResultsError, SequenceScore, matlab_round, sequence_scores
from m5l_core.evaluation.plots import plot_curves
from m5l_core.evaluation.protocols import PROTOCOLS, Protocol, get_protocol
from m5l_core.evaluation.report import json_document, markdown_table
from m5l_core.evaluation.results_io import (
    detect_prefix,
    read_result_file,
    read_results_dir,
    result_paths,
    write_result_file,
)
from m5l_core.evaluation.scoring import TrackerScore, evaluate_tracker

__all__ = [
    "PROTOCOLS",
    "Curve",
    "Protocol",
    "ResultsError",
    "SequenceScore",
    "TrackerScore",
    "detect_prefix",
    "evaluate_tracker",
    "get_protocol",
    "json_document",
    "markdown_table",
    "matlab_round",
    "plot_curves",
    "read_result_file",
    "read_results_dir",
    "result_paths",
    "sequence_scores",
    "write_result_file",
]
