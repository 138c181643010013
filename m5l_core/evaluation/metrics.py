"""Per-sequence protocol math: frame errors, hit counts and the sequence's own PR/SR.

The rules (thresholds, first frame, invalid frames, truncation) are those tabulated in
:mod:`m5l_core.evaluation.protocols`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m5l_core.datasets.sequence import Sequence
from m5l_core.evaluation.protocols import (
    NPR_THRESHOLD,
    NPR_THRESHOLDS,
    Protocol,
    get_protocol,
    success_value,
    threshold_index,
)
from m5l_core.geometry import centers, overlap_ratio_pixels


class ResultsError(ValueError):
    """A tracker result file or array is unusable; the message names the file/sequence and line/frame."""


@dataclass(frozen=True)
class Curve:
    thresholds: np.ndarray
    values: np.ndarray

    def value_at(self, threshold: float) -> float:
        return float(self.values[threshold_index(self.thresholds, threshold)])

    def to_json(self) -> dict:
        return {"thresholds": [round(float(t), 6) for t in self.thresholds],
                "values": [float(v) for v in self.values]}


@dataclass(frozen=True)
class SequenceScore:
    """One sequence's scores plus the hit counts that pooled (GTOT) averaging sums up."""

    name: str
    frames: int
    pr: float
    sr: float
    npr: float | None
    precision_curve: Curve
    success_curve: Curve
    npr_curve: Curve | None
    precision_hits: np.ndarray
    success_hits: np.ndarray


def matlab_round(values: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: halves away from zero (numpy rounds halves to even)."""
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def _where(sequence: Sequence, source: str | Path | None) -> str:
    return f"{source} (sequence {sequence.name!r})" if source else f"sequence {sequence.name!r}"


def _align_lengths(protocol: Protocol, sequence: Sequence, boxes: np.ndarray,
                   source) -> tuple[np.ndarray, int]:
    """Cut results and ground truth to a common length as the toolkits do; else raise."""
    frames = len(sequence.gt_rgb)
    rows = len(boxes)
    if rows == frames or (rows == frames - 1 and rows > 0):
        return boxes, rows
    if rows > frames and protocol.lasher_rules:
        return boxes[:frames], frames
    raise ResultsError(
        f"{_where(sequence, source)}: {rows} result rows but the ground truth has {frames} frames "
        "(a result may be at most one row shorter)"
    )


def _copy_invalid_rows(boxes: np.ndarray) -> np.ndarray:
    """LasHeR: a row with NaN/inf or w<=0 or h<=0 takes the previous (already repaired) row."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    valid[0] = True  # frame 1 is never repaired here; it is replaced by the ground truth later
    source_rows = np.maximum.accumulate(np.where(valid, np.arange(len(boxes)), 0))
    return boxes[source_rows]


def prepare_boxes(protocol: Protocol, sequence: Sequence, boxes, round_results: bool = False,
                  source: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the protocol's input rules; returns (boxes, gt_rgb, gt_thermal) of equal length."""
    boxes = np.array(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ResultsError(f"{_where(sequence, source)}: results must be an (N, 4) x,y,w,h array, "
                           f"got shape {boxes.shape}")
    boxes, frames = _align_lengths(protocol, sequence, boxes, source)
    if not protocol.lasher_rules:
        bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
        if bad.size:
            raise ResultsError(f"{_where(sequence, source)}, frame {bad[0] + 1}: NaN or infinite value "
                               f"{boxes[bad[0]].tolist()}")
    if round_results:
        boxes = matlab_round(boxes)
    if protocol.lasher_rules:
        boxes = _copy_invalid_rows(boxes)
    gt_rgb = np.asarray(sequence.gt_rgb, dtype=np.float64)[:frames]
    gt_thermal = np.asarray(sequence.gt_thermal, dtype=np.float64)[:frames]
    if protocol.first_frame_gt:
        boxes[0] = gt_rgb[0]
    return boxes, gt_rgb, gt_thermal


def frame_errors(protocol: Protocol, boxes: np.ndarray, gt_rgb: np.ndarray, gt_thermal: np.ndarray):
    """Per-frame centre error (min over GTs), IoU (max over GTs) and, for LasHeR, normalised error."""
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = centers(boxes)
        error = np.minimum(np.linalg.norm(centre - centers(gt_rgb), axis=1),
                           np.linalg.norm(centre - centers(gt_thermal), axis=1))
        iou = np.maximum(overlap_ratio_pixels(boxes, gt_rgb), overlap_ratio_pixels(boxes, gt_thermal))
        normalized = None
        if protocol.lasher_rules:
            normalized = np.linalg.norm((centre - centers(gt_rgb)) / gt_rgb[:, 2:], axis=1)
            invalid = ~(gt_rgb > 0).all(axis=1)
            error[invalid] = -1.0
            iou[invalid] = -1.0
            normalized[invalid] = -1.0
    return error, iou, normalized


def _hits_below(errors: np.ndarray, thresholds: np.ndarray, strict: bool) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        below = errors[:, None] < thresholds[None, :] if strict else errors[:, None] <= thresholds[None, :]
    return below.sum(axis=0)


def sequence_scores(benchmark: str, sequence: Sequence, boxes, round_results: bool = False,
                    source: str | Path | None = None) -> SequenceScore:
    """Precision/success of one sequence under ``benchmark``'s protocol (results as x,y,w,h rows)."""
    protocol = get_protocol(benchmark)
    boxes, gt_rgb, gt_thermal = prepare_boxes(protocol, sequence, boxes, round_results, source)
    error, iou, normalized = frame_errors(protocol, boxes, gt_rgb, gt_thermal)
    frames = len(boxes)
    precision_hits = _hits_below(error, protocol.precision_thresholds, protocol.strict_precision)
    with np.errstate(invalid="ignore"):
        success_hits = (iou[:, None] > protocol.success_thresholds[None, :]).sum(axis=0)
    precision = Curve(protocol.precision_thresholds, precision_hits / frames)
    success = Curve(protocol.success_thresholds, success_hits / frames)
    npr_curve = None
    if normalized is not None:
        npr_curve = Curve(NPR_THRESHOLDS, _hits_below(normalized, NPR_THRESHOLDS, strict=False) / frames)
    return SequenceScore(
        name=sequence.name,
        frames=frames,
        pr=precision.value_at(protocol.precision_threshold),
        sr=success_value(protocol, success.values),
        npr=npr_curve.value_at(NPR_THRESHOLD) if npr_curve is not None else None,
        precision_curve=precision,
        success_curve=success,
        npr_curve=npr_curve,
        precision_hits=precision_hits,
        success_hits=success_hits,
    )
