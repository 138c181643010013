"""Offline training: batches, domain schedule, config files, in-process runs and resume equivalence.

The subprocess tests (kill -9 + resume, DDP with two gloo ranks) live in test_training_resume.py
and test_training_ddp.py and import the tiny-dataset helpers from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from m5l_core.config import ConfigError
from m5l_core.datasets import load_benchmark
from m5l_core.geometry import overlap_ratio
from m5l_core.models import M5LNet, load_checkpoint
from m5l_core.training import build_batch, domain_for_step, load_train_config, make_domains, train
from m5l_core.training.cli import main as cli_main
from m5l_core.training.curves import main as curves_main
from m5l_core.training.curves import moving_mean
from m5l_core.training.data import ANCHOR, NEGATIVE, POSITIVE, crop_frame, draw_samples
from m5l_core.training.log import read_log
from m5l_core.training.state import initialise

REPO = Path(__file__).resolve().parents[1]

# Small enough for a 2-core CI box: 88 px crops (conv3 maps of 2x2), few samples, thin fc layers.
TINY_OVERRIDES = [
    "sampling.frames_per_step=2", "sampling.pos_per_frame=6", "sampling.neg_per_frame=12",
    "sampling.target_size=30", "sampling.crop_size=88", "model.fc_dim=16", "model.embedding_dim=8",
    "model.attention_hidden=8", "data.prefetch=1", "progress=false", "checkpoint_every=2",
]


def write_tiny_gtot(root: Path, sequences: int = 2, frames: int = 5, size: int = 64) -> Path:
    """GTOT-layout sequences of a bright square drifting over noise (RGB) and a warm blob (thermal)."""
    rng = np.random.default_rng(7)
    for s in range(sequences):
        seq = root / f"seq{s}"
        (seq / "v").mkdir(parents=True)
        (seq / "i").mkdir()
        rows = []
        for f in range(frames):
            x, y, w, h = 12 + 3 * f + 2 * s, 16 + 2 * f, 18, 14
            rgb = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            rgb[y:y + h, x:x + w] = (220, 60 + 40 * s, 40)
            thermal = rng.integers(0, 40, (size, size), dtype=np.uint8)
            thermal[y:y + h, x:x + w] = 230
            cv2.imwrite(str(seq / "v" / f"{f + 1:05d}v.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(seq / "i" / f"{f + 1:05d}i.png"), thermal)
            rows.append(f"{x} {y} {x + w} {y + h}\n")
        (seq / "groundTruth_v.txt").write_text("".join(rows))
        (seq / "groundTruth_i.txt").write_text("".join(rows))
    return root


def tiny_config(root: Path, iterations: int = 4, extra: list[str] | None = None):
    overrides = [*TINY_OVERRIDES, "data.dataset=gtot", f"data.root={root}", f"iterations={iterations}",
                 "device=cpu", *(extra or [])]
    return load_train_config(None, overrides)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return write_tiny_gtot(tmp_path_factory.mktemp("tiny_gtot"))


@pytest.fixture(scope="module")
def tiny_domains(tiny_root):
    return make_domains(load_benchmark("gtot", root=tiny_root, require_images=True), 4.0)


def test_batch_layout_labels_and_determinism(tiny_domains, tiny_root):
    config = tiny_config(tiny_root)
    batch = build_batch(tiny_domains, 3, 0, 1, config.seed, config.sampling, config.data.preprocess)
    per_frame = 1 + 6 + 12
    assert batch.rgb.shape == (2, 88, 88, 3) and batch.thermal.shape == (2, 88, 88, 3)
    assert batch.rois.shape == (2 * per_frame, 5)
    np.testing.assert_array_equal(batch.rois[:, 0], np.repeat([0, 1], per_frame))
    expected = np.concatenate([[ANCHOR], np.full(6, POSITIVE), np.full(12, NEGATIVE)])
    np.testing.assert_array_equal(batch.kinds, np.tile(expected, 2))
    again = build_batch(tiny_domains, 3, 0, 1, config.seed, config.sampling, config.data.preprocess)
    np.testing.assert_array_equal(again.rois, batch.rois)
    np.testing.assert_array_equal(again.rgb, batch.rgb)
    other = build_batch(tiny_domains, 4, 0, 1, config.seed, config.sampling, config.data.preprocess)
    assert not np.array_equal(other.rois, batch.rois)


def test_thermal_crop_is_cut_from_the_same_region(tiny_domains, tiny_root):
    config = tiny_config(tiny_root, extra=["sampling.scale_jitter=1.0"])
    batch = build_batch(tiny_domains, 1, 0, 1, 0, config.sampling, config.data.preprocess)
    # The target is centred at target_size px: bright in the thermal crop's centre, dark at the corner.
    centre = batch.thermal[:, 40:48, 40:48].mean()
    corner = batch.thermal[:, :6, :6].mean()
    assert centre > 200 > 60 > corner


@pytest.mark.parametrize("stretch, expected", [(1.0, (80.0, 80.0)), (0.0, (40.0, 160.0))])
def test_training_crop_keeps_a_thin_targets_aspect_as_far_as_crop_stretch_says(tiny_root, stretch, expected):
    config = tiny_config(tiny_root, extra=["sampling.scale_jitter=1.0", "sampling.target_size=80",
                                           "sampling.crop_size=240", f"sampling.crop_stretch={stretch}"])
    frame = np.zeros((400, 300, 3), np.uint8)             # large enough: the crops never reach the border
    frame[160:240, 100:120] = 255                         # a 20 x 80 target, bright in both modalities
    rgb, thermal, target = crop_frame(frame, frame, np.array([100.0, 160.0, 20.0, 80.0]),
                                      config.sampling, np.random.default_rng(0))
    np.testing.assert_allclose(target[2:], expected)
    np.testing.assert_allclose(target[:2] + target[2:] / 2, [120.0, 120.0])
    x, y, w, h = np.round(target).astype(int)
    assert thermal[y + 2:y + h - 2, x + 2:x + w - 2].min() == 255      # the box holds the target
    assert rgb[:, :max(x - 2, 1)].max() == 0 and rgb[:max(y - 2, 1)].max() == 0


def test_samples_respect_the_iou_ranges(tiny_root):
    config = tiny_config(tiny_root, extra=["sampling.pos_per_frame=64", "sampling.neg_per_frame=196"])
    target = np.array([29.0, 29.0, 30.0, 30.0])
    positives, negatives = draw_samples(target, 88, config.sampling, np.random.default_rng(0))
    assert positives.shape == (64, 4) and negatives.shape == (196, 4)
    assert overlap_ratio(positives, target).min() >= 0.7
    assert overlap_ratio(negatives, target).max() <= 0.5


def test_domain_schedule_covers_every_domain_and_shards_ranks():
    epoch = [domain_for_step(step, 0, 1, 5, seed=3) for step in range(5)]
    assert sorted(epoch) == list(range(5))
    for domains, world in ((4, 2), (3, 2), (5, 3)):
        for step in range(12):
            dealt = {domain_for_step(step, rank, world, domains, seed=1) for rank in range(world)}
            assert len(dealt) == world
    assert domain_for_step(7, 1, 2, 4, seed=1) == domain_for_step(7, 1, 2, 4, seed=1)


@pytest.mark.parametrize("name", ["train_synthetic", "train_gtot", "train_rgbt234", "train_lasher"])
def test_shipped_configs_load(name):
    config = load_train_config(str(REPO / "config" / f"{name}.yaml"))
    assert config.sampling.pos_per_frame == 64 and config.sampling.neg_per_frame == 196
    assert config.optim.conv_lr == pytest.approx(1e-4) and config.optim.fc_lr == pytest.approx(1e-3)


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampling:\n  pos_per_frme: 3\n")
    with pytest.raises(ConfigError, match="pos_per_frme"):
        load_train_config(str(bad))
    with pytest.raises(ConfigError, match="overlaps"):
        load_train_config(None, ["sampling.pos_iou=[0.4, 1.0]"])
    with pytest.raises(ConfigError, match="init"):
        load_train_config(None, ["init=imagenet"])


def test_cli_reports_user_errors_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  conv_lr: fast\n")
    assert cli_main(["--config", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err
    assert cli_main(["--dataset", "gtot", "--out", str(tmp_path / "out")]) == 2
    assert "--dataset-root" in capsys.readouterr().err


def test_training_writes_log_checkpoint_model_and_summary(tiny_root, tmp_path):
    out = tmp_path / "run"
    summary = train(tiny_config(tiny_root, iterations=3), out)
    records = read_log(out / "train_log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for key in ("ce", "mmsl", "l_rgb", "l_thermal", "l_cross", "pos_in_interval", "neg_in_interval",
                "accuracy"):
        assert all(np.isfinite(r[key]) for r in records), key
    model, model_config, extra = load_checkpoint(out / "checkpoint.pt")
    assert extra["step"] == 3 and "optimizer" in extra and model.num_domains == 2
    _, _, model_extra = load_checkpoint(out / "model.pt")
    assert "optimizer" not in model_extra
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["steps_this_run"] == summary["steps_this_run"] == 3
    assert on_disk["trend"]["ce"]["last"] is not None
    curves = cv2.imread(str(out / "training_curves.png"))
    assert curves is not None and curves.shape[0] > curves.shape[1] > 200
    assert not list(out.glob(".*.tmp"))


def test_refuses_to_overwrite_a_run_without_resume(tiny_root, tmp_path):
    out = tmp_path / "run"
    train(tiny_config(tiny_root, iterations=1), out)
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_config(tiny_root, iterations=2), out)


def test_resumed_run_matches_an_uninterrupted_one(tiny_root, tmp_path):
    straight = train(tiny_config(tiny_root, iterations=4), tmp_path / "straight")
    train(tiny_config(tiny_root, iterations=2), tmp_path / "split")
    resumed = train(tiny_config(tiny_root, iterations=4), tmp_path / "split", resume=True)
    assert resumed["resumed_from_step"] == 2 and resumed["steps_this_run"] == 2
    assert resumed["rank_fingerprints"] == straight["rank_fingerprints"]
    log = read_log(tmp_path / "split" / "train_log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]


def test_ablation_without_mmsl_trains_on_cross_entropy_only(tiny_root, tmp_path):
    config = tiny_config(tiny_root, iterations=1, extra=["ablation=rtmdnet_rgbt"])
    train(config, tmp_path / "run")
    record = read_log(tmp_path / "run" / "train_log.jsonl")[0]
    assert record["mmsl"] is None and np.isfinite(record["ce"])
    _, model_config, _ = load_checkpoint(tmp_path / "run" / "model.pt")
    assert model_config.fusion == "concat" and not model_config.use_embedding


def test_synthetic_dataset_is_generated_once_and_read_with_the_loaders(tmp_path):
    overrides = [*TINY_OVERRIDES, "iterations=1", "device=cpu", "data.dataset=synthetic",
                 "data.synthetic_sequences=2", "data.synthetic.width=96", "data.synthetic.height=96",
                 "data.synthetic.n_frames=3"]
    summary = train(load_train_config(None, overrides), tmp_path / "run")
    assert summary["domains"] == 2
    assert (tmp_path / "run" / "synthetic" / "list.txt").read_text().split() == ["synth_0000", "synth_0001"]


def test_init_from_a_checkpoint_keeps_features_and_makes_new_heads(tiny_root, tmp_path):
    train(tiny_config(tiny_root, iterations=1), tmp_path / "source")
    source, model_config, _ = load_checkpoint(tmp_path / "source" / "model.pt")
    target = M5LNet(model_config, num_domains=5)
    initialise(target, f"checkpoint:{tmp_path / 'source' / 'model.pt'}", torch.device("cpu"))
    assert len(target.domain_heads) == 5
    torch.testing.assert_close(target.rgb_stream.state_dict(), source.rgb_stream.state_dict())
    torch.testing.assert_close(target.fc5.weight, source.fc5.weight)


def test_moving_mean_is_trailing_and_skips_missing_values():
    values = np.array([1.0, 3.0, np.nan, 5.0, 7.0])
    np.testing.assert_allclose(moving_mean(values, 2), [1.0, 2.0, 3.0, 5.0, 6.0])
    assert np.isnan(moving_mean(np.array([np.nan, 1.0]), 1)[0])


def test_curves_cli_replots_a_log_and_names_a_missing_one(tiny_root, tmp_path, capsys):
    train(tiny_config(tiny_root, iterations=2), tmp_path / "run")
    assert curves_main([str(tmp_path / "run"), "--out", str(tmp_path / "c.png"), "--window", "1"]) == 0
    assert cv2.imread(str(tmp_path / "c.png")) is not None
    with pytest.raises(SystemExit) as exit_info:
        curves_main([str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "nowhere/train_log.jsonl" in capsys.readouterr().err
