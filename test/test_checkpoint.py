"""Checkpoints: round trip, fp16 export, corrupt files, config mismatches, the bundled models."""

import dataclasses
from pathlib import Path

import pytest
import torch

from m5l_core.config import to_dict
from m5l_core.models import CheckpointError, M5LNet, ModelConfig, load_checkpoint, save_checkpoint

SIZE = 91
ROIS = torch.tensor([[0, 0.0, 0.0, 20.0, 20.0], [0, 4.0, 2.0, 16.0, 18.0]])


def model_and_input(config=None, num_domains=2):
    torch.manual_seed(0)
    model = M5LNet(config or ModelConfig(), num_domains).eval()
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(2, 1, 3, SIZE, SIZE, generator=gen) * 40
    return model, images[0], images[1]


def test_round_trip_with_training_state(tmp_path):
    model, rgb, thermal = model_and_input()
    optimizer = torch.optim.SGD(model.fc_parameters(), lr=0.1, momentum=0.9)
    for param in model.fc_parameters():
        param.grad = torch.full_like(param, 1e-3)
    optimizer.step()  # creates momentum buffers: optimizer state must survive weights_only loading
    extra = {"optimizer": optimizer.state_dict(), "step": 7, "torch_rng": torch.get_rng_state(),
             "train_config": {"lr": 0.1, "names": ["a", "b"]}}
    path = save_checkpoint(tmp_path / "run" / "ckpt.pt", model, model.config, extra)
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temporary file left behind
    loaded, config, got_extra = load_checkpoint(path)
    assert config == model.config and loaded.num_domains == 2 and not loaded.training
    assert got_extra["step"] == 7 and got_extra["train_config"]["names"] == ["a", "b"]
    torch.optim.SGD(loaded.fc_parameters(), lr=0.1, momentum=0.9).load_state_dict(got_extra["optimizer"])
    with torch.no_grad():
        assert torch.equal(loaded(rgb, thermal, ROIS, 1).logits, model(rgb, thermal, ROIS, 1).logits)


def test_ablation_config_round_trips(tmp_path):
    config = ModelConfig(fusion="concat", use_embedding=False, embedding_dim=64)
    model, _, _ = model_and_input(config, num_domains=0)
    loaded, got, _ = load_checkpoint(save_checkpoint(tmp_path / "c.pt", model, config))
    assert got == config and loaded.embed_rgb is None and loaded.num_domains == 0


def test_half_export_is_small_and_loads_as_float32(tmp_path):
    model, rgb, thermal = model_and_input(num_domains=0)
    full = save_checkpoint(tmp_path / "full.pt", model, model.config)
    half = save_checkpoint(tmp_path / "half.pt", model, model.config, half=True)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    assert half.stat().st_size < 25 * 1024 * 1024  # the bundled default model budget
    loaded, _, _ = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    with torch.no_grad():
        head = model.new_head()
        fused_a = model.fuse(model.pool(model.features(rgb, thermal), ROIS))[0]
        fused_b = loaded.fuse(loaded.pool(loaded.features(rgb, thermal), ROIS))[0]
    assert (fused_a - fused_b).abs().max() < 1e-2 * fused_a.abs().max()  # fp16 rounding only
    assert head.weight.dtype == torch.float32


def test_missing_corrupt_and_foreign_files(tmp_path):
    model, _, _ = model_and_input(num_domains=0)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    good = save_checkpoint(tmp_path / "good.pt", model, model.config)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated.pt.*not a readable checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": model.state_dict()}, foreign)
    with pytest.raises(CheckpointError, match="not an M5L checkpoint"):
        load_checkpoint(foreign)
    future = tmp_path / "future.pt"
    raw = torch.load(good, weights_only=True)
    torch.save({**raw, "version": 99}, future)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(future)


def test_config_mismatches_are_errors(tmp_path):
    model, _, _ = model_and_input(num_domains=1)
    raw_path = save_checkpoint(tmp_path / "m.pt", model, model.config)
    raw = torch.load(raw_path, weights_only=True)
    # Weights of the attention model declared as the concat ablation.
    lying = tmp_path / "lying.pt"
    torch.save({**raw, "model_config": to_dict(dataclasses.replace(model.config, fusion="concat"))}, lying)
    with pytest.raises(CheckpointError, match="lying.pt: weights do not match"):
        load_checkpoint(lying)
    unknown = tmp_path / "unknown.pt"
    torch.save({**raw, "model_config": {**raw["model_config"], "fc7_dim": 3}}, unknown)
    with pytest.raises(CheckpointError, match="fc7_dim"):
        load_checkpoint(unknown)
    domains = tmp_path / "domains.pt"
    torch.save({**raw, "num_domains": 3}, domains)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(domains)


def test_reserved_extra_keys_rejected(tmp_path):
    model, _, _ = model_and_input(num_domains=0)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", model, model.config, {"state_dict": {}})


def test_bundled_models_are_named_and_the_realtime_one_runs_the_stride_16_trunk():
    from m5l_core.tracking.loading import BUNDLED_MODELS, checkpoint_path, default_model_path

    assert checkpoint_path(None) == checkpoint_path("bundled:default") == default_model_path()
    assert checkpoint_path("runs/x/model.pt") == Path("runs/x/model.pt")
    for name, path in BUNDLED_MODELS.items():
        assert path.is_file() and path.stat().st_size < 8_000_000, name   # committed, float16
    _, realtime, _ = load_checkpoint(checkpoint_path("bundled:realtime"))
    _, default, _ = load_checkpoint(default_model_path())
    assert (realtime.backbone, default.backbone) == ("effnet_lite0_s16", "effnet_lite0")
    with pytest.raises(CheckpointError, match="bundled:fast.*bundled:default, bundled:realtime"):
        checkpoint_path("bundled:fast")
