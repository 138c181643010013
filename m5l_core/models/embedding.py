"""Feature embedding module (paper III-A): FC + BN, L2-normalised, one per modality.

Input: the modality's RoI-pooled features flattened (512 * 3 * 3). The output lies on the unit
sphere, so Euclidean distances between embeddings are in [0, 2] -- the range the MMSL margins
(alpha = 1.6, alpha + m + beta = 1.9) are expressed in (see m5l_core.losses.mmsl).

BatchNorm needs more than one sample in training mode: embed the anchor together with its
positives and negatives (as the training loop does), never alone.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class EmbeddingHead(nn.Module):
    def __init__(self, in_features: int, dim: int, init_std: float):
        super().__init__()
        self.fc = nn.Linear(in_features, dim)
        self.bn = nn.BatchNorm1d(dim)
        nn.init.normal_(self.fc.weight, std=init_std)
        nn.init.zeros_(self.fc.bias)

    def forward(self, pooled: Tensor) -> Tensor:
        return F.normalize(self.bn(self.fc(pooled.flatten(1))), dim=1)
