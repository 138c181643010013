"""RoIAlign in plain torch (torchvision cannot be loaded against this project's torch build).

Geometry of the conv3 maps (VGG-M conv1-3, RT-MDNet variant, no padding anywhere)
--------------------------------------------------------------------------------
conv1 7x7/2 -> maxpool 3/2 -> conv2 5x5/2 -> conv3 3x3 dilation 3 (an effective 7x7 kernel):

* total stride: 2 * 2 * 2 * 1 = :data:`FEATURE_STRIDE` = 8 input pixels per feature cell;
* receptive field: 7 -> 7 + 2*2 = 11 -> 11 + 4*4 = 27 -> 27 + 6*8 = :data:`RECEPTIVE_FIELD` = 75 pixels;
* with pixel ``k`` covering ``[k, k+1)``, conv3 cell ``j`` sees input pixels ``[8j, 8j + 75)``: its
  receptive-field centre is at ``8j + 37.5`` = ``FEATURE_STRIDE * j +`` :data:`FEATURE_OFFSET`.

:func:`roi_align` maps a box coordinate ``p`` (input pixels) to the feature coordinate
``p * spatial_scale`` (``1/8``), where feature cell ``j`` sits at coordinate ``j`` -- RT-MDNet's
convention. Boxes must therefore be shifted by ``-FEATURE_OFFSET`` first so that a box
pools the cells whose receptive fields are *centred* inside it; that shift (and any context
padding of the box) is the caller's job: :func:`align_rois_to_receptive_field` does it.
RT-MDNet does the same by subtracting ``receptive_field / 2`` from its boxes.

Pooling (RT-MDNet's RoIAlign{Max,Avg,AdaMax})
---------------------------------------------
RT-MDNet evaluates a ``(k+1) x (k+1)`` grid of cells per RoI (``k = 3``) and pools every 2x2 block
of neighbouring cells with stride 1, so each of the ``k x k`` outputs summarises about half of
the RoI (overlapping) and a max over it keeps the strongest response. Here:

* ``adaptive=True`` (RT-MDNet's "Ada" layer used at tracking time): the number of sampling
  points follows the RoI size. We take that to its limit: each cell is the exact *average*
  of the feature map over the cell's area (feature cells treated as unit squares, zero outside
  the map), read from a summed-area table in O(1) per cell. Large RoIs therefore integrate
  every feature cell they cover (no aliasing) and the cost does not grow with the RoI size:
  25 bilinear table lookups per RoI (the 5x5 cell corners) whatever its size -- the property
  the tracker's 256-candidate budget needs. Small cells degrade gracefully to an
  area-weighted blend of the nearest cells.
* ``adaptive=False``: ``sampling x sampling`` bilinear point samples per cell, averaged
  (Mask R-CNN RoIAlign with a fixed sampling ratio; RT-MDNet's training-time layer is
  ``sampling = 1``). Zero outside the map.
* ``reduce="max"`` (default, RT-MDNet's AdaMax) or ``"avg"`` over each 2x2 block of cells.

RoIs narrower than one feature cell are widened about their centre (RT-MDNet likewise forces
malformed RoIs to be at least 1x1), so degenerate boxes never divide by zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FEATURE_STRIDE = 8
RECEPTIVE_FIELD = 75
FEATURE_OFFSET = RECEPTIVE_FIELD / 2.0  # 37.5: receptive-field centre of conv3 cell 0, in input pixels
SPATIAL_SCALE = 1.0 / FEATURE_STRIDE
MIN_ROI_CELLS = 1.0  # smallest RoI side, in feature cells
# Many RoIs are pooled a block of channels at a time: the per-cell arithmetic runs on (channels,
# k+2, k+2, N) grids, which for the first frame's ~6500 samples and all 112 channels of a Lite0 map
# (60 MB) spill every cache; in blocks of 32 channels they pool ~2x faster on this CPU. A frame's
# 256 candidates pool faster in one piece.
CHANNEL_BLOCK = 32
BLOCKS_FROM_ROIS = 1024


def align_rois_to_receptive_field(rois: Tensor, offset: float = FEATURE_OFFSET) -> Tensor:
    """Shift (N,5) rois (batch, x1, y1, x2, y2 in input pixels) by ``-offset`` (VGG-M: ``FEATURE_OFFSET``;
    other backbones: ``BackboneGeometry.offset``).

    After the shift, :func:`roi_align` pools the conv3 cells whose receptive fields are centred
    inside the original box. Returns a new tensor; the batch index column is untouched.
    """
    shifted = rois.clone()
    shifted[:, 1:] -= offset
    return shifted


def check_rois(rois: Tensor, batch_size: int) -> None:
    """Raise ValueError for rois that are not (N,5) or name a missing batch entry."""
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be (N, 5) [batch, x1, y1, x2, y2], got shape {tuple(rois.shape)}")
    if rois.shape[0] and (rois[:, 0].min() < 0 or rois[:, 0].max() >= batch_size):
        raise ValueError(f"roi batch indices must be in [0, {batch_size}), got "
                         f"[{rois[:, 0].min().item():g}, {rois[:, 0].max().item():g}]")


def roi_align(features: Tensor, rois: Tensor, output_size: int = 3, *, spatial_scale: float = SPATIAL_SCALE,
              adaptive: bool = True, sampling: int = 1, reduce: str = "max") -> Tensor:
    """Pool (N,5) ``rois`` from ``features`` (B,C,H,W) into (N, C, output_size, output_size).

    Vectorised over RoIs (one bilinear-sampling call per image of the batch); differentiable
    w.r.t. ``features``. See the module docstring for the geometry and the adaptive rule.
    Half/bfloat16 maps (autocast) are pooled in float32 -- a summed-area table in bfloat16
    would keep about 2 significant digits -- and the result is cast back to their dtype.
    """
    check_rois(rois, features.shape[0])
    if reduce not in ("max", "avg"):
        raise ValueError(f"reduce must be 'max' or 'avg', got {reduce!r}")
    if rois.shape[0] == 0:
        return features.new_zeros((0, features.shape[1], output_size, output_size))
    compute = features if features.dtype in (torch.float32, torch.float64) else features.float()
    with torch.autocast(features.device.type, enabled=False):
        blocks = compute.split(CHANNEL_BLOCK, dim=1) if len(rois) >= BLOCKS_FROM_ROIS else (compute,)
        pooled = torch.cat([_pool(block, rois, output_size, spatial_scale, adaptive, sampling, reduce)
                            for block in blocks], dim=1)
    return pooled.to(features.dtype)


def _pool(features: Tensor, rois: Tensor, output_size: int, spatial_scale: float, adaptive: bool,
          sampling: int, reduce: str) -> Tensor:
    edges_y, edges_x = _cell_edges(rois, output_size + 1, spatial_scale)
    batch_index = rois[:, 0].long()
    if adaptive:
        # Cells of one RoI share one area, so the division commutes with the pooling below and
        # is done on the smaller pooled tensor.
        grid, scale = _area_integral_cells(features, batch_index, edges_y, edges_x)
    else:
        grid, scale = _sampled_cells(features, batch_index, edges_y, edges_x, sampling), None
    # grid: (C, k+1, k+1, N). Pool every 2x2 block with stride 1, separably over y then x, on
    # shifted views (RoIs innermost: long contiguous rows), then one transposing copy.
    if reduce == "max":
        rows = torch.maximum(grid[:, :-1], grid[:, 1:])
        pooled = torch.maximum(rows[:, :, :-1], rows[:, :, 1:])
    else:
        rows = grid[:, :-1] + grid[:, 1:]
        pooled = (rows[:, :, :-1] + rows[:, :, 1:]) * 0.25
    if scale is not None:
        pooled = pooled * scale
    return pooled.permute(3, 0, 1, 2).contiguous()


def _cell_edges(rois: Tensor, cells: int, spatial_scale: float) -> tuple[Tensor, Tensor]:
    """(N, cells+1) cell boundaries along y and x, in feature coordinates (float64)."""
    rois = rois.detach().to(torch.float64)
    steps = torch.linspace(0.0, 1.0, cells + 1, dtype=torch.float64, device=rois.device)

    def edges(lo: Tensor, hi: Tensor) -> Tensor:
        lo, hi = lo * spatial_scale, hi * spatial_scale
        centre, size = (lo + hi) / 2, (hi - lo).clamp(min=MIN_ROI_CELLS)
        return (centre - size / 2)[:, None] + size[:, None] * steps

    return edges(rois[:, 2], rois[:, 4]), edges(rois[:, 1], rois[:, 3])


def _bilinear(maps: Tensor, batch_index: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """Bilinear samples of ``maps`` (B,C,Hm,Wm) on each RoI's grid ys (N,P) x xs (N,Q) -> (C,P,Q,N).

    Coordinates are map indices. ``grid_sample`` is the fastest bilinear gather torch has on
    CPU (several times faster than index_select of channel rows); one call per batch image.
    The RoI axis is innermost so that the per-cell arithmetic that follows runs on long
    contiguous rows instead of tiny 4x4 tiles (several times faster on CPU).
    """
    batch, channels, height, width = maps.shape
    n, p, q = ys.shape[0], ys.shape[1], xs.shape[1]
    gy = (ys * (2.0 / (height - 1)) - 1.0).t()[:, None, :].expand(p, q, n)
    gx = (xs * (2.0 / (width - 1)) - 1.0).t()[None, :, :].expand(p, q, n)
    grid = torch.stack((gx, gy), dim=-1).to(maps.dtype).reshape(p * q, n, 2)
    if batch == 1:
        return _grid_sample(maps, grid).view(channels, p, q, n)
    out = maps.new_empty((channels, p, q, n))
    for b in torch.unique(batch_index).tolist():
        rows = torch.nonzero(batch_index == b).flatten()
        out[..., rows] = _grid_sample(maps[b:b + 1], grid[:, rows]).view(channels, p, q, rows.shape[0])
    return out


def _grid_sample(image: Tensor, grid: Tensor) -> Tensor:
    """(1,C,Hm,Wm) sampled at grid (M,K,2) normalised coordinates -> (C, M, K)."""
    return F.grid_sample(image, grid[None], mode="bilinear", padding_mode="zeros", align_corners=True)[0]


def _summed_area_table(features: Tensor) -> tuple[Tensor, Tensor]:
    """Table T (B, C, H+1, W+1) of the mean-centred map, and the means (B, C).

    ``T[b, c, i, j] = sum over rows < i and columns < j`` of ``features - mean``. Centring keeps
    the float32 prefix sums small (a random walk instead of an ever-growing sum), so the
    differences of table entries keep their precision even on large maps.
    """
    mean = features.mean(dim=(2, 3))
    table = (features - mean[:, :, None, None]).cumsum(2).cumsum(3)
    return F.pad(table, (1, 0, 1, 0)), mean


def _area_integral_cells(features: Tensor, batch_index: Tensor, edges_y: Tensor, edges_x: Tensor
                         ) -> tuple[Tensor, Tensor]:
    """Integral of the map over each cell, zero outside: ((C, cells, cells, N), 1 / cell area (N,)).

    Feature cell ``r`` covers ``[r - 0.5, r + 0.5)``; the integral up to coordinate ``y`` is the
    table bilinearly interpolated at ``t = y + 0.5`` (exact for a piecewise-constant map), with
    ``t`` clamped to the map so the outside adds nothing.
    """
    height, width = features.shape[2:]
    table, mean = _summed_area_table(features)
    t_y = (edges_y + 0.5).clamp(0.0, float(height))
    t_x = (edges_x + 0.5).clamp(0.0, float(width))
    prefix = _bilinear(table, batch_index, t_y, t_x)  # (C, P, P, N): integral up to every cell corner
    strips = prefix[:, 1:] - prefix[:, :-1]
    sums = strips[:, :, 1:] - strips[:, :, :-1]
    # Undo the centring on the part of each cell inside the map.
    area_inside = (t_y.diff(dim=1).t()[:, None, :] * t_x.diff(dim=1).t()[None, :, :]).to(sums.dtype)
    sums = sums.addcmul_(mean.t()[:, None, None, batch_index], area_inside)
    area = (edges_y[:, 1] - edges_y[:, 0]) * (edges_x[:, 1] - edges_x[:, 0])
    return sums, (1.0 / area).to(sums.dtype)


def _sampled_cells(features: Tensor, batch_index: Tensor, edges_y: Tensor, edges_x: Tensor,
                   sampling: int) -> Tensor:
    """Mean of ``sampling x sampling`` bilinear samples per cell, zero outside: (C, cells, cells, N)."""
    offsets = (torch.arange(sampling, dtype=edges_y.dtype, device=edges_y.device) + 0.5) / sampling

    def sample_coords(edges: Tensor) -> Tensor:  # (N, cells * sampling), +1 for the zero border
        lo, size = edges[:, :-1], edges.diff(dim=1)
        return (lo[:, :, None] + size[:, :, None] * offsets).flatten(1) + 1.0

    # A zero border makes samples just outside the map blend towards zero, and keeps the map
    # at least 3 cells wide for the align_corners normalisation.
    padded = F.pad(features, (1, 1, 1, 1))
    samples = _bilinear(padded, batch_index, sample_coords(edges_y), sample_coords(edges_x))
    channels, p, q, n = samples.shape
    cells = p // sampling
    if sampling == 1:
        return samples
    return samples.view(channels, cells, sampling, cells, sampling, n).mean(dim=(2, 4))
