"""Backbones: shapes, stride and receptive-field centre of each stream, ImageNet weights from a file
written here in the package's own format, and the whole network on every backbone."""

import numpy as np
import pytest
import torch

from m5l_core.models import M5LNet, ModelConfig, apply_ablation, effnet
from m5l_core.models.backbones import BACKBONES, backbone_geometry, make_stream
from m5l_core.models.effnet import (
    BackboneWeightsError,
    EfficientNetLite0Trunk,
    MBConv,
    load_imagenet_weights,
    set_fused_convs,
)
from m5l_core.tracking.search import region_around


def lite0_state_dict(trunk: EfficientNetLite0Trunk, seed: int = 0) -> dict:
    """A state dict in the layout of ``efficientnet-lite0-57934424.pth`` (convs without bias + BN)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}

    def add(conv, conv_key, bn_key):
        state[conv_key + ".weight"] = torch.randn(conv.weight.shape, generator=gen) * 0.1
        channels = conv.weight.shape[0]
        state[bn_key + ".weight"] = torch.rand(channels, generator=gen) + 0.5
        state[bn_key + ".bias"] = torch.randn(channels, generator=gen) * 0.1
        state[bn_key + ".running_mean"] = torch.randn(channels, generator=gen) * 0.1
        state[bn_key + ".running_var"] = torch.rand(channels, generator=gen) + 0.5
        state[bn_key + ".num_batches_tracked"] = torch.tensor(0)

    add(trunk.stem, "_conv_stem", "_bn0")
    for i, block in enumerate(trunk.blocks):
        if block.expand is not None:
            add(block.expand, f"_blocks.{i}._expand_conv", f"_blocks.{i}._bn0")
        add(block.depthwise, f"_blocks.{i}._depthwise_conv", f"_blocks.{i}._bn1")
        add(block.project, f"_blocks.{i}._project_conv", f"_blocks.{i}._bn2")
    state["_fc.weight"] = torch.zeros(1000, 1280)   # the classifier is in the file and is ignored
    return state


def bn_reference(state: dict, x: torch.Tensor) -> torch.Tensor:
    """Stem conv + BN + ReLU6 computed from the raw file, the way the original network does."""
    y = torch.nn.functional.conv2d(x / 128.0, state["_conv_stem.weight"], stride=2, padding=1)
    y = torch.nn.functional.batch_norm(y, state["_bn0.running_mean"], state["_bn0.running_var"],
                                       state["_bn0.weight"], state["_bn0.bias"], False, 0.0, 1e-3)
    return torch.nn.functional.relu6(y)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_stream_channels_and_stride(backbone):
    geometry = backbone_geometry(backbone)
    stream = make_stream(ModelConfig(backbone=backbone)).eval()
    with torch.no_grad():
        small = stream(torch.zeros(1, 3, 160, 160))
        large = stream(torch.zeros(1, 3, 160 + geometry.stride * 5, 160))
    assert small.shape[1] == geometry.channels
    assert large.shape[2] - small.shape[2] == 5          # one stride more pixels = one more cell
    assert large.shape[3] == small.shape[3]
    assert (geometry.stride, geometry.channels) == {"vggm": (8, 512), "effnet_lite0": (8, 112),
                                                    "effnet_lite0_s16": (16, 112),
                                                    "effnet_lite0_stage4": (8, 80)}[backbone]


def test_stride_16_trunk_has_the_stride_8_trunks_parameters_without_the_dilation():
    """One ImageNet file (or checkpoint) serves both: same parameter names and shapes, and the
    stride-16 trunk is Lite0 as trained (stage 4 halves the map, no dilated conv)."""
    dense, coarse = EfficientNetLite0Trunk(output_stride=8), EfficientNetLite0Trunk(output_stride=16)
    assert {k: v.shape for k, v in dense.state_dict().items()} == \
        {k: v.shape for k, v in coarse.state_dict().items()}
    assert all(block.depthwise.dilation == (1, 1) for block in coarse.blocks)
    assert sum(block.depthwise.stride == (2, 2) for block in coarse.blocks) == 3
    x = torch.randn(1, 3, 96, 128) * 50
    with torch.no_grad():
        assert dense(x).shape[-2:] == (12, 16) and coarse(x).shape[-2:] == (6, 8)
    with pytest.raises(ValueError, match="output_stride"):
        EfficientNetLite0Trunk(output_stride=4)


def test_stage_4_trunk_is_the_first_eight_blocks_of_the_full_one(tmp_path):
    """The cheaper cut reads the same ImageNet file and computes exactly the full trunk's stage-4 map."""
    full, cut = EfficientNetLite0Trunk().eval(), EfficientNetLite0Trunk(stages=4).eval()
    path = tmp_path / "lite0.pth"
    torch.save(lite0_state_dict(full), path)
    load_imagenet_weights(full, path)
    load_imagenet_weights(cut, path)
    assert len(cut.blocks) == 8
    x = torch.randn(1, 3, 64, 96) * 50
    with torch.no_grad():
        expected = full.blocks[:8](torch.nn.functional.relu6(full.stem(x / 128.0)))
        torch.testing.assert_close(cut(x), expected)
    with pytest.raises(ValueError, match="stages"):
        EfficientNetLite0Trunk(stages=3)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_feature_cell_is_centred_where_the_geometry_says(backbone):
    """The input pixel with the largest gradient into a cell is the cell's receptive-field centre."""
    geometry = backbone_geometry(backbone)
    torch.manual_seed(0)
    stream = make_stream(ModelConfig(backbone=backbone)).eval()
    # Wide enough that Lite0's 339-pixel field around column 320 stays inside the image.
    image = torch.zeros(1, 3, 96, 720, requires_grad=True)
    out = stream(image + 20.0 * torch.randn(1, 3, 96, 720))
    cell = 320 // geometry.stride
    out[0, :, 2, cell].sum().backward()
    footprint = image.grad[0].abs().sum(0).sum(0).nonzero().flatten()   # columns the cell sees
    centre = (footprint.min().item() + footprint.max().item() + 1) / 2.0
    assert abs(centre - (geometry.stride * cell + geometry.offset)) <= 1.0


