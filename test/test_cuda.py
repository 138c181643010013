"""The CUDA path: tracking, training and distillation on a GPU, and their results read back on a CPU.

Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
`python -m pytest test/test_cuda.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_distill import data, random_teacher  # noqa: F401  (data: fixture)
from test_distill import tiny_config as distill_config
from test_tracking import fast_config, run, synthetic, write_tiny_checkpoint
from test_training import TINY_OVERRIDES, write_tiny_gtot

from m5l_core.distill import distill
from m5l_core.geometry import overlap_ratio
from m5l_core.models import load_checkpoint
from m5l_core.tracking import load_tracker
from m5l_core.training import load_train_config, train
from m5l_core.training.log import read_log

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def sequence():
    return synthetic(n_frames=30, speed_range=(3.0, 5.0), width=640, height=480)


def test_the_bundled_model_tracks_on_cuda_as_on_the_cpu(sequence):
    gpu = load_tracker(None, device="cuda", seed=0)
    cpu = load_tracker(None, device="cpu", seed=0)
    assert all(p.is_cuda for p in gpu.model.parameters())
    on_gpu, on_cpu = run(gpu, sequence), run(cpu, sequence)
    gpu_boxes = np.stack([r.box for r in on_gpu])
    cpu_boxes = np.stack([r.box for r in on_cpu])
    truth = sequence.gt_rgb[1:]
    assert overlap_ratio(gpu_boxes, truth).mean() > 0.6
    # Float sums differ between the devices, so the boxes may part by a little, not a target's width.
    assert overlap_ratio(gpu_boxes, cpu_boxes).mean() > 0.8
    assert all(np.isfinite(r.score) for r in on_gpu)


def test_a_tiny_checkpoint_tracks_a_failure_frame_on_cuda(tmp_path, sequence):
    path = tmp_path / "tiny.pt"
    write_tiny_checkpoint(path)
    tracker = load_tracker(path, fast_config(), device="cuda", seed=0)
    results = run(tracker, sequence, frames=10)
    assert len(results) == 10 and all(np.isfinite(r.box).all() for r in results)


def test_training_on_cuda_writes_a_checkpoint_that_tracks_on_the_cpu(tmp_path, sequence):
    root = write_tiny_gtot(tmp_path / "gtot")
    config = load_train_config(None, [*TINY_OVERRIDES, "data.dataset=gtot", f"data.root={root}",
                                      "iterations=4", "device=cuda"])
    train(config, tmp_path / "run")
    records = read_log(tmp_path / "run" / "train_log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(np.isfinite(r["ce"]) and np.isfinite(r["mmsl"]) for r in records)
    model, _, _ = load_checkpoint(tmp_path / "run" / "model.pt")
    assert not any(p.is_cuda for p in model.parameters())
    tracker = load_tracker(tmp_path / "run" / "model.pt", fast_config(), device="cpu", seed=0)
    assert len(run(tracker, sequence, frames=2)) == 2


def test_distillation_on_cuda_lowers_the_loss(data, tmp_path):  # noqa: F811
    distill(distill_config(data, steps=16, batch_size=4, checkpoint_every=100, device="cuda"), tmp_path,
            teacher=random_teacher())
    records = read_log(tmp_path / "distill_log.jsonl")
    for stream in ("rgb", "thermal"):
        assert records[-1][f"eval_loss_{stream}"] < 0.95 * records[0][f"eval_loss_{stream}"]
