"""The M5L network (two VGG-M streams, RoIAlign, embedding, attention fusion, multi-domain fc6).

Public API (the contract shared with m5l_core.training and m5l_core.tracking)::

    ModelConfig, ABLATIONS, apply_ablation(name, model_cfg, loss_cfg)
    M5LNet(config, num_domains), NetOutput
    init_from_vgg_m_mat(model, path), VggmInitError
    save_checkpoint(path, model, model_config, extra=None, *, half=False)
    load_checkpoint(path, device="cpu") -> (model, model_config, extra), CheckpointError
    align_rois_to_receptive_field(rois), FEATURE_STRIDE, RECEPTIVE_FIELD, FEATURE_OFFSET, conv3_size(side)

The pooling function itself is ``m5l_core.models.roi_align.roi_align`` (not re-exported here, so
the name ``m5l_core.models.roi_align`` keeps meaning the module).
"""

from m5l_core.models.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from m5l_core.models.config import ABLATIONS, ModelConfig, apply_ablation
from m5l_core.models.net import M5LNet, NetOutput
from m5l_core.models.roi_align import (
    FEATURE_OFFSET,
    FEATURE_STRIDE,
    RECEPTIVE_FIELD,
    align_rois_to_receptive_field,
)
from m5l_core.models.vggm import VggmInitError, conv3_size


def init_from_vgg_m_mat(model: M5LNet, path) -> None:
    """Copy conv1-3 of ``imagenet-vgg-m.mat`` (same in both streams) or of an ``m5l-distill`` result
    (its RGB and thermal weights) into the model's streams (VggmInitError if bad)."""
    model.load_vgg_m(path)


__all__ = [
    "ABLATIONS", "FEATURE_OFFSET", "FEATURE_STRIDE", "RECEPTIVE_FIELD", "CheckpointError", "M5LNet",
    "ModelConfig", "NetOutput", "VggmInitError", "align_rois_to_receptive_field", "apply_ablation",
    "conv3_size", "init_from_vgg_m_mat", "load_checkpoint", "read_checkpoint", "save_checkpoint",
]
