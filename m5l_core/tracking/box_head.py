"""The box head: a dense Siamese head that reads the target's extent from the frame's conv maps.

MDNet's box comes from scoring candidates and a first-frame ridge regressor. Both keep the
first view's shape: when the target turns, rolls or deforms, the box stays near its first size
and aspect while its centre is right (README, "Real sequences": wakeboard7, Diving). The
linear and pooled read-outs tried before cannot recover a changing extent (docs/experiments.md,
"Targets that change shape"). This head is the anchor-free box branch of the Siamese trackers
(SiamCAR, FCOS): the first frame's target, pooled 5x5 from the trunk's maps, is correlated
channel by channel with the frame's maps; a small conv tower then scores every map cell for
"inside the target" and regresses its distances to the target's four edges. The reading is the
score-weighted mean of the best cells near the tracked centre. The tracker moves its reported
box's size (``bbreg.head_weight``) and centre (``bbreg.head_centre_weight``) part of the way to the
head's, each measured against what the head read on the first frame, where the true box is known
(:class:`BoxRefiner`); the next frame's search keeps the classifier's centre. The trunk stays
frozen, so the head costs a few convolutions on maps the frame computed anyway.

It is learnt offline for one model (``python -m m5l_core.tracking.box_head_train``) and stored in
that model's checkpoint; a checkpoint without one tracks as before.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from m5l_core.crops import crop_scale
from m5l_core.geometry import centers
from m5l_core.models.roi_align import roi_align
from m5l_core.tracking.search import SearchRegion

HEAD_KEY = "box_head"     # checkpoint extra: the head's settings and weights
TEMPLATE = 5              # template side in map cells
TOP_CELLS = 5             # cells averaged into the box
WINDOW = 0.3              # Gaussian window about the tracked centre, in tracked-box sides


class BoxHead(nn.Module):
    """Template-correlated maps -> per-cell target logit (B, H, W) and edge distances (B, 4, H, W)
    (left, top, right, bottom, in map cells)."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        self.channels, self.width = channels, width
        self.adjust_search = nn.Conv2d(channels, 2 * width, 1)
        self.adjust_template = nn.Conv2d(channels, 2 * width, 1)
        layers: list[nn.Module] = []
        for cin in (2 * width, width, width):
            layers += [nn.Conv2d(cin, width, 3, padding=1), nn.GroupNorm(8, width), nn.ReLU()]
        self.tower = nn.Sequential(*layers)
        self.inside = nn.Conv2d(width, 1, 3, padding=1)
        self.edges = nn.Conv2d(width, 4, 3, padding=1)
        # maps are standardised per channel with statistics of the training maps
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))
        nn.init.constant_(self.inside.bias, -2.0)          # most cells are background
        nn.init.zeros_(self.edges.weight)
        nn.init.constant_(self.edges.bias, float(np.log(5.0)))   # a target of ~10 cells

    def forward(self, maps: torch.Tensor, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``maps`` (B, C, H, W) and ``template`` (B, C, 5, 5), both modalities' channels stacked."""
        batch, _, height, width = maps.shape
        search = self.adjust_search((maps.float() - self.mean) / self.std)
        kernel = self.adjust_template((template.float() - self.mean) / self.std)
        corr = F.conv2d(search.reshape(1, -1, height, width), kernel.reshape(-1, 1, TEMPLATE, TEMPLATE),
                        padding=TEMPLATE // 2, groups=search.shape[1] * batch)
        x = self.tower(corr.view(batch, -1, height, width))
        return self.inside(x)[:, 0], torch.exp(self.edges(x).clamp(-3.0, 5.0))

    def to_extra(self) -> dict:
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return {HEAD_KEY: {"channels": self.channels, "width": self.width, "state_dict": state}}

    @classmethod
    def from_extra(cls, extra: dict, device: torch.device | str = "cpu") -> BoxHead | None:
        """The head a checkpoint carries (None for one without)."""
        stored = extra.get(HEAD_KEY)
        if stored is None:
            return None
        head = cls(int(stored["channels"]), int(stored["width"]))
        head.load_state_dict({k: v.float() for k, v in stored["state_dict"].items()})
        return head.to(device).eval()


class MapGeometry:
    """Frame pixels <-> conv map coordinates of one crop (cell ``j`` at coordinate ``j``, as
    :func:`m5l_core.models.roi_align.roi_align` reads them)."""

    def __init__(self, region: SearchRegion, spatial_scale: float):
        self.origin = np.asarray(region.box[:2], dtype=np.float64)
        self.scale = crop_scale(region.box, region.out_size)     # crop pixels per frame pixel
        self.offset, self.stride = region.feature_offset, 1.0 / spatial_scale

    def to_map(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) frame x, y, w, h -> (N, 4) map x1, y1, x2, y2."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        low = ((boxes[:, :2] - self.origin) * self.scale - self.offset) / self.stride
        high = ((boxes[:, :2] + boxes[:, 2:] - self.origin) * self.scale - self.offset) / self.stride
        return np.concatenate([low, high], axis=1)

    def to_frame(self, corners: np.ndarray) -> np.ndarray:
        """(N, 4) map x1, y1, x2, y2 -> (N, 4) frame x, y, w, h."""
        low = (corners[:, :2] * self.stride + self.offset) / self.scale + self.origin
        high = (corners[:, 2:] * self.stride + self.offset) / self.scale + self.origin
        return np.concatenate([low, high - low], axis=1)


def stacked(feats: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Both modalities' maps as one (1, 2C, H, W) tensor."""
    return torch.cat([f.float() for f in feats], dim=1)


def template_of(maps: torch.Tensor, geometry: MapGeometry, box: np.ndarray) -> torch.Tensor:
    """(1, 2C, 5, 5): the maps averaged over the target's box."""
    corners = torch.from_numpy(geometry.to_map(box)).float().to(maps.device)
    rois = torch.cat([torch.zeros(1, 1, device=maps.device), corners], dim=1)
    return roi_align(maps, rois, TEMPLATE, spatial_scale=1.0, adaptive=True, reduce="avg")


def cell_grid(height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                            torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
    return xs, ys


def cell_boxes(edges: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) edge distances -> (B, H, W, 4) map x1, y1, x2, y2 per cell."""
    xs, ys = cell_grid(edges.shape[2], edges.shape[3], edges.device)
    return torch.stack([xs - edges[:, 0], ys - edges[:, 1], xs + edges[:, 2], ys + edges[:, 3]], dim=-1)


def box_near(logits: torch.Tensor, boxes: torch.Tensor, around: torch.Tensor) -> torch.Tensor:
    """(B, 4) map corners: the score-weighted mean of the ``TOP_CELLS`` best cells, scores weighted by
    a Gaussian window about the centre of ``around`` (B, 4 map corners): the head reads the tracked
    target's extent, not a look-alike's."""
    batch, height, width = logits.shape
    xs, ys = cell_grid(height, width, logits.device)
    centre = (around[:, :2] + around[:, 2:]) / 2
    sides = (around[:, 2:] - around[:, :2]).clamp(min=1.0) * WINDOW
    window = torch.exp(-0.5 * (((xs[None] - centre[:, 0, None, None]) / sides[:, 0, None, None]) ** 2
                               + ((ys[None] - centre[:, 1, None, None]) / sides[:, 1, None, None]) ** 2))
    scores = (torch.sigmoid(logits) * window).view(batch, -1)
    best, index = scores.topk(min(TOP_CELLS, scores.shape[1]), dim=1)
    weights = best / best.sum(dim=1, keepdim=True).clamp(min=1e-9)
    chosen = boxes.reshape(batch, -1, 4).gather(1, index[..., None].expand(-1, -1, 4))
    return (chosen * weights[..., None]).sum(dim=1)


class BoxRefiner:
    """One target's use of the head: the template and the head's own bias from the first frame,
    then each frame's reported box.

    The head reads some targets' extents wider or narrower than their boxes (a part that looks
    like background, a box drawn loosely): on rigid objects whose box the tracker already holds,
    its raw size lowered SR (docs/experiments.md, "Session 26"). The first frame's reading at the
    known box measures that bias, per axis for the size and for the centre, and every later
    reading is taken relative to it.
    """

    def __init__(self, head: BoxHead | None, weight: float, spatial_scale: float,
                 centre_weight: float = 0.0, centre_max: float = np.inf):
        self.head = head if weight > 0 or centre_weight > 0 else None
        self.weight, self.centre_weight, self.centre_max = float(weight), float(centre_weight), centre_max
        self.spatial_scale = spatial_scale
        self._template: torch.Tensor | None = None
        self._bias = np.zeros(2)         # log(head's width / box width), the same for heights, first frame
        self._centre_bias = np.zeros(2)  # (head's centre - box centre) / box side, per axis, first frame

    @property
    def active(self) -> bool:
        return self.head is not None

    def start(self, feats, region: SearchRegion, box: np.ndarray) -> None:
        if self.head is None:
            return
        maps, geometry = stacked(feats), MapGeometry(region, self.spatial_scale)
        with torch.no_grad():
            self._template = template_of(maps, geometry, box)
        self._bias, self._centre_bias = offsets(self._read(maps, geometry, box), box)

    def refine(self, feats, region: SearchRegion, box: np.ndarray) -> np.ndarray:
        """``box`` with its log size moved by ``weight`` and its centre by ``centre_weight`` of the
        head's offsets from it, less the first frame's (the centre's held within ``centre_max``)."""
        if self.head is None or self._template is None:
            return box
        read = self._read(stacked(feats), MapGeometry(region, self.spatial_scale), box)
        size_offset, centre_offset = offsets(read, box)
        shift = np.clip(centre_offset - self._centre_bias, -self.centre_max, self.centre_max)
        centre = centers(box) + self.centre_weight * shift * box[2:]
        size = box[2:] * np.exp(self.weight * (size_offset - self._bias))
        return np.concatenate([centre - size / 2, size])

    def _read(self, maps: torch.Tensor, geometry: MapGeometry, box: np.ndarray) -> np.ndarray:
        """The head's box (x, y, w, h, frame pixels) for the target tracked at ``box``."""
        with torch.no_grad():
            logits, edges = self.head(maps, self._template)
            around = torch.from_numpy(geometry.to_map(box)).float().to(logits.device)
            read = box_near(logits, cell_boxes(edges), around).cpu().numpy()
        read = geometry.to_frame(read)[0]
        read[2:] = np.maximum(read[2:], 1.0)
        return read


def offsets(read: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head's box against ``box``: log size ratios and centre shifts in box sides, per axis."""
    shift = (centers(read) - centers(box)) / box[2:]
    return np.log(read[2:] / box[2:]), shift
