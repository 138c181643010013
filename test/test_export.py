"""``python -m m5l_core.tracking.export``: the compact model, and the average of runs of one model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_tracking import TINY_MODEL, fast_config, run, synthetic, tiny_model, write_tiny_checkpoint

from m5l_core.config import from_dict
from m5l_core.models import CheckpointError, M5LNet, ModelConfig, load_checkpoint, save_checkpoint
from m5l_core.tracking import load_tracker
from m5l_core.tracking.export import export_model
from m5l_core.tracking.export import main as export_main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    write_tiny_checkpoint(path)
    return path


def test_export_writes_a_compact_model_that_tracks(tmp_path, checkpoint):
    compact = tmp_path / "compact.pt"
    assert export_main([str(checkpoint), str(compact), "--note", "tiny test model"]) == 0
    assert compact.stat().st_size < 0.6 * checkpoint.stat().st_size   # float16 weights
    _, _, extra = load_checkpoint(compact)
    assert extra["note"] == "tiny test model"
    sequence = synthetic(n_frames=12, speed_range=(3.0, 5.0))
    results = run(load_tracker(compact, fast_config(), device="cpu"), sequence, frames=2)
    assert np.all(np.isfinite(results[-1].box))


def test_export_averages_runs_of_one_model(tmp_path, checkpoint):
    first, _, _ = load_checkpoint(checkpoint)
    second, config = tiny_model(seed=1)
    save_checkpoint(tmp_path / "second.pt", second, config)
    soup = tmp_path / "soup.pt"
    assert export_main([str(checkpoint), str(soup), "--average-with", str(tmp_path / "second.pt")]) == 0
    averaged, _, extra = load_checkpoint(soup)
    expected = (first.fc4.weight + second.fc4.weight) / 2
    torch.testing.assert_close(averaged.fc4.weight, expected, atol=1e-3, rtol=1e-2)   # stored as float16
    assert extra["averaged_with"] == ["second.pt"]

    other = M5LNet(from_dict(ModelConfig, {**TINY_MODEL, "fc_dim": 32}), 1)
    save_checkpoint(tmp_path / "other.pt", other, other.config)
    with pytest.raises(CheckpointError, match="other.pt: cannot be averaged"):
        export_model(checkpoint, tmp_path / "bad.pt", average_with=(tmp_path / "other.pt",))
