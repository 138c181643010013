"""Faults at the level of the node process: bad checkpoints at start, stop signals during start-up.

The node processes of one test run side by side (each start costs seconds of imports on a small
machine). A signal at any time exits 0 promptly without a traceback; a checkpoint that cannot be
used exits 2 with a message naming the file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

from m5l_tracker_ros import workspace  # noqa: E402

pytestmark = pytest.mark.ros


def start_node(tmp_path: Path, name: str, *ros_args: str) -> tuple[subprocess.Popen, Path]:
    env = workspace.package_env()
    env.update(ROS_DOMAIN_ID=str(1 + (os.getpid() + 71) % 100), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1")
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "w") as log:
        command = workspace.node_command(workspace.REPO_ROOT, None, "-r", f"__node:=m5l_{name}",
                                         "-p", "device:=cpu", *ros_args)
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log_path


def test_a_corrupt_or_foreign_checkpoint_stops_the_start_with_a_message(tmp_path):
    import torch
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(4096))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"backbone.weight": torch.zeros(3)}, "epoch": 7}, foreign)
    text = tmp_path / "params.yaml"
    text.write_text("not: a checkpoint\n")
    nodes = {path: start_node(tmp_path, path.stem, "-p", f"checkpoint:={path}")
             for path in (corrupt, foreign, text)}
    for path, (process, log_path) in nodes.items():
        code = process.wait(120)
        log = log_path.read_text()
        assert code == 2, log
        assert log.startswith("error:") or "\nerror:" in log, log
        assert str(path) in log and "Traceback" not in log, log


@pytest.mark.parametrize("when_s", [0.5, 2.5])
def test_sigint_and_sigterm_during_start_up_exit_0_at_once(tmp_path, when_s):
    """Importing torch and loading the model take seconds here: the signals land in the middle."""
    interrupted = {signal.SIGINT: start_node(tmp_path, f"int{int(when_s * 10)}"),
                   signal.SIGTERM: start_node(tmp_path, f"term{int(when_s * 10)}")}
    time.sleep(when_s)
    took = {}
    for signum, (process, _) in interrupted.items():
        sent = time.monotonic()
        process.send_signal(signum)
        process.wait(10)
        took[signum] = time.monotonic() - sent
    for signum, (process, log_path) in interrupted.items():
        log = log_path.read_text()
        assert process.returncode == 0, (signum, log)
        assert "Traceback" not in log and "terminate called" not in log, log
        assert took[signum] < 3.0, (signum, took[signum])
