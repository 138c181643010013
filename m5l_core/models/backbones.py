"""The feature streams M5L can run on, and the geometry every crop and RoI computation follows.

A backbone is one stream (M5L builds two: RGB and thermal, same architecture, own weights) from
``(B,3,H,W)`` ``pixels - 128`` to a stride-8 feature map. What differs between backbones and
matters outside the network is in :class:`BackboneGeometry`; the crops (tracker and training),
the RoI shift and the smallest accepted input all read it from here, never from constants.

* ``vggm``: the paper's VGG-M conv1-3 (RT-MDNet variant, :mod:`m5l_core.models.vggm`), random or
  from ``imagenet-vgg-m.mat`` or from an ``m5l-distill`` file.
* ``effnet_lite0``: EfficientNet-Lite0 stages 1-5 at output stride 8 with ImageNet weights
  (:mod:`m5l_core.models.effnet`), 112 channels.
* ``effnet_lite0_s16``: the same trunk and weights at Lite0's own output stride 16 (no dilation):
  about half the trunk's cost on a tracking crop, a coarser map for RoIAlign.
* ``effnet_lite0_stage4``: stages 1-4 only at stride 8 (80 channels, 147 px receptive field):
  stage 5 is more than half of the stride-8 trunk's multiply-adds.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from m5l_core.models.config import ModelConfig
from m5l_core.models.effnet import OUT_CHANNELS as EFFNET_CHANNELS
from m5l_core.models.effnet import STAGE4_CHANNELS, EfficientNetLite0Trunk, load_imagenet_weights
from m5l_core.models.roi_align import FEATURE_OFFSET, FEATURE_STRIDE, RECEPTIVE_FIELD
from m5l_core.models.vggm import FEATURE_CHANNELS as VGGM_CHANNELS
from m5l_core.models.vggm import make_vggm_stream


@dataclass(frozen=True)
class BackboneGeometry:
    """Where feature cells sit in the input, for RoIAlign and crop sizing."""

    channels: int          # feature map channels
    stride: int            # input pixels per feature cell
    offset: float          # input coordinate of cell 0's receptive-field centre
    receptive_field: int   # pixels one cell sees (informational for padded backbones)
    min_input: int         # smallest input side that still gives a usable map
    crop_margin: float     # crop pixels kept around the candidates' hull

    @property
    def spatial_scale(self) -> float:
        return 1.0 / self.stride


# VGG-M has no padding: a cell sees [8j, 8j + 75), so its centre is 37.5 px in and the crop needs
# that margin for border candidates to be pooled from cells centred inside them. Lite0 pads every
# conv ("same"), so cell j is centred on pixel 8j (coordinate 8j + 0.5); a margin of two cells keeps
# border candidates away from the zero padding.
GEOMETRIES: dict[str, BackboneGeometry] = {
    "vggm": BackboneGeometry(VGGM_CHANNELS, FEATURE_STRIDE, FEATURE_OFFSET, RECEPTIVE_FIELD,
                             min_input=RECEPTIVE_FIELD, crop_margin=FEATURE_OFFSET),
    "effnet_lite0": BackboneGeometry(EFFNET_CHANNELS, 8, 0.5, 339, min_input=32, crop_margin=16.0),
    "effnet_lite0_s16": BackboneGeometry(EFFNET_CHANNELS, 16, 0.5, 339, min_input=32, crop_margin=32.0),
    "effnet_lite0_stage4": BackboneGeometry(STAGE4_CHANNELS, 8, 0.5, 147, min_input=32, crop_margin=16.0),
}
EFFNET_BACKBONES = ("effnet_lite0", "effnet_lite0_s16", "effnet_lite0_stage4")
BACKBONES = tuple(GEOMETRIES)


def backbone_geometry(name: str) -> BackboneGeometry:
    if name not in GEOMETRIES:
        raise ValueError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    return GEOMETRIES[name]


def make_stream(config: ModelConfig) -> nn.Module:
    """One feature stream of ``config.backbone`` with random weights (Kaiming, zero bias)."""
    geometry = backbone_geometry(config.backbone)
    if config.backbone == "vggm":
        return make_vggm_stream(config)
    stages = 4 if config.backbone == "effnet_lite0_stage4" else 5
    return EfficientNetLite0Trunk(output_stride=geometry.stride, stages=stages)


def load_imagenet_into(streams, config: ModelConfig, path=None) -> None:
    """ImageNet weights from the backbone's pip package (or ``path``) into every stream."""
    if config.backbone not in EFFNET_BACKBONES:
        raise ValueError(f"backbone {config.backbone!r} has no packaged ImageNet weights: VGG-M starts from "
                         "imagenet-vgg-m.mat or an m5l-distill file (init vggm:PATH)")
    for stream in streams:
        load_imagenet_weights(stream, path)
