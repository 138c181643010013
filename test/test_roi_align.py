"""RoIAlign (models/roi_align.py) against a naive per-box, per-cell reference written from the spec."""

import math

import numpy as np
import pytest
import torch

from m5l_core.models.roi_align import (
    BLOCKS_FROM_ROIS,
    CHANNEL_BLOCK,
    FEATURE_OFFSET,
    FEATURE_STRIDE,
    RECEPTIVE_FIELD,
    align_rois_to_receptive_field,
    roi_align,
)

SCALE = 1.0 / FEATURE_STRIDE


def cell_edges(lo, hi, cells):
    """Spec: box side scaled by 1/8, widened to >= 1 feature cell about its centre, split evenly."""
    lo, hi = lo * SCALE, hi * SCALE
    size = max(hi - lo, 1.0)
    start = (lo + hi) / 2 - size / 2
    return [start + size * i / cells for i in range(cells + 1)]


def area_average(fmap, y0, y1, x0, x1):
    """Average of the map (feature cell r = unit square centred at r, zero outside) over a rectangle."""
    channels, height, width = fmap.shape
    total = np.zeros(channels)
    for r in range(height):
        oy = max(0.0, min(y1, r + 0.5) - max(y0, r - 0.5))
        for c in range(width):
            ox = max(0.0, min(x1, c + 0.5) - max(x0, c - 0.5))
            total += oy * ox * fmap[:, r, c]
    return total / ((y1 - y0) * (x1 - x0))


def bilinear(fmap, y, x):
    """Bilinear interpolation with zeros outside the map."""
    channels, height, width = fmap.shape
    y_lo, x_lo = math.floor(y), math.floor(x)
    value = np.zeros(channels)
    for r, wy in ((y_lo, 1 - (y - y_lo)), (y_lo + 1, y - y_lo)):
        for c, wx in ((x_lo, 1 - (x - x_lo)), (x_lo + 1, x - x_lo)):
            if 0 <= r < height and 0 <= c < width:
                value += wy * wx * fmap[:, r, c]
    return value


def reference(features, rois, output, adaptive, sampling, reduce):
    feats = features.double().numpy()
    out = np.zeros((len(rois), feats.shape[1], output, output))
    cells = output + 1
    for n, (b, x1, y1, x2, y2) in enumerate(rois.double().tolist()):
        fmap = feats[int(b)]
        ey, ex = cell_edges(y1, y2, cells), cell_edges(x1, x2, cells)
        grid = np.zeros((feats.shape[1], cells, cells))
        for i in range(cells):
            for j in range(cells):
                if adaptive:
                    grid[:, i, j] = area_average(fmap, ey[i], ey[i + 1], ex[j], ex[j + 1])
                else:
                    points = [(ey[i] + (ey[i + 1] - ey[i]) * (a + 0.5) / sampling,
                               ex[j] + (ex[j + 1] - ex[j]) * (c + 0.5) / sampling)
                              for a in range(sampling) for c in range(sampling)]
                    grid[:, i, j] = np.mean([bilinear(fmap, y, x) for y, x in points], axis=0)
        for i in range(output):
            for j in range(output):
                block = grid[:, i:i + 2, j:j + 2].reshape(grid.shape[0], -1)
                out[n, :, i, j] = block.max(axis=1) if reduce == "max" else block.mean(axis=1)
    return torch.from_numpy(out)


def random_rois(n, batch, size_px, generator):
    """Boxes of various sizes, some partly or wholly outside the map, some degenerate."""
    xy = torch.rand(n, 2, generator=generator) * size_px * 1.2 - 0.2 * size_px
    wh = torch.rand(n, 2, generator=generator) * size_px * 0.8
    wh[0] = 0.0  # a point
    wh[1] = torch.tensor([2.0, 50.0])  # thinner than one feature cell
    index = torch.randint(0, batch, (n, 1), generator=generator).double()
    return torch.cat((index, xy, xy + wh), dim=1)


@pytest.mark.parametrize("adaptive,sampling", [(True, 1), (False, 1), (False, 2)])
@pytest.mark.parametrize("reduce", ["max", "avg"])
def test_matches_naive_reference(adaptive, sampling, reduce):
    gen = torch.Generator().manual_seed(11)
    features = torch.randn(2, 3, 6, 7, generator=gen, dtype=torch.float64)
    rois = random_rois(9, 2, 56.0, gen)
    got = roi_align(features, rois, 3, adaptive=adaptive, sampling=sampling, reduce=reduce)
    assert got.shape == (9, 3, 3, 3)
    expected = reference(features, rois, 3, adaptive, sampling, reduce)
    assert torch.allclose(got, expected, atol=1e-9), (got - expected).abs().max()


