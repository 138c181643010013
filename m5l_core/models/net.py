"""The M5L network: two feature streams, RoIAlign, embedding, fusion and the multi-domain classifier.

Data flow for one frame (feature maps computed once, shared by all its boxes; C = 512 for VGG-M,
112 for EfficientNet-Lite0, see :mod:`m5l_core.models.backbones`)::

    rgb, thermal (B,3,H,W), pixels - 128 ──features()──> stride-8 maps (B,C,h,w) x 2
    rois (N,5) ──pool()──> (N,C,3,3) x 2 ──embed()──> (N,E) x 2, unit norm   (MMSL, training only)
                                         └─fuse()───> (N,2C*9), modality weights (N,2)
                                                         └─classify()──> fc4, fc5, fc6 logits (N,2)

Ablations are switches of :class:`~m5l_core.models.config.ModelConfig` (fusion, use_embedding),
never separate classes. Nothing here moves tensors between devices: everything runs where the
module and its inputs live.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from m5l_core.models.backbones import backbone_geometry, load_imagenet_into, make_stream
from m5l_core.models.config import ModelConfig
from m5l_core.models.embedding import EmbeddingHead
from m5l_core.models.fusion import make_fusion
from m5l_core.models.roi_align import roi_align
from m5l_core.models.vggm import load_vggm_into


class NetOutput(NamedTuple):
    logits: Tensor                 # (N, 2): [background, target] scores
    emb_rgb: Tensor | None         # (N, E) unit-norm, None when the model has no embedding module
    emb_thermal: Tensor | None
    modality_weights: Tensor       # (N, 2): mean attention applied to RGB and thermal


class M5LNet(nn.Module):
    """M5L (and, by configuration, its ablations and the RT-MDNet+RGBT baseline).

    Initialisation: the constructor draws random weights (Kaiming convs, N(0, 0.01) fc layers) --
    weak conv features, fine for tests and from-scratch experiments. For tracking, start the streams
    from ImageNet with :meth:`load_vgg_m` (``imagenet-vgg-m.mat`` or an ``m5l-distill`` file) or
    :meth:`load_imagenet` (packaged backbones), or rebuild a trained model with
    :func:`m5l_core.models.load_checkpoint`.
    """

    def __init__(self, config: ModelConfig | None = None, num_domains: int = 1):
        super().__init__()
        config = config if config is not None else ModelConfig()
        if num_domains < 0:
            raise ValueError(f"num_domains must be >= 0, got {num_domains}")
        self.config = config
        self.num_domains = num_domains
        self.geometry = backbone_geometry(config.backbone)
        # One factory called twice: identical architecture, independent weights per modality.
        self.rgb_stream = make_stream(config)
        self.thermal_stream = make_stream(config)
        channels = self.geometry.channels
        pooled = channels * config.roi_output ** 2
        self.fusion = make_fusion(config.fusion, channels, config.attention_hidden)
        self.embed_rgb = self.embed_thermal = None
        if config.use_embedding:
            self.embed_rgb = EmbeddingHead(pooled, config.embedding_dim, config.fc_init_std)
            self.embed_thermal = EmbeddingHead(pooled, config.embedding_dim, config.fc_init_std)
        self.fc4 = nn.Linear(2 * pooled, config.fc_dim)
        self.fc5 = nn.Linear(config.fc_dim, config.fc_dim)
        self.dropout = nn.Dropout(config.dropout)
        for fc in (self.fc4, self.fc5):
            self._init_fc(fc)
        self.domain_heads = nn.ModuleList([self._make_head() for _ in range(num_domains)])

    # -- construction helpers -------------------------------------------------------------------
    def _init_fc(self, layer: nn.Linear) -> None:
        # MDNet initialises its fc layers with N(0, 0.01) and zero bias; zero-mean heads start
        # with both classes equally likely.
        nn.init.normal_(layer.weight, std=self.config.fc_init_std)
        nn.init.zeros_(layer.bias)

    def _make_head(self) -> nn.Linear:
        head = nn.Linear(self.config.fc_dim, 2)
        self._init_fc(head)
        return head

    def new_head(self, from_domains: bool = False) -> nn.Linear:
        """A fresh fc6 (fc_dim -> 2) on this model's device and dtype, for tracking a new target:
        MDNet's random one, or with ``from_domains`` the mean of the trained domain heads (random
        when the model has none)."""
        # drawn even when overwritten: the tracker's later random draws stay the same either way
        head = self._make_head().to(device=self.fc5.weight.device, dtype=self.fc5.weight.dtype)
        if from_domains and self.num_domains:
            with torch.no_grad():
                head.weight.copy_(torch.stack([h.weight for h in self.domain_heads]).float().mean(dim=0))
                head.bias.copy_(torch.stack([h.bias for h in self.domain_heads]).float().mean(dim=0))
        return head

    def load_vgg_m(self, path) -> None:
        """Initialise conv1-3 of both streams from ``imagenet-vgg-m.mat`` (the same weights in both) or
        an ``m5l-distill`` result (the RGB stream its ``rgb``, the thermal stream its ``thermal`` weights)."""
        if self.config.backbone != "vggm":
            raise ValueError(f"VGG-M weights need backbone vggm, this model has {self.config.backbone!r}")
        load_vggm_into((self.rgb_stream, self.thermal_stream), path)

    def load_imagenet(self, path=None) -> None:
        """Initialise both streams from the backbone's packaged ImageNet weights (or ``path``)."""
        load_imagenet_into((self.rgb_stream, self.thermal_stream), self.config, path)

    # -- forward pieces -------------------------------------------------------------------------
    def streams_are_twins(self) -> bool:
        """Whether both streams hold the same weights (one frozen ImageNet trunk for both modalities,
        as the bundled model has): then :meth:`features` can run them as one batch."""
        rgb, thermal = self.rgb_stream.state_dict(), self.thermal_stream.state_dict()
        return rgb.keys() == thermal.keys() and all(torch.equal(rgb[k], thermal[k]) for k in rgb)

    def features(self, rgb: Tensor, thermal: Tensor, twins: bool = False) -> tuple[Tensor, Tensor]:
        """(B,3,H,W) mean-subtracted images -> stride-8 maps (B,C,h,w) per modality.

        ``twins`` (only when :meth:`streams_are_twins`): both modalities in one pass of the RGB
        stream, batched (on a CPU one batch of two is ~10 % cheaper than two batches of one).
        """
        min_input = self.geometry.min_input
        for name, image in (("rgb", rgb), ("thermal", thermal)):
            if image.dim() != 4 or image.shape[1] != 3:
                raise ValueError(f"{name} input must be (B, 3, H, W), got {tuple(image.shape)}")
            if min(image.shape[2:]) < min_input:
                raise ValueError(f"{name} input {tuple(image.shape[2:])} is smaller than the "
                                 f"{min_input}-pixel minimum of the {self.config.backbone} backbone")
        if rgb.shape != thermal.shape:
            raise ValueError(f"rgb {tuple(rgb.shape)} and thermal {tuple(thermal.shape)} inputs differ "
                             "in shape")
        if twins:
            both = self.rgb_stream(torch.cat((rgb, thermal)))
            return both[: len(rgb)], both[len(rgb):]
        return self.rgb_stream(rgb), self.thermal_stream(thermal)

    def pool(self, feats: tuple[Tensor, Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """RoIAlign every (N,5) roi (batch, x1, y1, x2, y2 in input pixels) from both maps.

        Boxes are used as given: the receptive-field shift is the caller's job
        (``roi_align.align_rois_to_receptive_field`` with ``self.geometry.offset``).
        """
        cfg = self.config
        rois = rois.to(device=feats[0].device, dtype=feats[0].dtype)
        return tuple(roi_align(f, rois, cfg.roi_output, spatial_scale=self.geometry.spatial_scale,
                               adaptive=cfg.roi_adaptive, sampling=cfg.roi_sampling, reduce=cfg.roi_reduce)
                     for f in feats)

    def fuse(self, pooled: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """-> (fused (N, 2*C*r*r), modality_weights (N, 2))."""
        return self.fusion(pooled[0], pooled[1])

    def embed(self, pooled: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """-> (N, E) L2-normalised embeddings per modality (needs more than one box in training mode)."""
        if self.embed_rgb is None:
            raise RuntimeError("this model has no embedding module (ModelConfig.use_embedding is false)")
        return self.embed_rgb(pooled[0]), self.embed_thermal(pooled[1])

    def fc5_features(self, fused: Tensor) -> Tensor:
        """fc4 -> ReLU -> dropout -> fc5 -> ReLU: (N, fc_dim)."""
        hidden = torch.relu(self.fc4(fused))
        return torch.relu(self.fc5(self.dropout(hidden)))

    def classify(self, fused: Tensor, head: nn.Linear | int) -> Tensor:
        """Logits (N, 2) from fused features through fc4, fc5 and ``head`` (domain index or a Linear)."""
        if not isinstance(head, nn.Module):
            if not 0 <= int(head) < self.num_domains:
                raise IndexError(f"domain {head} out of range: the model has {self.num_domains} domain heads")
            head = self.domain_heads[int(head)]
        return head(self.dropout(self.fc5_features(fused)))

    def forward(self, rgb: Tensor, thermal: Tensor, rois: Tensor, domain: int | nn.Linear) -> NetOutput:
        """Training convenience: every step above for one batch of images and its rois."""
        pooled = self.pool(self.features(rgb, thermal), rois)
        fused, weights = self.fuse(pooled)
        emb_rgb, emb_thermal = self.embed(pooled) if self.embed_rgb is not None else (None, None)
        return NetOutput(self.classify(fused, domain), emb_rgb, emb_thermal, weights)

    # -- parameter groups -----------------------------------------------------------------------
    def conv_parameters(self) -> list[nn.Parameter]:
        """The feature streams of both modalities (paper: lr 1e-4)."""
        return [*self.rgb_stream.parameters(), *self.thermal_stream.parameters()]

    def fc_parameters(self) -> list[nn.Parameter]:
        """Everything else: fusion, embedding, fc4, fc5 and the domain heads (paper: lr 1e-3)."""
        conv = {id(p) for p in self.conv_parameters()}
        return [p for p in self.parameters() if id(p) not in conv]

    def head_parameters(self) -> list[nn.Parameter]:
        """The per-domain fc6 heads only (a subset of fc_parameters)."""
        return list(self.domain_heads.parameters())
