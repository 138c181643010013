"""m5l-replay-eval against the real node and tracker: synthetic sequence -> bag -> replay.

Lockstep must reproduce the offline runner (m5l-track) box by box for the same checkpoint,
seed and tracker settings; realtime at 1x must report drops, latency and the output rate.
The tracker runs with tiny settings (few samples and iterations) to keep this fast on a CPU.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from m5l_core.datasets.synthetic import SyntheticConfig, generate_sequence  # noqa: E402
from m5l_core.evaluation.results_io import read_result_file  # noqa: E402
from m5l_core.tracking import runner_cli  # noqa: E402
from m5l_tracker_ros import workspace  # noqa: E402
from m5l_tracker_ros.bag import eval_bag, make_bag, replay_eval  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

FRAMES = 12
# init.quick_iterations < init.iterations: the quick start, whose remaining first-frame work and
# every update run in the per-frame learning budget (lockstep must still equal the runner).
FAST_TRACKER = ["init.iterations=3", "init.quick_iterations=1", "budget.pool_batch=40",
                "init.n_pos=32", "init.n_neg=96", "update.iterations=1",
                "update.n_pos=16", "update.n_neg=32", "search.n_candidates=32", "search.target_size=48",
                "bbreg.n_samples=100", "optim.neg_candidates=96"]


def _sets() -> list[str]:
    return [arg for setting in FAST_TRACKER for arg in ("--set", setting)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Sequence, bag, a seeded random-weight checkpoint, and an isolated ROS domain."""
    try:
        workspace.install_prefix()
    except workspace.WorkspaceError as err:
        pytest.skip(str(err))
    import torch

    from m5l_core.models import M5LNet, ModelConfig, save_checkpoint
    tmp = tmp_path_factory.mktemp("replay")
    generate_sequence(SyntheticConfig(width=160, height=120, n_frames=FRAMES), seed=5, challenges=(),
                      out_dir=tmp / "data", name="seq", layout="gtot", keep_frames=False, workers=1)
    bag = tmp / "seq_bag"
    assert make_bag.main(["--sequence", str(tmp / "data" / "seq"), "--out", str(bag), "--fps", "25",
                          "--jitter-ms", "3", "--quiet"]) == 0
    torch.manual_seed(0)
    checkpoint = tmp / "random.pt"
    save_checkpoint(checkpoint, M5LNet(ModelConfig()), ModelConfig())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROS_DOMAIN_ID", str(1 + (os.getpid() + 50) % 100))  # not test_ros_node's domain
        patch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        yield tmp, bag, checkpoint


def thread_params_file(path):
    """A node params file that, like config/track.yaml, runs learning on a learner thread."""
    path.write_text("/**:\n  ros__parameters:\n    tracker:\n      budget:\n        mode: thread\n")
    return path


def test_lockstep_learns_on_the_deterministic_budget_whatever_the_params_file_says(tmp_path):
    params_file = thread_params_file(tmp_path / "node.yaml")

    def node_params(*extra):
        argv = ["--bag", "b", "--params-file", str(params_file), *extra]
        args = replay_eval.build_parser().parse_args(argv)
        return replay_eval._node(args, tmp_path).parameters

    assert node_params("--mode", "lockstep")["tracker.budget.mode"] == "steps"
    assert node_params("--mode", "lockstep", "--set", "budget.mode=time")["tracker.budget.mode"] == "time"
    assert "tracker.budget.mode" not in node_params("--mode", "realtime")   # the file's thread stands


def test_a_setting_named_at_its_default_value_overrides_the_params_file(tmp_path):
    """``--set search.size_reuse=1.0`` (the default) beside config/track.yaml's 1.25 must reach the
    node: only settings that differ from the defaults used to be passed, so the file's stood."""
    config = tmp_path / "tracker.yaml"
    config.write_text("tracker:\n  search:\n    trans: 0.6\n  update:\n    n_pos: 50\n")

    def node_params(*extra):
        shipped = Path(__file__).resolve().parents[1] / "config" / "track.yaml"
        argv = ["--bag", "b", "--params-file", str(shipped), "--mode", "realtime", *extra]
        return replay_eval._node(replay_eval.build_parser().parse_args(argv), tmp_path).parameters

    assert node_params("--set", "search.size_reuse=1.0")["tracker.search.size_reuse"] == 1.0
    assert "tracker.search.size_reuse" not in node_params()
    named = node_params("--config", str(config), "--set", "budget=" + "{mode: steps}")
    assert named["tracker.search.trans"] == 0.6 and named["tracker.update.n_pos"] == 50   # defaults both
    assert named["tracker.budget.mode"] == "steps" and named["tracker.budget.steps_per_frame"] == 10.0
    assert "tracker.search.n_candidates" not in named


