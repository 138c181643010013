"""Initialisation of both streams from a MatConvNet imagenet-vgg-m.mat (written here with scipy)."""

import numpy as np
import pytest
import scipy.io
import torch

from m5l_core.models import M5LNet, ModelConfig, VggmInitError, init_from_vgg_m_mat
from m5l_core.models.vggm import CONV_SHAPES, MAT_LAYER_INDICES


def write_vggm_mat(path, shapes=CONV_SHAPES, seed=0):
    """A `layers` cell array like MatConvNet's: conv structs at 0, 4, 8 with weights = {W HxWxCinxCout, b}."""
    rng = np.random.default_rng(seed)
    layers = np.empty((1, 10), dtype=object)
    for index in range(10):
        layers[0, index] = {"name": f"layer{index}", "type": "relu"}
    expected = []
    for index, (cout, cin, kh, kw) in zip(MAT_LAYER_INDICES, shapes, strict=True):
        weight = rng.standard_normal((kh, kw, cin, cout)).astype(np.float32)
        bias = rng.standard_normal((cout, 1)).astype(np.float32)
        cell = np.empty((1, 2), dtype=object)
        cell[0, 0], cell[0, 1] = weight, bias
        layers[0, index] = {"name": f"conv{index // 4 + 1}", "type": "conv", "weights": cell}
        expected.append((weight, bias))
    scipy.io.savemat(path, {"layers": layers})
    return expected


def test_loads_conv1_to_3_into_both_streams(tmp_path):
    path = tmp_path / "imagenet-vgg-m.mat"
    expected = write_vggm_mat(path)
    torch.manual_seed(0)
    model = M5LNet(ModelConfig(), num_domains=1)
    fc4_before = model.fc4.weight.clone()
    init_from_vgg_m_mat(model, path)
    for stream in (model.rgb_stream, model.thermal_stream):
        for conv, (weight, bias) in zip((stream.conv1, stream.conv2, stream.conv3), expected, strict=True):
            # MatConvNet H x W x Cin x Cout -> torch Cout x Cin x H x W.
            assert torch.equal(conv.weight, torch.from_numpy(weight.transpose(3, 2, 0, 1)))
            assert torch.equal(conv.bias, torch.from_numpy(bias[:, 0]))
            assert conv.weight[5, 2, 1, 0] == float(weight[1, 0, 2, 5])
    assert torch.equal(model.fc4.weight, fc4_before)  # fc layers untouched


def test_bad_files_give_clear_errors(tmp_path):
    model = M5LNet(ModelConfig(), num_domains=0)
    with pytest.raises(VggmInitError, match="not found"):
        init_from_vgg_m_mat(model, tmp_path / "missing.mat")
    garbage = tmp_path / "garbage.mat"
    garbage.write_bytes(b"this is not a mat file" * 10)
    with pytest.raises(VggmInitError, match="not a readable"):
        init_from_vgg_m_mat(model, garbage)
    no_layers = tmp_path / "no_layers.mat"
    scipy.io.savemat(no_layers, {"net": np.zeros(3)})
    with pytest.raises(VggmInitError, match="no 'layers'"):
        init_from_vgg_m_mat(model, no_layers)
    wrong = tmp_path / "wrong.mat"
    write_vggm_mat(wrong, shapes=((96, 3, 5, 5), *CONV_SHAPES[1:]))
    with pytest.raises(VggmInitError, match=r"layers\[0\].*do not match"):
        init_from_vgg_m_mat(model, wrong)
    not_conv = tmp_path / "not_conv.mat"
    layers = np.empty((1, 9), dtype=object)
    for index in range(9):
        layers[0, index] = {"name": "x", "type": "relu"}
    scipy.io.savemat(not_conv, {"layers": layers})
    with pytest.raises(VggmInitError, match="expected a struct with 'weights'"):
        init_from_vgg_m_mat(model, not_conv)


def test_lrn_uses_the_matconvnet_formula():
    from m5l_core.models.vggm import LocalResponseNorm

    x = torch.randn(2, 7, 3, 3) * 30
    got = LocalResponseNorm(5, 1e-4, 0.75, 2.0)(x)
    squares = torch.nn.functional.pad(x.pow(2), (0, 0, 0, 0, 2, 2))
    window = sum(squares[:, i:i + 7] for i in range(5))
    assert torch.allclose(got, x / (2.0 + 1e-4 * window) ** 0.75, rtol=1e-5)


@pytest.mark.parametrize("size", [3, 4, 5])
def test_lrn_matches_torch_for_every_window_and_memory_layout(size):
    from m5l_core.models.vggm import LocalResponseNorm

    x = torch.relu(torch.randn(2, 96, 9, 11) * 40).contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.local_response_norm(x, size, alpha=1e-4 * size, beta=0.75, k=2.0)
    lrn = LocalResponseNorm(size, 1e-4, 0.75, 2.0)
    assert torch.allclose(lrn(x), expected, rtol=1e-5, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):   # computed in float32 even under autocast
        under_autocast = lrn(x.bfloat16())
    assert under_autocast.dtype == torch.float32
    assert torch.allclose(under_autocast, lrn(x.bfloat16().float()), rtol=1e-6)
