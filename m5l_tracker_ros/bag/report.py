"""Scores and timing of one bag run: PR/SR from the evaluator, latency, drops, output rate."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from m5l_core.atomic import atomic_write_text
from m5l_core.datasets import DatasetError, Sequence, benchmark_spec
from m5l_core.evaluation.metrics import sequence_scores
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.source import GroundTruth

DEFAULT_BENCHMARK = "rgbt234"


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float


@dataclass(frozen=True)
class RunReport:
    sequence: str
    benchmark: str
    pr: float
    sr: float
    frames: int                  # RGB frames (= ground-truth rows scored)
    pairs: int                   # pairs given to the node (lockstep, realtime) or formable (eval-bag)
    outputs: int                 # outputs matched to a frame
    dropped: int                 # pairs without an output
    outputs_per_s: float | None  # outputs / (last output - first image sent), replay only
    latency: Latency | None      # image stamp -> output reception
    node_latency: Latency | None  # as the node reports it (pair complete -> publish)
    mode: str = "bag"
    first_output_ms: float | None = None  # realtime: first frame (with the initial box) -> first tracked box
    node_stages_ms: dict[str, float] | None = None  # replay: the tracker's mean ms per stage in the node

    def to_json(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        title = benchmark_spec(self.benchmark).title
        out = [f"{self.sequence} [{self.mode}, {title} protocol]: PR {self.pr:.3f}  SR {self.sr:.3f}",
               f"frames {self.frames}  pairs {self.pairs}  outputs {self.outputs}  dropped {self.dropped}"]
        if self.outputs_per_s is not None:
            out.append(f"outputs/s {self.outputs_per_s:.2f}")
        if self.first_output_ms is not None:
            out.append(f"first tracked box {self.first_output_ms:.0f} ms after the first frame")
        for label, latency in (("latency (image stamp -> output)", self.latency),
                               ("node latency (pair -> publish)", self.node_latency)):
            if latency is not None:
                out.append(f"{label}: p50 {latency.p50_ms:.1f} ms  p95 {latency.p95_ms:.1f} ms  "
                           f"max {latency.max_ms:.1f} ms")
        if self.node_stages_ms:
            stages = "  ".join(f"{stage} {ms:.1f}" for stage, ms in self.node_stages_ms.items())
            out.append(f"tracker stages in the node (mean ms, /diagnostics): {stages}")
        return out


def latency_stats(seconds) -> Latency | None:
    values = np.asarray(list(seconds), dtype=np.float64) * 1000.0
    if values.size == 0:
        return None
    return Latency(float(np.percentile(values, 50)), float(np.percentile(values, 95)),
                   float(values.max()), float(values.mean()))


def choose_benchmark(requested: str | None, recorded: str | None) -> str:
    """``--benchmark``, else the bag's ``m5l.benchmark`` when it names a protocol, else RGBT234's."""
    for candidate in (requested, recorded):
        if candidate:
            try:
                return benchmark_spec(candidate).key
            except DatasetError:
                if candidate is requested:
                    raise BagError(f"unknown benchmark {requested!r}") from None
    return DEFAULT_BENCHMARK


def score_boxes(benchmark: str, name: str, gt: GroundTruth, init_box: np.ndarray,
                boxes: np.ndarray) -> tuple[float, float]:
    """(PR, SR) of one box per frame under ``benchmark``'s protocol."""
    sequence = Sequence(name=name, benchmark=benchmark, rgb_frames=(), thermal_frames=(), gt_rgb=gt.rgb,
                        gt_thermal=gt.thermal, init_box=np.asarray(init_box, dtype=np.float64))
    score = sequence_scores(benchmark, sequence, boxes, source=str(gt.files[0]))
    return score.pr, score.sr


def write_report(path: str | Path, report: RunReport) -> Path:
    return atomic_write_text(path, json.dumps(report.to_json(), indent=2) + "\n")
