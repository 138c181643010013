"""Faults injected into the offline tools: a full disk during a checkpoint write, corrupt result
files, ``kill -9`` during a tracking run. (Truncated bags: test_bag_tools.py; corrupt
checkpoints: test_checkpoint.py, test_ros_process.py; ``kill -9`` during training:
test_training_resume.py.) Each leaves no half-written file behind and loses nothing already done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import yaml
from test_tracking import FAST_SETTINGS, write_tiny_checkpoint

from m5l_core.datasets.synthetic import SyntheticConfig, write_dataset
from m5l_core.evaluation import cli as eval_cli
from m5l_core.evaluation.results_io import read_result_file


def test_a_full_disk_while_a_checkpoint_is_written_keeps_the_previous_one(tmp_path):
    """RLIMIT_FSIZE makes the write fail part-way, as ENOSPC would, in a child process."""
    path = tmp_path / "model.pt"
    write_tiny_checkpoint(path)
    before = path.read_bytes()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_tracking import tiny_model
        from m5l_core.models import save_checkpoint
        model, config = tiny_model()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a failed write() instead of a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        try:
            save_checkpoint({str(path)!r}, model, config)
        except OSError as err:
            print("write failed:", err)
            sys.exit(3)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3 and "write failed" in result.stdout, result.stderr
    assert path.read_bytes() == before                      # the previous checkpoint, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]   # no temporary left behind


@pytest.mark.parametrize("content", [b"\x00\xff\x13garbage\x80", b"1,2,3\n4,5,6\n", b"1,2,x,4\n",
                                     b"1,2,3,4\n5,6,7", b"1,2,nan,4\n"])
def test_a_corrupt_result_file_is_an_error_naming_it(tmp_path, content, capsys):
    (tmp_path / "data").mkdir()
    write_dataset(tmp_path / "data", "gtot", n_sequences=1, n_frames=3, seed=5, challenges=(),
                  config=SyntheticConfig(width=64, height=48), progress=False)
    results = tmp_path / "results"
    results.mkdir()
    (results / "synth_0000.txt").write_bytes(content)
    code = eval_cli.main(["--benchmark", "gtot", "--dataset-root", str(tmp_path / "data"),
                          "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and "synth_0000.txt" in err and "Traceback" not in err


def test_kill_9_during_a_tracking_run_leaves_complete_results_and_a_rerun_finishes(tmp_path):
    write_dataset(tmp_path / "data", "gtot", n_sequences=3, n_frames=20, seed=11, challenges=(),
                  config=SyntheticConfig(width=192, height=144), progress=False)
    write_tiny_checkpoint(tmp_path / "tiny.pt")
    (tmp_path / "tracker.yaml").write_text(yaml.safe_dump({"tracker": FAST_SETTINGS}))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "m5l_core.tracking.runner_cli", "--dataset", "gtot",
               "--dataset-root", str(tmp_path / "data"), "--checkpoint", str(tmp_path / "tiny.pt"),
               "--out", str(out), "--device", "cpu", "--config", str(tmp_path / "tracker.yaml"), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.txt")) and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    done = sorted(out.glob("*.txt"))
    assert done, "no result before the kill"
    for path in done:   # every file there is whole: atomic writes
        assert read_result_file(path).shape == (20, 4)
    before = {p.name: p.read_bytes() for p in done}
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in out.glob("*.txt")) == ["synth_0000.txt", "synth_0001.txt", "synth_0002.txt"]
    assert all((out / name).read_bytes() == data for name, data in before.items())   # kept, not redone
    assert all(np.isfinite(read_result_file(p)).all() for p in out.glob("*.txt"))
    # the kill may have come between a temporary file and its rename: the rerun removes it
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.suffix == ".tmp"]
