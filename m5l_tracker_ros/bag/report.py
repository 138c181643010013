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
from m5l_tracker_ros.bag.outputs import STATE_PREDICTED, Output, frame_boxes, tracked_only
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
    outputs: int                 # tracked outputs matched to a frame (predicted boxes not included)
    dropped: int                 # pairs the tracker gave no output for
    outputs_per_s: float | None  # tracked outputs / (last output - first image sent), replay only
    latency: Latency | None      # image stamp -> output reception, tracked outputs
    node_latency: Latency | None  # as the node reports it (pair complete -> publish)
    mode: str = "bag"
    first_output_ms: float | None = None  # realtime: first frame (with the initial box) -> first tracked box
    node_stages_ms: dict[str, float] | None = None  # replay: the tracker's mean ms per stage in the node
    node_counters: dict[str, int] | None = None     # replay: the tracker's totals at the end (learning steps)
    predicted: int = 0           # dropped pairs that got the node's optical-flow box (PR/SR count them)
    pr_tracked: float | None = None   # PR / SR from the tracked outputs alone (each dropped pair keeps
    sr_tracked: float | None = None   # the last tracked box); set when some boxes were predicted
    predicted_latency: Latency | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        title = benchmark_spec(self.benchmark).title
        out = [f"{self.sequence} [{self.mode}, {title} protocol]: PR {self.pr:.3f}  SR {self.sr:.3f}",
               f"frames {self.frames}  pairs {self.pairs}  outputs {self.outputs}  dropped {self.dropped}"]
        if self.predicted:
            out.append(f"predicted boxes for dropped pairs {self.predicted}; tracked outputs alone: "
                       f"PR {self.pr_tracked:.3f}  SR {self.sr_tracked:.3f}")
        if self.outputs_per_s is not None:
            out.append(f"outputs/s {self.outputs_per_s:.2f}")
        if self.first_output_ms is not None:
            out.append(f"first tracked box {self.first_output_ms:.0f} ms after the first frame")
        for label, latency in (("latency (image stamp -> output)", self.latency),
                               ("node latency (pair -> publish)", self.node_latency),
                               ("predicted boxes' latency (image stamp -> output)", self.predicted_latency)):
            if latency is not None:
                out.append(f"{label}: p50 {latency.p50_ms:.1f} ms  p95 {latency.p95_ms:.1f} ms  "
                           f"max {latency.max_ms:.1f} ms")
        if self.node_stages_ms:
            stages = "  ".join(f"{stage} {ms:.1f}" for stage, ms in self.node_stages_ms.items())
            out.append(f"tracker stages in the node (mean ms, /diagnostics): {stages}")
        if self.node_counters:
            counters = "  ".join(f"{name} {count}" for name, count in self.node_counters.items())
            out.append(f"tracker counters in the node at the end (/diagnostics): {counters}")
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


@dataclass(frozen=True)
class OutputScores:
    """A run's outputs placed on its frames and scored, with and without the predicted boxes."""

    boxes: np.ndarray               # (N, 4) one box per frame, predicted boxes included
    matched: list[Output]           # the outputs matched to a frame
    pr: float
    sr: float
    pr_tracked: float | None        # each dropped pair keeping the last tracked box instead;
    sr_tracked: float | None        # None when no box was predicted (then equal to pr / sr)

    @property
    def tracked(self) -> list[Output]:
        return tracked_only(self.matched)

    @property
    def predicted(self) -> list[Output]:
        """The node's optical-flow boxes for dropped pairs."""
        return [o for o in self.matched if o.state == STATE_PREDICTED]


def score_outputs(benchmark: str, name: str, gt: GroundTruth, init_box: np.ndarray, stamps: list[int],
                  outputs: list[Output]) -> OutputScores:
    placed = frame_boxes(stamps, outputs, init_box)
    matched = [outputs[i] for i in placed.output_of if i >= 0]
    pr, sr = score_boxes(benchmark, name, gt, init_box, placed.boxes)
    pr_tracked = sr_tracked = None
    if any(o.state == STATE_PREDICTED for o in matched):
        held = frame_boxes(stamps, tracked_only(outputs), init_box)
        pr_tracked, sr_tracked = score_boxes(benchmark, name, gt, init_box, held.boxes)
    return OutputScores(placed.boxes, matched, pr, sr, pr_tracked, sr_tracked)


def run_report(scores: OutputScores, pairs: int, **fields) -> RunReport:
    """The report of scored outputs; ``fields``: what only the caller knows (sequence, mode, timing)."""
    tracked, predicted = scores.tracked, scores.predicted
    return RunReport(pr=scores.pr, sr=scores.sr, pairs=pairs, outputs=len(tracked),
                     dropped=max(0, pairs - len(tracked)),
                     latency=latency_stats(o.latency_s for o in tracked),
                     node_latency=latency_stats(o.node_latency for o in tracked), predicted=len(predicted),
                     pr_tracked=scores.pr_tracked, sr_tracked=scores.sr_tracked,
                     predicted_latency=latency_stats(o.latency_s for o in predicted), **fields)


def write_report(path: str | Path, report: RunReport) -> Path:
    return atomic_write_text(path, json.dumps(report.to_json(), indent=2) + "\n")