def test_imagenet_weights_fold_batchnorm_exactly(tmp_path):
    trunk = EfficientNetLite0Trunk().eval()
    state = lite0_state_dict(trunk)
    path = tmp_path / "efficientnet-lite0.pth"
    torch.save(state, path)
    load_imagenet_weights(trunk, path)
    x = torch.randn(1, 3, 64, 64) * 50
    with torch.no_grad():
        folded = torch.nn.functional.relu6(trunk.stem(x / 128.0))
    torch.testing.assert_close(folded, bn_reference(state, x), rtol=1e-4, atol=1e-4)
    first_expand = state["_blocks.1._expand_conv.weight"]
    assert not torch.equal(trunk.blocks[1].expand.weight, first_expand)   # scaled by gamma / sigma


def test_foreign_weights_file_names_the_file(tmp_path):
    trunk = EfficientNetLite0Trunk()
    wrong = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(BackboneWeightsError, match="other.pth.*_conv_stem"):
        load_imagenet_weights(trunk, wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(BackboneWeightsError, match="garbage.pth"):
        load_imagenet_weights(trunk, garbage)
    with pytest.raises(BackboneWeightsError, match="not found"):
        load_imagenet_weights(trunk, tmp_path / "missing.pth")


def test_model_loads_imagenet_weights_into_both_streams(tmp_path):
    model = M5LNet(ModelConfig(backbone="effnet_lite0"))
    path = tmp_path / "lite0.pth"
    torch.save(lite0_state_dict(model.rgb_stream), path)
    model.load_imagenet(path)
    for name, value in model.rgb_stream.state_dict().items():
        torch.testing.assert_close(value, model.thermal_stream.state_dict()[name])
    with pytest.raises(ValueError, match="imagenet-vgg-m.mat"):
        M5LNet(ModelConfig(backbone="vggm")).load_imagenet(path)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("ablation", ["m5l", "no_attention", "no_mmsl", "rtmdnet_rgbt"])
def test_every_ablation_runs_on_every_backbone(backbone, ablation):
    from m5l_core.losses import LossConfig, training_loss

    model_cfg, loss_cfg = apply_ablation(ablation, ModelConfig(backbone=backbone), LossConfig())
    torch.manual_seed(0)
    model = M5LNet(model_cfg, num_domains=2).train()
    rgb, thermal = torch.randn(2, 3, 120, 120) * 40, torch.randn(2, 3, 120, 120) * 40
    rois = torch.tensor([[0, 10, 10, 60, 60], [0, 12, 14, 58, 66], [1, 0, 0, 100, 100], [1, 40, 30, 90, 80]],
                        dtype=torch.float32)
    out = model(rgb, thermal, rois, domain=1)
    assert out.logits.shape == (4, 2)
    assert (out.emb_rgb is None) == (not model_cfg.use_embedding)
    labels = torch.tensor([1, 1, 0, 0])
    loss, _ = training_loss(out.logits, labels, out.emb_rgb, out.emb_thermal, loss_cfg,
                            anchor_mask=torch.tensor([True, False, True, False]),
                            frame_ids=rois[:, 0].long())
    loss.backward()
    assert model.rgb_stream.parameters().__next__().grad is not None


def test_search_crop_follows_the_backbone_geometry():
    boxes = np.array([[100.0, 100.0, 40.0, 40.0], [120.0, 90.0, 40.0, 40.0]])
    size = np.array([40.0, 40.0])
    vggm = region_around(boxes, size, 1.2, 48, 1024, backbone_geometry("vggm"), 1.0)
    lite0 = region_around(boxes, size, 1.2, 48, 1024, backbone_geometry("effnet_lite0"), 1.0)
    assert vggm.feature_offset == 37.5 and lite0.feature_offset == 0.5
    assert vggm.out_size[0] > lite0.out_size[0]         # the unpadded VGG-M needs a wider margin


def test_zero_conv_lr_freezes_the_streams_and_heads_get_their_own_rate(tmp_path):
    from m5l_core.training.config import OptimConfig
    from m5l_core.training.state import build_optimizer, freeze_streams_without_lr, initialise

    model = M5LNet(ModelConfig(backbone="effnet_lite0"), num_domains=3)
    weights = tmp_path / "lite0.pth"
    torch.save(lite0_state_dict(model.rgb_stream), weights)
    initialise(model, f"imagenet:{weights}", torch.device("cpu"))
    optim = OptimConfig(conv_lr=0.0, fc_lr=0.01, head_lr_mult=5.0)
    freeze_streams_without_lr(model, optim)
    optimizer = build_optimizer(model, optim)
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == {"conv": 0.0, "fc": 0.01, "heads": 0.05}
    before = {k: v.clone() for k, v in model.rgb_stream.state_dict().items()}
    out = model(torch.randn(1, 3, 96, 96) * 40, torch.randn(1, 3, 96, 96) * 40,
                torch.tensor([[0.0, 10, 10, 60, 60], [0.0, 30, 20, 90, 80]]), domain=0)
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([1, 0])).backward()
    assert all(p.grad is None for p in model.conv_parameters())    # no backward through the trunk
    optimizer.step()
    for name, value in model.rgb_stream.state_dict().items():
        torch.testing.assert_close(value, before[name])


