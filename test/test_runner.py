"""``m5l-track``: result files the evaluator reads, shards that merge by copying, resume, videos, errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest
import yaml
from test_tracking import FAST_SETTINGS, write_tiny_checkpoint

from m5l_core.config import ConfigError
from m5l_core.datasets import Sequence, load_benchmark
from m5l_core.datasets.synthetic import SyntheticConfig, write_dataset
from m5l_core.evaluation import evaluate_tracker, read_results_dir
from m5l_core.tracking.api import TrackResult
from m5l_core.tracking.runner import FrameSchedule, parse_shard, shard_names, track_sequence
from m5l_core.tracking.runner_cli import main

NAMES = ["synth_0000", "synth_0001", "synth_0002"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    write_dataset(root / "data", "gtot", n_sequences=3, n_frames=6, seed=11, challenges=(),
                  config=SyntheticConfig(width=192, height=144), progress=False)
    write_tiny_checkpoint(root / "tiny.pt")
    (root / "tracker.yaml").write_text(yaml.safe_dump({"tracker": FAST_SETTINGS}))
    return root


def track(setup, out, *extra) -> int:
    return main(["--dataset", "gtot", "--dataset-root", str(setup / "data"),
                 "--checkpoint", str(setup / "tiny.pt"), "--out", str(out), "--device", "cpu",
                 "--config", str(setup / "tracker.yaml"), "--quiet", *extra])


def result_texts(directory) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.glob("*.txt"))}


def test_shards_merge_into_the_full_run_and_reruns_resume(setup, tmp_path, capsys):
    full = tmp_path / "full"
    assert track(setup, full) == 0
    assert sorted(result_texts(full)) == [f"{n}.txt" for n in NAMES]
    meta = json.loads((full / "meta" / "synth_0001.json").read_text())
    assert meta["frames"] == 6 and meta["fps"] > 0 and meta["tracker_config"]["search"]["n_candidates"] == 64

    merged = tmp_path / "merged"
    for shard in ("1/2", "2/2"):
        part = tmp_path / shard.replace("/", "of")
        assert track(setup, part, "--shard", shard) == 0
        shutil.copytree(part, merged, dirs_exist_ok=True)
    assert result_texts(merged) == result_texts(full)

    capsys.readouterr()
    assert track(setup, full) == 0
    assert "nothing to do" in capsys.readouterr().out
    (full / "synth_0002.txt").unlink()
    before = (full / "synth_0000.txt").stat().st_mtime_ns
    assert track(setup, full) == 0
    assert "tracked 1 sequences" in capsys.readouterr().out
    assert (full / "synth_0000.txt").stat().st_mtime_ns == before
    assert result_texts(full) == result_texts(merged)


def test_result_files_score_with_the_evaluator(setup, tmp_path):
    out = tmp_path / "out"
    assert track(setup, out, "--sequences", "synth_0000", "synth_0001") == 0
    sequences = load_benchmark("gtot", setup / "data", names=["synth_0000", "synth_0001"])
    results = read_results_dir(out, [s.name for s in sequences])
    for sequence in sequences:
        assert results[sequence.name].shape == (6, 4)
        np.testing.assert_allclose(results[sequence.name][0], sequence.init_box, atol=1e-3)
    score = evaluate_tracker("gtot", sequences, results)
    assert 0.0 <= score.pr <= 1.0 and 0.0 <= score.sr <= 1.0


def test_save_video_writes_one_side_by_side_mp4_per_sequence(setup, tmp_path):
    import imageio.v2 as imageio

    videos = tmp_path / "videos"
    assert track(setup, tmp_path / "out", "--sequences", "synth_0001", "--save-video", str(videos)) == 0
    assert [p.name for p in videos.iterdir()] == ["synth_0001.mp4"]
    reader = imageio.get_reader(videos / "synth_0001.mp4")
    frames = [frame for frame in reader]
    assert len(frames) == 6
    assert frames[0].shape == (144, 384, 3)   # RGB | thermal


@pytest.mark.parametrize("extra, message", [
    (["--shard", "3/2"], "shard"),
    (["--set", "search.no_such_key=1"], "no_such_key"),
    (["--sequences", "no_such_sequence"], "no_such_sequence"),
])
def test_bad_input_is_an_error_message_and_exit_2(setup, tmp_path, capsys, extra, message):
    assert track(setup, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_corrupt_checkpoint_is_an_error_naming_it(setup, tmp_path, capsys):
    corrupt = tmp_path / "broken.pt"
    corrupt.write_bytes(b"not a checkpoint")
    code = main(["--dataset", "gtot", "--dataset-root", str(setup / "data"), "--checkpoint", str(corrupt),
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 2
    assert "broken.pt" in capsys.readouterr().err


def test_shards_partition_the_sorted_names():
    names = [f"s{i}" for i in range(7)]
    parts = [shard_names(reversed(names), parse_shard(f"{i}/3")) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == names
    assert parts[0] == ["s0", "s3", "s6"]


def test_demo_generates_tracks_scores_and_plots(tmp_path, capsys):
    from test_bench import fast_overrides

    from m5l_core.demo import main as demo_main

    write_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "demo"
    code = demo_main(["--out", str(out), "--checkpoint", str(tmp_path / "tiny.pt"), "--sequences", "2",
                      "--frames", "5", "--width", "160", "--height", "120", "--device", "cpu",
                      *fast_overrides()])
    assert code == 0
    printed = capsys.readouterr().out
    assert "demo_00" in printed and "demo_01" in printed and "overall" in printed
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["rgbt234_precision.png", "rgbt234_success.png"]
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["demo_00.mp4", "demo_01.mp4"]
    scores = json.loads((out / "scores.json").read_text())["trackers"][0]
    assert set(scores["per_sequence"]) == {"demo_00", "demo_01"}


class RecordingTracker:
    """Returns box (index, 0, 10, 10) for the frame stamped index / 30 and records every call."""

    def __init__(self):
        self.calls = []

    def initialize(self, rgb, thermal, box, stamp=None):
        self.calls.append(("init", stamp))

    def track(self, rgb, thermal, stamp=None):
        self.calls.append(("track", stamp))
        index = round(stamp * 30) if stamp is not None else -1
        return TrackResult(box=np.array([index, 0.0, 10.0, 10.0]), score=1.0, success=True, rgb_weight=1.0,
                           thermal_weight=1.0)


def test_a_frame_schedule_tracks_every_nth_frame_holds_the_box_and_stamps_the_gaps(setup):
    sequence = load_benchmark("gtot", setup / "data", names=["synth_0000"], progress=False)[0]  # 6 frames
    tracker = RecordingTracker()
    boxes, run = track_sequence(tracker, sequence, schedule=FrameSchedule(every=2, first=3))
    assert tracker.calls == [("init", 0.0), ("track", 3 / 30), ("track", 5 / 30)]
    assert boxes[:, 0].tolist() == [sequence.init_box[0], sequence.init_box[0], sequence.init_box[0], 3, 3, 5]
    assert run.frames == 6

    tracker = RecordingTracker()
    track_sequence(tracker, sequence)   # the default: every frame, unstamped, as offline benchmarks run
    assert tracker.calls == [("init", None)] + [("track", None)] * 5
    with pytest.raises(ConfigError, match="every >= 1"):
        FrameSchedule(every=0)


def test_skipped_frames_can_get_the_last_box_moved_by_optical_flow(tmp_path):
    """A textured scene sliding 3 px right and 2 px up per frame; the tracker sees frames 0, 3, 6."""
    step, box = np.array([3.0, -2.0]), np.array([60.0, 50.0, 24.0, 20.0])
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(cv2.resize(rng.integers(0, 255, (40, 50), dtype=np.uint8), (200, 160),
                                          interpolation=cv2.INTER_CUBIC), (5, 5), 1.5)
    paths = []
    for index in range(7):
        shift = np.float32([[1, 0, step[0] * index], [0, 1, step[1] * index]])
        frame = cv2.warpAffine(texture, shift, (200, 160))[20:140, 20:180]
        paths.append(tmp_path / f"{index:04d}.png")
        cv2.imwrite(str(paths[-1]), frame)
    truth = np.array([np.concatenate([box[:2] + step * i, box[2:]]) for i in range(7)])
    sequence = Sequence("slide", "rgbt234", tuple(paths), tuple(paths), truth, truth, truth[0])

    class TrueBoxTracker(RecordingTracker):
        def track(self, rgb, thermal, stamp=None):
            return replace(super().track(rgb, thermal, stamp), box=truth[round(stamp * 30)])

    held, _ = track_sequence(TrueBoxTracker(), sequence, schedule=FrameSchedule(every=3))
    predicted, _ = track_sequence(TrueBoxTracker(), sequence, schedule=FrameSchedule(every=3, predict=True))
    assert np.allclose(held[[1, 2, 4, 5]], truth[[0, 0, 3, 3]])
    assert np.allclose(predicted[:, :2], truth[:, :2], atol=0.5)
    assert np.array_equal(predicted[:, 2:], truth[:, 2:])


def test_every_nth_frame_from_the_command_line_records_its_schedule(setup, tmp_path):
    assert track(setup, tmp_path / "sparse", "--every", "2", "--first-tracked", "3") == 0
    meta = json.loads((tmp_path / "sparse" / "meta" / "synth_0001.json").read_text())
    assert meta["schedule"] == {"every": 2, "first": 3, "camera_fps": 30.0, "predict_skipped": False}
    rows = read_results_dir(tmp_path / "sparse", ["synth_0001"])["synth_0001"]
    np.testing.assert_array_equal(rows[1], rows[0])   # held initial box until frame 3
    np.testing.assert_array_equal(rows[4], rows[3])   # frame 4 holds frame 3's result
