"""M5LNet: shapes, ablation switches, fusion, parameter groups, determinism."""

import pytest
import torch

from m5l_core.config import ConfigError, from_dict
from m5l_core.losses import LossConfig
from m5l_core.models import ABLATIONS, M5LNet, ModelConfig, apply_ablation, conv3_size
from m5l_core.models.fusion import fusion_flops

SIZE = 91  # smallest-ish input with a 3x3 conv3 map: keeps the tests fast


def make(name="m5l", num_domains=2, seed=0, **overrides):
    torch.manual_seed(seed)
    cfg, _ = apply_ablation(name, ModelConfig(**overrides), LossConfig())
    return M5LNet(cfg, num_domains)


def inputs(batch=1, seed=1):
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.randn(batch, 3, SIZE, SIZE, generator=gen) * 50
    thermal = torch.randn(batch, 3, SIZE, SIZE, generator=gen) * 50
    # Boxes inside the 3x3 conv3 map (feature cells at 0, 8 and 16 px after the RoI scaling).
    rois = torch.tensor([[0, 0.0, 0.0, 20.0, 20.0], [0, 4.0, 2.0, 16.0, 18.0],
                         [batch - 1, 6.0, 8.0, 14.0, 18.0]])
    return rgb, thermal, rois


def test_shapes_of_every_stage():
    model = make().eval()
    rgb, thermal, rois = inputs(batch=2)
    feats = model.features(rgb, thermal)
    side = conv3_size(SIZE)
    assert side == 3 and all(f.shape == (2, 512, side, side) for f in feats)
    pooled = model.pool(feats, rois)
    assert all(p.shape == (3, 512, 3, 3) for p in pooled)
    fused, weights = model.fuse(pooled)
    assert fused.shape == (3, 2 * 512 * 9) and weights.shape == (3, 2)
    emb_rgb, emb_t = model.embed(pooled)
    assert emb_rgb.shape == (3, 128) and torch.allclose(emb_rgb.norm(dim=1), torch.ones(3))
    assert torch.allclose(emb_t.norm(dim=1), torch.ones(3))
    assert model.fc5_features(fused).shape == (3, 512)
    assert model.classify(fused, 1).shape == (3, 2)
    assert model.classify(fused, model.new_head()).shape == (3, 2)
    out = model(rgb, thermal, rois, 0)
    assert out.logits.shape == (3, 2) and out.emb_rgb.shape == (3, 128)
    assert out.modality_weights.shape == (3, 2)


def test_a_head_from_the_domains_scores_as_the_domain_heads_do_on_average():
    model = make(num_domains=3).eval()
    with torch.no_grad():
        for i, head in enumerate(model.domain_heads):   # trained heads differ; fresh ones are all near zero
            head.weight.normal_(std=1.0, generator=torch.Generator().manual_seed(i))
            head.bias.fill_(float(i))
    fused, _ = model.fuse(model.pool(model.features(*inputs()[:2]), inputs()[2]))
    mean_logits = torch.stack([model.classify(fused, d) for d in range(3)]).mean(dim=0)
    assert torch.allclose(model.classify(fused, model.new_head(from_domains=True)), mean_logits, atol=1e-5)
    assert not torch.allclose(model.classify(fused, model.new_head()), mean_logits, atol=1e-2)
    # without trained domain heads a fresh head is MDNet's random one
    assert make(num_domains=0).new_head(from_domains=True).weight.std() < 0.05


def test_conv3_size_matches_the_network():
    model = make(num_domains=0)
    for side in (75, 82, 83, 107, 120):
        x = torch.zeros(1, 3, side, 76)
        assert model.rgb_stream(x).shape[2] == conv3_size(side)


def test_two_streams_same_architecture_independent_weights():
    model = make()
    assert [type(m) for m in model.rgb_stream] == [type(m) for m in model.thermal_stream]
    assert not torch.equal(model.rgb_stream.conv1.weight, model.thermal_stream.conv1.weight)
    assert model.rgb_stream.conv3.dilation == (3, 3)


def test_twin_streams_run_as_one_batch():
    model = make().eval()
    assert not model.streams_are_twins()   # independent weights per modality by default
    model.thermal_stream.load_state_dict(model.rgb_stream.state_dict())
    assert model.streams_are_twins()
    rgb, thermal, _ = inputs(batch=2)
    with torch.no_grad():
        apart, batched = model.features(rgb, thermal), model.features(rgb, thermal, twins=True)
    for one, other in zip(apart, batched, strict=True):
        torch.testing.assert_close(one, other, rtol=1e-5, atol=1e-4)


