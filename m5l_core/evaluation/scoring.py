"""Benchmark-level scores of one tracker: overall, per sequence, per attribute, curves."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m5l_core.datasets.loaders import BENCHMARKS, flags_any
from m5l_core.datasets.sequence import Sequence
from m5l_core.evaluation.metrics import Curve, ResultsError, SequenceScore, sequence_scores
from m5l_core.evaluation.protocols import NPR_THRESHOLD, NPR_THRESHOLDS, Protocol, get_protocol, success_value

# MATLAB's eps: the LaSOT/LasHeR toolkit keeps only curves with sum(curve) > eps.
_MATLAB_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Aggregate:
    pr: float
    sr: float
    npr: float | None
    precision_curve: Curve
    success_curve: Curve
    npr_curve: Curve | None
    sequences: int
    frames: int


@dataclass(frozen=True)
class TrackerScore:
    """Scores as fractions in 0..1; ``npr`` is None except for LasHeR."""

    benchmark: str
    tracker: str
    pr: float
    sr: float
    npr: float | None
    per_sequence: dict[str, tuple[float, float]]
    per_attribute: dict[str, dict[str, float | int | None]]
    precision_curve: Curve
    success_curve: Curve
    npr_curve: Curve | None = None
    per_sequence_npr: dict[str, float] | None = None
    frames: int = 0
    round_results: bool = False
    split: str | None = None
    sequence_details: dict[str, SequenceScore] = field(default_factory=dict, repr=False)

    @property
    def num_sequences(self) -> int:
        return len(self.per_sequence)

    def to_json(self) -> dict:
        per_sequence = {}
        for name, (pr, sr) in self.per_sequence.items():
            per_sequence[name] = {"pr": pr, "sr": sr}
            if self.per_sequence_npr is not None:
                per_sequence[name]["npr"] = self.per_sequence_npr[name]
        curves = {"precision": self.precision_curve.to_json(), "success": self.success_curve.to_json()}
        if self.npr_curve is not None:
            curves["normalized_precision"] = self.npr_curve.to_json()
        protocol = get_protocol(self.benchmark)
        return {
            "benchmark": self.benchmark,
            "tracker": self.tracker,
            "split": self.split,
            "pr": self.pr,
            "sr": self.sr,
            "npr": self.npr,
            "pr_label": protocol.pr_label,
            "sr_label": protocol.sr_label,
            "round_results": self.round_results,
            "sequences": self.num_sequences,
            "frames": self.frames,
            "per_sequence": per_sequence,
            "per_attribute": self.per_attribute,
            "curves": curves,
        }


def _mean_curve(protocol: Protocol, rows: list[np.ndarray]) -> np.ndarray:
    stacked = np.asarray(rows, dtype=np.float64)
    if protocol.lasher_rules:
        stacked = stacked[stacked.sum(axis=1) > _MATLAB_EPS]
    if len(stacked) == 0:
        return np.zeros(np.asarray(rows).shape[1])
    return stacked.mean(axis=0)


def aggregate(protocol: Protocol, scores: SequenceOf[SequenceScore]) -> Aggregate:
    """Combine sequence scores: frames pooled (GTOT) or the mean of per-sequence curves."""
    frames = sum(s.frames for s in scores)
    if protocol.pool_frames:
        precision = np.sum([s.precision_hits for s in scores], axis=0) / frames
        success = np.sum([s.success_hits for s in scores], axis=0) / frames
    else:
        precision = _mean_curve(protocol, [s.precision_curve.values for s in scores])
        success = _mean_curve(protocol, [s.success_curve.values for s in scores])
    npr_curve = None
    if protocol.has_npr:
        npr_curve = Curve(NPR_THRESHOLDS, _mean_curve(protocol, [s.npr_curve.values for s in scores]))
    precision_curve = Curve(protocol.precision_thresholds, precision)
    return Aggregate(
        pr=precision_curve.value_at(protocol.precision_threshold),
        sr=success_value(protocol, success),
        npr=npr_curve.value_at(NPR_THRESHOLD) if npr_curve is not None else None,
        precision_curve=precision_curve,
        success_curve=Curve(protocol.success_thresholds, success),
        npr_curve=npr_curve,
        sequences=len(scores),
        frames=frames,
    )


def attribute_names(benchmark: str, sequences: SequenceOf[Sequence]) -> list[str]:
    """Attributes present in the sequences, in the benchmark's paper order, then any others."""
    present = {name for s in sequences for name in s.attributes}
    known = [a for a in BENCHMARKS[get_protocol(benchmark).benchmark].attributes if a in present]
    return known + sorted(present - set(known))


def per_attribute_scores(protocol: Protocol, sequences: SequenceOf[Sequence],
                         scores: Mapping[str, SequenceScore]) -> dict[str, dict]:
    """Scores over the sequences flagged with each attribute (any flagged frame flags the sequence)."""
    table = {}
    for attribute in attribute_names(protocol.benchmark, sequences):
        subset = [scores[s.name] for s in sequences if attribute in s.attributes
                  and flags_any(s.attributes[attribute])]
        if subset:
            result = aggregate(protocol, subset)
            table[attribute] = {"pr": result.pr, "sr": result.sr, "npr": result.npr, "sequences": len(subset)}
    return table


def evaluate_tracker(
    benchmark: str,
    sequences: SequenceOf[Sequence],
    results: Mapping[str, np.ndarray],
    round_results: bool = False,
    *,
    tracker: str = "",
    split: str | None = None,
    sources: Mapping[str, str | Path] | None = None,
    progress: bool = False,
) -> TrackerScore:
    """Score one tracker's results (sequence name -> (N, 4) x,y,w,h array) on ``sequences``.

    ``sources`` (sequence name -> result file) only makes error messages name the file.
    """
    protocol = get_protocol(benchmark)
    if not sequences:
        raise ResultsError(f"{protocol.title}: no sequences to evaluate")
    missing = [s.name for s in sequences if s.name not in results]
    if missing:
        raise ResultsError(f"tracker {tracker or '?'}: no results for {len(missing)} sequence(s): "
                           f"{', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
    sources = sources or {}
    bar = tqdm(sequences, desc=f"scoring {tracker or protocol.title}", unit="seq", leave=False,
               disable=not progress or None)
    scores = {s.name: sequence_scores(protocol.benchmark, s, results[s.name], round_results,
                                      sources.get(s.name)) for s in bar}
    overall = aggregate(protocol, list(scores.values()))
    return TrackerScore(
        benchmark=protocol.benchmark,
        tracker=tracker,
        pr=overall.pr,
        sr=overall.sr,
        npr=overall.npr,
        per_sequence={name: (s.pr, s.sr) for name, s in scores.items()},
        per_sequence_npr={name: s.npr for name, s in scores.items()} if protocol.has_npr else None,
        per_attribute=per_attribute_scores(protocol, sequences, scores),
        precision_curve=overall.precision_curve,
        success_curve=overall.success_curve,
        npr_curve=overall.npr_curve,
        frames=overall.frames,
        round_results=round_results,
        split=split,
        sequence_details=scores,
    )
