"""``m5l-track --tracker csrt|kcf``: OpenCV's trackers through the same runner, files and evaluator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m5l_core.datasets import load_benchmark
from m5l_core.datasets.synthetic import SyntheticConfig, write_dataset
from m5l_core.evaluation import evaluate_tracker, read_results_dir
from m5l_core.tracking.api import TrackerError
from m5l_core.tracking.classic import OpenCVTracker
from m5l_core.tracking.runner_cli import main

FRAMES = 12


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One clean, easy sequence: a textured target drifting over a static background."""
    root = tmp_path_factory.mktemp("classic") / "data"
    config = SyntheticConfig(width=160, height=120, speed_range=(1.5, 2.5), target_height_range=(0.25, 0.3))
    write_dataset(root, "rgbt234", n_sequences=1, n_frames=FRAMES, seed=3, challenges=(), config=config,
                  progress=False)
    return root


@pytest.mark.parametrize("kind", ["csrt", "kcf"])
def test_classic_tracker_writes_a_result_file_that_follows_the_target(dataset, tmp_path, kind):
    out = tmp_path / kind
    args = ["--dataset", "rgbt234", "--dataset-root", str(dataset), "--tracker", kind, "--out", str(out),
            "--quiet"]
    assert main(args) == 0
    sequences = load_benchmark("rgbt234", dataset)
    boxes = read_results_dir(out, ["synth_0000"])["synth_0000"]
    gt = sequences[0].gt_rgb
    assert boxes.shape == (FRAMES, 4)
    np.testing.assert_allclose(boxes[0], sequences[0].init_box)
    assert np.ptp(gt[:, 0]) + np.ptp(gt[:, 1]) > 5          # the target really moves
    centre_error = np.hypot(*((boxes[:, :2] + boxes[:, 2:] / 2) - (gt[:, :2] + gt[:, 2:] / 2)).T)
    assert centre_error.max() < 8.0
    assert evaluate_tracker("rgbt234", sequences, {"synth_0000": boxes}).pr == 1.0
    meta = json.loads((out / "meta" / "synth_0000.json").read_text())
    assert meta["tracker"] == kind and meta["frames"] == FRAMES


def test_classic_tracker_api_errors():
    tracker = OpenCVTracker("csrt")
    frame = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(TrackerError, match="before initialize"):
        tracker.track(frame, frame[..., 0])
    with pytest.raises(TrackerError, match="w, h > 0"):
        tracker.initialize(frame, frame[..., 0], (10, 10, 0, 5))
    with pytest.raises(TrackerError, match="unknown classic tracker"):
        OpenCVTracker("mosse")


def test_checkpoint_with_a_classic_tracker_is_refused(dataset, tmp_path, capsys):
    args = ["--dataset", "rgbt234", "--dataset-root", str(dataset), "--tracker", "kcf", "--out",
            str(tmp_path / "out"), "--checkpoint", str(tmp_path / "model.pt"), "--quiet"]
    assert main(args) == 2
    assert "--checkpoint applies to --tracker m5l" in capsys.readouterr().err
