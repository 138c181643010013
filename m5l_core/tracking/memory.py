"""Bounded per-frame memories of cached sample features for online updates.

Each entry is the fused features ``(n, D)`` of the samples collected on one frame. Keeping
features rather than boxes is what lets an update train fc4-fc6 without re-running the conv
layers; the frame bound keeps memory and update cost constant over long sequences.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch


class FrameMemory:
    """The newest ``capacity`` frames of sample features."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"memory capacity must be at least 1 frame, got {capacity}")
        self._frames: deque[torch.Tensor] = deque(maxlen=capacity)
        self.added = 0    # frames added so far (tells whether anything is new since a given moment)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def capacity(self) -> int:
        return self._frames.maxlen or 0

    def add(self, features: torch.Tensor) -> None:
        if features.dim() != 2 or features.shape[0] == 0:
            return  # nothing collected on this frame: keep the window of real samples
        self._frames.append(features.detach())
        self.added += 1

    def latest(self, n_frames: int | None = None) -> torch.Tensor:
        """Features of the newest ``n_frames`` frames (all when None), stacked."""
        if not self._frames:
            raise ValueError("the sample memory is empty")
        frames = list(self._frames)
        if n_frames is not None:
            frames = frames[-n_frames:]
        return torch.cat(frames, dim=0)

    def clear(self) -> None:
        self._frames.clear()


def random_subset(features: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """At most ``n`` rows of ``features``, drawn without replacement (all of them when fewer)."""
    if len(features) <= n:
        return features
    index = torch.from_numpy(rng.choice(len(features), n, replace=False)).to(features.device)
    return features.index_select(0, index)