def test_maps_wider_than_a_channel_block_pool_like_the_reference():
    channels = 2 * CHANNEL_BLOCK + 5   # pooled in three blocks, the last one short
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(1, channels, 5, 6, generator=gen, dtype=torch.float64)
    rois = random_rois(4, 1, 48.0, gen)
    many = rois.repeat(BLOCKS_FROM_ROIS // 4 + 1, 1)   # enough RoIs to be pooled in blocks
    got = roi_align(features, many, 3)[: len(rois)]
    assert torch.equal(got, roi_align(features, many[: len(rois)], 3))
    expected = reference(features, rois, 3, True, 1, "max")
    assert torch.allclose(got, expected, atol=1e-9), (got - expected).abs().max()


def test_float32_precision_on_a_large_map():
    # The summed-area table is mean-centred so float32 keeps precision on big positive maps.
    gen = torch.Generator().manual_seed(2)
    features = torch.rand(1, 2, 60, 60, generator=gen) * 50.0
    rois = torch.tensor([[0, 400.0, 380.0, 430.0, 420.0], [0, 8.0, 8.0, 470.0, 470.0]])
    got = roi_align(features, rois, 3, reduce="avg")
    expected = roi_align(features.double(), rois.double(), 3, reduce="avg")
    assert torch.allclose(got.double(), expected, rtol=1e-5, atol=1e-4)


def test_output_size_is_configurable():
    features = torch.randn(1, 4, 9, 9)
    rois = torch.tensor([[0, 0.0, 0.0, 60.0, 60.0]])
    assert roi_align(features, rois, 5).shape == (1, 4, 5, 5)
    assert torch.allclose(roi_align(features.double(), rois.double(), 5),
                          reference(features, rois, 5, True, 1, "max"))


def test_constant_map_inside_gives_the_constant():
    features = torch.full((1, 2, 10, 10), 3.0)
    rois = torch.tensor([[0, 8.0, 8.0, 60.0, 50.0], [0, 20.0, 16.0, 21.0, 17.0]])
    assert torch.allclose(roi_align(features, rois, 3, reduce="avg"), torch.full((2, 2, 3, 3), 3.0))
    assert torch.allclose(roi_align(features, rois, 3, adaptive=False), torch.full((2, 2, 3, 3), 3.0))


def test_large_roi_integrates_every_cell():
    # A single hot cell inside a big RoI is seen by the adaptive average (not by sparse point samples).
    features = torch.zeros(1, 1, 20, 20)
    features[0, 0, 7, 7] = 1.0
    rois = torch.tensor([[0, 0.0, 0.0, 150.0, 150.0]])
    adaptive = roi_align(features, rois, 3, reduce="avg")
    assert adaptive.sum() > 0
    assert adaptive[0, 0].sum().item() * (150 / 8 / 4) ** 2 * 4 == pytest.approx(4.0)


def test_far_outside_is_zero_and_empty_is_empty():
    features = torch.randn(1, 3, 5, 5)
    rois = torch.tensor([[0, 500.0, 500.0, 600.0, 600.0], [0, -400.0, -300.0, -200.0, -100.0]])
    for adaptive in (True, False):
        assert torch.all(roi_align(features, rois, 3, adaptive=adaptive) == 0)
    assert roi_align(features, torch.zeros(0, 5), 3).shape == (0, 3, 3, 3)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(5)
    features = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 3.0, 5.0, 30.0, 41.0], [1, -10.0, 2.0, 20.0, 12.0]], dtype=torch.float64)
    for adaptive, reduce in ((True, "avg"), (True, "max"), (False, "avg")):
        assert torch.autograd.gradcheck(
            lambda f, a=adaptive, r=reduce: roi_align(f, rois, 3, adaptive=a, reduce=r), (features,))


def test_invalid_rois_are_rejected():
    features = torch.randn(1, 3, 5, 5)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        roi_align(features, torch.zeros(3, 4), 3)
    with pytest.raises(ValueError, match="batch indices"):
        roi_align(features, torch.tensor([[1, 0.0, 0.0, 8.0, 8.0]]), 3)
    with pytest.raises(ValueError, match="reduce"):
        roi_align(features, torch.tensor([[0, 0.0, 0.0, 8.0, 8.0]]), 3, reduce="sum")


def test_receptive_field_constants_follow_the_layers():
    from m5l_core.models.config import ModelConfig
    from m5l_core.models.vggm import make_vggm_stream

    field, jump = 1, 1
    for layer in make_vggm_stream(ModelConfig()):
        kernel = getattr(layer, "kernel_size", None)
        if kernel is None:
            continue
        kernel = kernel[0] if isinstance(kernel, tuple) else kernel
        dilation = layer.dilation[0] if isinstance(layer.dilation, tuple) else layer.dilation
        stride = layer.stride[0] if isinstance(layer.stride, tuple) else layer.stride
        field += (kernel - 1) * dilation * jump
        jump *= stride
    assert (field, jump) == (RECEPTIVE_FIELD, FEATURE_STRIDE)
    assert FEATURE_OFFSET == RECEPTIVE_FIELD / 2


def test_align_rois_shifts_coordinates_only():
    rois = torch.tensor([[1, 100.0, 50.0, 200.0, 150.0]])
    shifted = align_rois_to_receptive_field(rois)
    assert shifted[0, 0] == 1
    assert torch.allclose(shifted[0, 1:], rois[0, 1:] - FEATURE_OFFSET)
    assert rois[0, 1] == 100.0  # input untouched


def test_bfloat16_maps_are_pooled_in_float32():
    gen = torch.Generator().manual_seed(4)
    features = torch.rand(1, 4, 30, 30, generator=gen) * 20
    rois = torch.tensor([[0, 10.0, 12.0, 150.0, 170.0], [0, 40.0, 30.0, 60.0, 52.0]])
    low = roi_align(features.bfloat16(), rois, 3)
    assert low.dtype == torch.bfloat16
    expected = roi_align(features.bfloat16().float(), rois, 3)
    assert torch.allclose(low.float(), expected, rtol=1e-2)
