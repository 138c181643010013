"""The tracker's way through the network: a crop region -> conv maps -> RoI-pooled, fused features.

Shared by every pass that looks at a frame: the ordinary frame, the first-frame fit, re-detection
tiles and the box prior's sample features. The conv layers run once per crop (under the tracker's
autocast, in the layout and size the runtime asks for); pooling then reads any number of boxes
from those maps.
"""

from __future__ import annotations

import numpy as np
import torch

from m5l_core.tracking.runtime import NetworkInput
from m5l_core.tracking.search import SearchRegion, crop_pair

POOL_CHUNK = 2048     # RoIs pooled per call on the first frame (bounds peak memory)


class NetworkPass:
    def __init__(self, model: torch.nn.Module, device: torch.device, runtime, autocast):
        self.model, self.device, self._autocast = model, device, autocast
        self._network_input = NetworkInput(device, runtime)
        self.memory_format = self._network_input.memory_format
        self.twin_streams = runtime.batch_twin_streams and model.streams_are_twins()

    def inputs(self, rgb: np.ndarray, thermal: np.ndarray, region: SearchRegion) -> tuple[torch.Tensor, ...]:
        """Both modalities cropped to ``region``, as the conv layers' inputs (at its input size)."""
        return self._network_input(*crop_pair(rgb, thermal, region), size=region.input_size)

    def features(self, rgb: torch.Tensor, thermal: torch.Tensor,
                 model: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), self._autocast():
            feats = (model if model is not None else self.model).features(rgb, thermal, self.twin_streams)
        # RoI coordinates must not be rounded to bf16, so pooling always runs in float32.
        return tuple(f.float().clone() for f in feats)

    def pool(self, feats, region: SearchRegion, boxes: np.ndarray,
             model: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused features (N, D) and modality weights (N, 2) of ``boxes`` (frame pixels) in ``region``."""
        model = model if model is not None else self.model
        with torch.no_grad():
            pooled = model.pool(feats, region.rois(boxes, self.device))
            return model.fuse(pooled)

    def pool_chunked(self, feats, region: SearchRegion, boxes: np.ndarray) -> torch.Tensor:
        starts = range(0, len(boxes), POOL_CHUNK)
        parts = [self.pool(feats, region, boxes[i:i + POOL_CHUNK])[0] for i in starts]
        return torch.cat(parts) if parts else torch.zeros((0, 0), device=self.device)

    def frame_features(self, rgb: np.ndarray, thermal: np.ndarray, region: SearchRegion,
                       model: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv maps of ``region`` of a frame: :meth:`inputs` then :meth:`features`."""
        return self.features(*self.inputs(rgb, thermal, region), model=model)