def test_lockstep_replay_equals_the_offline_runner(setup, capsys):
    """Also with a params file that asks for a learner thread (config/track.yaml does)."""
    tmp, bag, checkpoint = setup
    assert runner_cli.main(["--dataset", "gtot", "--dataset-root", str(tmp / "data"), "--sequences", "seq",
                            "--checkpoint", str(checkpoint), "--out", str(tmp / "offline"), "--device", "cpu",
                            "--quiet", *_sets()]) == 0
    out = tmp / "lockstep"
    params_file = thread_params_file(tmp / "thread.yaml")
    assert replay_eval.main(["--bag", str(bag), "--mode", "lockstep", "--out", str(out), "--checkpoint",
                             str(checkpoint), "--device", "cpu", "--quiet", "--params-file", str(params_file),
                             *_sets()]) == 0, (
        (out / "node.log").read_text())
    offline = read_result_file(tmp / "offline" / "seq.txt")
    replayed = read_result_file(out / "seq.txt")
    assert replayed.shape == offline.shape == (FRAMES, 4)
    np.testing.assert_allclose(replayed, offline, atol=2e-3)    # the message carries float32
    report = json.loads((out / "seq.report.json").read_text())
    assert (report["pairs"], report["outputs"], report["dropped"]) == (FRAMES, FRAMES, 0)
    capsys.readouterr()
    # the outputs bag scores the same with m5l-eval-bag (images from the source bag)
    assert eval_bag.main(["--bag", str(out / "seq_outputs"), "--out", str(tmp / "rescored"), "--quiet"]) == 0
    rescored = json.loads((tmp / "rescored" / "seq.report.json").read_text())
    assert (rescored["pr"], rescored["sr"], rescored["outputs"]) == (report["pr"], report["sr"], FRAMES)
    np.testing.assert_allclose(read_result_file(tmp / "rescored" / "seq.txt"), replayed)


def test_realtime_replay_reports_drops_latency_and_rate(setup, capsys):
    tmp, bag, checkpoint = setup
    out = tmp / "realtime"
    assert replay_eval.main(["--bag", str(bag), "--mode", "realtime", "--rate", "1", "--out", str(out),
                             "--checkpoint", str(checkpoint), "--device", "cpu", "--quiet", *_sets()]) == 0, (
        (out / "node.log").read_text())
    printed = capsys.readouterr().out
    report = json.loads((out / "seq.report.json").read_text())
    assert report["mode"] == "realtime x1" and report["pairs"] == FRAMES
    assert 1 <= report["outputs"] <= FRAMES
    assert report["dropped"] == report["pairs"] - report["outputs"]
    latency = report["latency"]
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["max_ms"]
    assert report["outputs_per_s"] > 0
    assert report["first_output_ms"] > 0 and "first tracked box" in printed
    assert f"dropped {report['dropped']}" in printed and "latency (image stamp -> output): p50" in printed
    assert {"features", "scoring", "total"} <= set(report["node_stages_ms"])   # from the node's /diagnostics
    assert 0 < report["node_stages_ms"]["features"] < report["node_stages_ms"]["total"]
    assert "tracker stages in the node (mean ms, /diagnostics): " in printed
    counters = report["node_counters"]     # the tracker's totals, as the node's /diagnostics last had them
    assert 1 <= counters["frames"] <= report["outputs"] and counters["learning_steps"] >= 0
    assert f"learning_steps {counters['learning_steps']}" in printed
    assert len(read_result_file(out / "seq.txt")) == FRAMES      # frames without output keep a box
