"""Protocol math against hand-computed tiny examples (GUIDE §5)."""

from __future__ import annotations

import numpy as np
import pytest

from m5l_core.datasets import Sequence
from m5l_core.evaluation import ResultsError, evaluate_tracker, get_protocol, sequence_scores
from m5l_core.evaluation.metrics import frame_errors, matlab_round


def make_sequence(gt_rgb, gt_thermal=None, name="s", benchmark="rgbt234", attributes=None) -> Sequence:
    gt_rgb = np.asarray(gt_rgb, dtype=np.float64)
    gt_thermal = gt_rgb if gt_thermal is None else np.asarray(gt_thermal, dtype=np.float64)
    return Sequence(name=name, benchmark=benchmark, rgb_frames=(), thermal_frames=(), gt_rgb=gt_rgb,
                    gt_thermal=gt_thermal, init_box=gt_rgb[0], attributes=attributes or {})


def constant_boxes(frames: int, box=(100.0, 100.0, 20.0, 20.0)) -> np.ndarray:
    return np.tile(np.asarray(box, dtype=np.float64), (frames, 1))


def shifted(boxes: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    return boxes + [dx, dy, 0.0, 0.0]


def test_pixel_iou_and_centre_error_of_one_frame():
    gt = np.array([[0.0, 0.0, 10.0, 10.0]])
    result = np.array([[5.0, 0.0, 10.0, 10.0]])  # pixels 5..14 vs 0..9: 5 columns overlap
    error, iou, _ = frame_errors(get_protocol("rgbt234"), result, gt, gt)
    assert iou[0] == pytest.approx(50 / 150)
    assert error[0] == pytest.approx(5.0)  # centres x + w/2: 10 vs 5


def test_centre_error_threshold_is_strict_for_gtot_and_inclusive_for_rgbt234():
    gt = constant_boxes(4)
    seq = make_sequence(gt)
    assert sequence_scores("gtot", seq, shifted(gt, 5.0)).pr == 0.0     # 5 is not < 5
    assert sequence_scores("gtot", seq, shifted(gt, 4.9)).pr == 1.0
    assert sequence_scores("rgbt234", seq, shifted(gt, 3.0, 4.0)).pr == 1.0  # error 5
    assert sequence_scores("rgbt234", seq, shifted(gt, 20.0)).pr == 1.0  # 20 <= 20
    assert sequence_scores("rgbt234", seq, shifted(gt, 20.5)).pr == 0.0


def test_success_trapezoid_for_gtot_mean_of_21_for_rgbt234():
    gt = constant_boxes(3)  # 20 x 20 boxes
    seq = make_sequence(gt)
    result = shifted(gt, 4.0)  # IoU = (20 - 4) / (20 + 4) = 2/3 in every frame
    # GTOT: curve is 1 for t = 0, 0.02, ..., 0.66 (34 points) and 0 from 0.68: area 0.02 * (33 + 1/2)
    assert sequence_scores("gtot", seq, result).sr == pytest.approx(0.67)
    # RGBT234: thresholds 0, 0.05, ..., 0.65 are passed (14 of 21)
    assert sequence_scores("rgbt234", seq, result).sr == pytest.approx(14 / 21)


def test_perfect_results_give_the_known_maxima():
    gt = constant_boxes(5)
    seq = make_sequence(gt)
    assert sequence_scores("rgbt234", seq, gt).sr == pytest.approx(20 / 21)  # IoU 1 is not > 1
    assert round(sequence_scores("rgbt234", seq, gt).sr, 4) == 0.9524
    assert sequence_scores("gtot", seq, gt).sr == pytest.approx(0.99)       # trapezoid: last half step lost


def test_gtot_pools_frames_while_rgbt234_averages_sequences():
    short = make_sequence(constant_boxes(10), name="short")
    long = make_sequence(constant_boxes(30), name="long")
    # all hits in "short", all misses in "long"
    results = {"short": constant_boxes(10), "long": shifted(constant_boxes(30), 30.0)}
    assert evaluate_tracker("gtot", [short, long], results).pr == pytest.approx(10 / 40)
    assert evaluate_tracker("rgbt234", [short, long], results).pr == pytest.approx(0.5)


def test_best_of_the_two_modality_ground_truths_per_frame():
    gt_rgb = constant_boxes(2)
    gt_thermal = shifted(gt_rgb, 10.0)
    seq = make_sequence(gt_rgb, gt_thermal)
    error, iou, _ = frame_errors(get_protocol("rgbt234"), gt_thermal, gt_rgb, gt_thermal)
    np.testing.assert_allclose(error, 0.0)
    np.testing.assert_allclose(iou, 1.0)
    # frame 1 matches RGB, frame 2 matches thermal: both perfect
    result = np.stack([gt_rgb[0], gt_thermal[1]])
    assert sequence_scores("gtot", seq, result).pr == 1.0


def test_first_frame_is_replaced_by_ground_truth_for_rgbt210_and_lasher_only():
    gt = constant_boxes(4)
    result = gt.copy()
    result[0] = [400.0, 400.0, 20.0, 20.0]
    seq = make_sequence(gt)
    assert sequence_scores("rgbt234", seq, result).pr == pytest.approx(0.75)
    assert sequence_scores("rgbt210", seq, result).pr == 1.0
    assert sequence_scores("lasher", seq, result).pr == 1.0


def test_lasher_invalid_rows_copy_the_previous_row():
    gt = constant_boxes(5)
    seq = make_sequence(gt, benchmark="lasher")
    result = gt.copy()
    result[1] = [130.0, 100.0, 20.0, 20.0]          # 30 px off: a miss
    result[2] = [0.0, 0.0, 0.0, 0.0]                # invalid: copies frame 2 -> miss
    result[3] = [np.nan, np.nan, np.nan, np.nan]     # invalid: copies (the copy of) frame 2 -> miss
    score = sequence_scores("lasher", seq, result)
    assert score.pr == pytest.approx(2 / 5)          # frames 1 (GT) and 5
    # the toolkit repairs rows before frame 1 is set to the GT: frame 2 copies the raw frame 1
    result = gt.copy()
    result[0] = [300.0, 300.0, 20.0, 20.0]
    result[1] = [10.0, 10.0, -5.0, 20.0]
    assert sequence_scores("lasher", seq, result).pr == pytest.approx(4 / 5)  # copying the GT would give 1


def test_nan_is_an_error_outside_lasher():
    gt = constant_boxes(3)
    result = gt.copy()
    result[2, 1] = np.inf
    with pytest.raises(ResultsError, match=r"sequence 's', frame 3: NaN or infinite"):
        sequence_scores("rgbt234", make_sequence(gt), result)


def test_lasher_invalid_ground_truth_frames_hit_precision_and_miss_success():
    gt = constant_boxes(4)
    gt[2] = [0.0, 0.0, 0.0, 0.0]     # target absent
    gt[3] = [-3.0, 100.0, 20.0, 20.0]  # any value <= 0 marks the frame invalid
    score = sequence_scores("lasher", make_sequence(gt, benchmark="lasher"), shifted(constant_boxes(4), 50.0))
    assert score.pr == pytest.approx(3 / 4)  # frame 1 (GT) + the two invalid frames (-1 <= 20)
    assert score.success_curve.values[0] == pytest.approx(1 / 4)  # only frame 1
    assert score.npr == pytest.approx(3 / 4)


def test_lasher_drops_sequences_whose_curve_is_all_zero():
    good = make_sequence(constant_boxes(4), name="good", benchmark="lasher")
    gt_bad = constant_boxes(4)
    gt_bad[0] = 0.0  # invalid first frame: the GT-replaced frame 1 does not count as a success
    bad = make_sequence(gt_bad, name="bad", benchmark="lasher")
    results = {"good": constant_boxes(4), "bad": shifted(constant_boxes(4), 80.0)}
    score = evaluate_tracker("lasher", [good, bad], results)
    assert score.sr == pytest.approx(20 / 21)            # "bad" success row is all zero: dropped
    assert score.pr == pytest.approx((1 + 1 / 4) / 2)    # its precision row is not (frame 1: -1 <= t)
    assert evaluate_tracker("rgbt210", [good, bad], results).sr < 0.5  # other protocols keep it


def test_normalized_precision():
    gt = constant_boxes(4, box=(100.0, 100.0, 40.0, 10.0))
    seq = make_sequence(gt, benchmark="lasher")
    near = shifted(gt, 4.0, 1.0)  # normalised offset (0.1, 0.1): 0.141 <= 0.2
    far = shifted(gt, 12.0, 0.0)  # normalised 0.3 > 0.2, but 12 px <= 20 px
    assert sequence_scores("lasher", seq, near).npr == 1.0
    far_score = sequence_scores("lasher", seq, far)
    assert far_score.npr == pytest.approx(1 / 4) and far_score.pr == 1.0
    assert sequence_scores("rgbt234", seq, near).npr is None


def test_result_one_row_short_is_truncated_longer_or_shorter_is_an_error():
    gt = constant_boxes(5)
    seq = make_sequence(gt)
    score = sequence_scores("rgbt234", seq, gt[:4])
    assert score.frames == 4 and score.pr == 1.0
    with pytest.raises(ResultsError, match=r"3 result rows but the ground truth has 5 frames"):
        sequence_scores("rgbt234", seq, gt[:3])
    with pytest.raises(ResultsError, match=r"6 result rows"):
        sequence_scores("rgbt234", seq, np.vstack([gt, gt[:1]]))
    assert sequence_scores("lasher", seq, np.vstack([gt, gt])).frames == 5  # LasHeR cuts long results


def test_rounding_is_matlab_style_and_optional():
    np.testing.assert_array_equal(matlab_round(np.array([0.5, 1.5, 2.5, -0.5, -2.5])), [1, 2, 3, -1, -3])
    gt = constant_boxes(2)
    seq = make_sequence(gt)
    result = shifted(gt, 4.5)  # error 4.5 < 5 unrounded, 5 after rounding
    assert sequence_scores("gtot", seq, result).pr == 1.0
    assert sequence_scores("gtot", seq, result, round_results=True).pr == 0.0


def test_per_attribute_scores_use_the_flagged_sequences():
    flagged = make_sequence(constant_boxes(4), name="a", attributes={"OCC": np.array([True])})
    other = make_sequence(constant_boxes(4), name="b", attributes={"OCC": np.array([False])})
    per_frame = make_sequence(constant_boxes(4), name="c", attributes={"OCC": np.array([0, 0, 1, 0], bool)})
    results = {"a": constant_boxes(4), "b": shifted(constant_boxes(4), 50.0), "c": constant_boxes(4)}
    score = evaluate_tracker("gtot", [flagged, other, per_frame], results)
    assert score.per_attribute["OCC"] == {"pr": 1.0, "sr": pytest.approx(0.99), "npr": None, "sequences": 2}
    assert score.per_sequence["b"] == (0.0, 0.0)


def test_tracker_score_json_has_the_documented_fields():
    seq = make_sequence(constant_boxes(3), benchmark="lasher")
    score = evaluate_tracker("lasher", [seq], {"s": constant_boxes(3)}, tracker="t", split="test")
    doc = score.to_json()
    for key in ("benchmark", "tracker", "pr", "sr", "npr", "sequences", "per_attribute", "per_sequence"):
        assert key in doc
    assert doc["benchmark"] == "lasher" and doc["sequences"] == 1 and 0.0 <= doc["sr"] <= 1.0
    assert doc["per_sequence"]["s"]["npr"] == 1.0
    with pytest.raises(ResultsError, match="no results for 1 sequence"):
        evaluate_tracker("lasher", [seq], {})
