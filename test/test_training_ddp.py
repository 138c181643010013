"""DistributedDataParallel with two CPU ranks (gloo) under torchrun: sharded domains, equal weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from test_training import TINY_OVERRIDES, write_tiny_gtot

from m5l_core.models import M5LNet, load_checkpoint
from m5l_core.training.distributed import state_fingerprint
from m5l_core.training.log import read_log


def test_two_gloo_ranks_train_different_domains_and_end_identical(tmp_path):
    root = write_tiny_gtot(tmp_path / "data", sequences=3)
    out = tmp_path / "run"
    sets = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "m5l_core.training.cli", "--dataset", "gtot", "--dataset-root", str(root),
               "--out", str(out), "--device", "cpu", "--iterations", "3", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    first, second = summary["rank_fingerprints"]
    assert first == second

    model, model_config, extra = load_checkpoint(out / "checkpoint.pt")
    assert extra["step"] == 3 and state_fingerprint(model) == first
    torch.manual_seed(0)
    untrained = M5LNet(model_config, num_domains=3)
    assert state_fingerprint(untrained) != first

    for record in read_log(out / "train_log.jsonl"):
        assert len(set(record["domains"])) == 2 and record["frames"] == 4
