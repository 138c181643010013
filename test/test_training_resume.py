"""A training process killed with SIGKILL mid-run resumes from its last checkpoint, nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from test_training import TINY_OVERRIDES, write_tiny_gtot

from m5l_core.models import load_checkpoint
from m5l_core.training.log import read_log


def train_command(root, out, iterations: int, *extra: str) -> list[str]:
    sets = [arg for override in [*TINY_OVERRIDES, "checkpoint_every=1"] for arg in ("--set", override)]
    return [sys.executable, "-m", "m5l_core.training.cli", "--dataset", "gtot", "--dataset-root", str(root),
            "--out", str(out), "--device", "cpu", "--iterations", str(iterations), *sets, *extra]


def wait_for_steps(log_path, steps: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(read_log(log_path)) >= steps:
            return
        assert process.poll() is None, "training exited before it could be killed"
        time.sleep(0.05)
    raise AssertionError(f"no {steps} logged steps within {timeout} s")


def test_kill_9_then_resume_continues_the_step_count(tmp_path):
    root = write_tiny_gtot(tmp_path / "data")
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(train_command(root, out, 10_000), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        wait_for_steps(out / "train_log.jsonl", 4, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    _, _, extra = load_checkpoint(out / "checkpoint.pt")  # complete and loadable after the kill
    killed_at = extra["step"]
    assert killed_at >= 3
    target = killed_at + 3
    resumed = subprocess.run(train_command(root, out, target, "--resume"), env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr

    steps = [record["step"] for record in read_log(out / "train_log.jsonl")]
    assert steps == list(range(1, target + 1))
    _, _, extra = load_checkpoint(out / "checkpoint.pt")
    assert extra["step"] == target
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == killed_at and summary["steps_this_run"] == 3
    assert not list(out.glob(".*.tmp"))