def test_attention_weights_are_reported_per_modality():
    model = make().eval()
    rgb, thermal, rois = inputs()
    pooled = model.pool(model.features(rgb, thermal), rois)
    fused, weights = model.fuse(pooled)
    assert torch.all((weights > 0) & (weights < 1))
    # The fused features are the pooled features scaled channel-wise (Eq. 16); the reported
    # modality weight is the mean of the scales applied to that modality.
    both = torch.cat(pooled, dim=1)
    scales = model.fusion.attention(both.mean(dim=(2, 3), keepdim=True))
    # (summation order differs: the module runs its 1x1 convolutions as linear layers)
    assert torch.allclose(fused, (both * scales).flatten(1), rtol=1e-4, atol=1e-5)
    assert torch.allclose(weights, scales.flatten(1).view(-1, 2, 512).mean(2), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(scales, scales.flatten()[0])  # channel-wise, not one global weight


def test_concat_ablation_reports_unit_weights_and_plain_features():
    model = make("no_attention").eval()
    rgb, thermal, rois = inputs()
    pooled = model.pool(model.features(rgb, thermal), rois)
    fused, weights = model.fuse(pooled)
    assert torch.equal(weights, torch.ones(3, 2))
    assert torch.equal(fused, torch.cat(pooled, dim=1).flatten(1))
    assert not any("fusion" in name for name, _ in model.named_parameters())


def test_baseline_has_no_embedding_or_attention():
    model = make("rtmdnet_rgbt")
    out = model(*inputs(), domain=0)
    assert out.emb_rgb is None and out.emb_thermal is None
    with pytest.raises(RuntimeError, match="no embedding"):
        model.embed((torch.zeros(2, 512, 3, 3), torch.zeros(2, 512, 3, 3)))
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in make().parameters())


def test_every_ablation_maps_to_configs():
    expected = {
        "m5l": ("attention", True, True, True, True),
        "no_attention": ("concat", True, True, True, True),
        "no_mmsl": ("attention", False, False, True, True),
        "no_cross": ("attention", True, True, False, True),
        "no_modality_losses": ("attention", True, True, True, False),
        "rtmdnet_rgbt": ("concat", False, False, True, True),
    }
    assert set(ABLATIONS) == set(expected)
    for name, (fusion, embedding, mmsl, cross, modality) in expected.items():
        model_cfg, loss_cfg = apply_ablation(name, ModelConfig(), LossConfig())
        assert (model_cfg.fusion, model_cfg.use_embedding) == (fusion, embedding)
        switches = (loss_cfg.use_mmsl, loss_cfg.use_cross, loss_cfg.use_modality_losses)
        assert switches == (mmsl, cross, modality)
    with pytest.raises(ConfigError, match="unknown ablation"):
        apply_ablation("no_such", ModelConfig(), LossConfig())


def test_parameter_groups_partition_the_model():
    model = make()
    conv, fc = model.conv_parameters(), model.fc_parameters()
    assert {id(p) for p in conv}.isdisjoint(id(p) for p in fc)
    assert len(conv) + len(fc) == len(list(model.parameters()))
    assert len(conv) == 12  # 3 convs x (weight, bias) x 2 streams
    assert {id(p) for p in model.head_parameters()} <= {id(p) for p in fc}


def test_deterministic_for_a_seed_on_cpu():
    rgb, thermal, rois = inputs()
    first = make(seed=7).eval()(rgb, thermal, rois, 0).logits
    second = make(seed=7).eval()(rgb, thermal, rois, 0).logits
    assert torch.equal(first, second)


def test_gradients_reach_both_streams():
    model = make().train()
    out = model(*inputs(), domain=1)
    (out.logits.sum() + out.emb_rgb.sum() + out.emb_thermal.sum()).backward()
    assert model.rgb_stream.conv1.weight.grad.abs().sum() > 0
    assert model.thermal_stream.conv1.weight.grad.abs().sum() > 0
    assert model.domain_heads[0].weight.grad is None  # only the chosen domain's head is used


def test_bad_inputs_raise_clear_errors():
    model = make()
    rgb, thermal, rois = inputs()
    with pytest.raises(ValueError, match="75-pixel minimum of the vggm backbone"):
        model.features(rgb[..., :60, :60], thermal[..., :60, :60])
    with pytest.raises(ValueError, match="differ"):
        model.features(rgb, thermal[..., :80, :80])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.features(rgb[:, :1], thermal)
    with pytest.raises(IndexError, match="domain 5"):
        model.classify(torch.zeros(1, 9216), 5)
    with pytest.raises(ConfigError, match="fusion"):
        from_dict(ModelConfig, {"fusion": "sum"})


def test_attention_cost_is_small_against_the_conv_features():
    # 256 candidates per frame vs ~9.3 GFLOP for two conv1-3 streams on a 321x321 crop.
    assert fusion_flops(512, ModelConfig().attention_hidden, 256) / 9.3e9 < 0.05


def test_pool_follows_the_roi_config():
    from m5l_core.models.roi_align import roi_align

    model = make(roi_adaptive=False, roi_sampling=2, roi_reduce="avg")
    feats = (torch.randn(1, 512, 4, 4), torch.randn(1, 512, 4, 4))
    rois = torch.tensor([[0, 1.0, 2.0, 20.0, 25.0]])
    pooled = model.pool(feats, rois)
    assert torch.equal(pooled[1], roi_align(feats[1], rois, 3, adaptive=False, sampling=2, reduce="avg"))