def test_imagenet_init_is_refused_for_vggm():
    from m5l_core.config import ConfigError
    from m5l_core.training.config import load_train_config

    with pytest.raises(ConfigError, match="ImageNet backbone"):
        load_train_config(None, ["init=imagenet"])
    config = load_train_config(None, ["init=imagenet", "model.backbone=effnet_lite0"])
    assert config.init == "imagenet"


@pytest.mark.parametrize("precision", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_fused_relu6_convs_compute_what_separate_ops_do(precision, output_stride):
    """The CPU's one-call conv + ReLU6 (oneDNN) gives the trunk's output of separate ops, in float32
    and under bfloat16 autocast, on every kind of conv the trunk has (stem, 1x1, depthwise, strided,
    dilated); the switch reaches every block."""
    if not effnet.fused_op_works(precision):
        pytest.skip("this torch build or CPU has no oneDNN fused convolution in this precision")
    trunk = EfficientNetLite0Trunk(output_stride=output_stride).eval()
    x = (torch.randn(2, 3, 83, 117, generator=torch.Generator().manual_seed(1)) * 60).contiguous(
        memory_format=torch.channels_last)
    trunk.to(memory_format=torch.channels_last)
    outputs = {}
    for fused in (False, True):
        set_fused_convs(trunk, fused)
        parts = [m for m in trunk.modules() if isinstance(m, (MBConv, EfficientNetLite0Trunk))]
        assert all(part.fused is fused for part in parts)
        bf16 = precision == torch.bfloat16
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs[fused] = trunk(x).float()
    scale = outputs[False].abs().max()
    assert scale > 0
    tolerance = 1e-5 if precision == torch.float32 else 2e-2
    assert (outputs[True] - outputs[False]).abs().max() <= tolerance * scale


def test_fused_relu6_conv_keeps_gradients_where_they_are_needed():
    """Where a gradient is needed (a trainable trunk, or an input that wants one) the separate ops
    run, so training through the trunk still gets gradients; the frozen trunk's output is the same."""
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    x = torch.randn(1, 4, 9, 9) * 5
    effnet.conv_relu6(conv, x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    conv.weight.grad = None
    x_grad = x.clone().requires_grad_(True)
    effnet.conv_relu6(conv, x_grad).sum().backward()
    assert x_grad.grad is not None and x_grad.grad.abs().sum() > 0
    conv.requires_grad_(False)
    torch.testing.assert_close(effnet.conv_relu6(conv, x), torch.nn.functional.relu6(conv(x)))


def test_conv_flop_count_sees_fused_convs_and_leaves_the_switch_as_it_was():
    from m5l_core.tracking.bench_report import conv_gflop

    trunk = EfficientNetLite0Trunk(output_stride=8)
    set_fused_convs(trunk, False)
    separate = conv_gflop(trunk, 160, 128)
    set_fused_convs(trunk, True)
    assert conv_gflop(trunk, 160, 128) == separate > 0
    assert all(part.fused for part in trunk.modules() if isinstance(part, (MBConv, EfficientNetLite0Trunk)))


def test_separate_ops_run_where_the_probe_finds_no_working_fused_op(monkeypatch):
    """A torch build or CPU whose fused call is missing or wrong (probed once per precision) keeps
    the separate ops; float16 is never fused."""
    assert not effnet.fused_op_works(torch.float16)
    probed = []
    monkeypatch.setattr(effnet, "fused_op_works", lambda dtype: probed.append(dtype) or False)
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise", None, raising=False)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).requires_grad_(False)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(effnet.conv_relu6(conv, x), torch.nn.functional.relu6(conv(x)))
    assert probed == [torch.float32]
