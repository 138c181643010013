"""Ridge bounding-box regression learnt on the first frame (MDNet / RT-MDNet).

Targets are the usual R-CNN offsets of the ground truth relative to a sample box:
``dx = (gx - bx) / bw``, ``dy = (gy - by) / bh`` (centres), ``dw = log(gw / bw)``,
``dh = log(gh / bh)``. The regressor is linear in the fused RoI features with an intercept
and an L2 penalty ``alpha`` (sklearn's ``Ridge`` as MDNet uses it). Features have far more
dimensions (9216) than there are training boxes (1000), so it is solved in the dual form:
an ``N x N`` system instead of ``D x D``.
"""

from __future__ import annotations

import numpy as np
import torch


class BoxRegressor:
    def __init__(self, alpha: float):
        self.alpha = float(alpha)
        # (feature mean (D,), weights (D, 4), target mean (4,)), replaced as one: a learner thread
        # may fit while the tracking thread predicts
        self._fit: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def fitted(self) -> bool:
        return self._fit is not None

    def fit(self, features: torch.Tensor, boxes: np.ndarray, target: np.ndarray) -> None:
        """Learn offsets from ``boxes`` (N, 4) with features (N, D) towards the ``target`` box."""
        x = features.float()
        y = torch.from_numpy(offsets(boxes, np.asarray(target, dtype=np.float64)[None])).to(x.device)
        feature_mean = x.mean(dim=0)
        xc = x - feature_mean
        gram = (xc @ xc.T).double()
        gram.diagonal().add_(self.alpha)
        dual = torch.linalg.solve(gram, (y - y.mean(dim=0)).double())
        self._fit = (feature_mean, xc.T @ dual.float(), y.mean(dim=0).float())

    def predict(self, features: torch.Tensor, boxes: np.ndarray) -> np.ndarray:
        """Refined ``(N, 4)`` boxes; unchanged when the regressor was never fitted."""
        fit = self._fit
        if fit is None:
            return np.asarray(boxes, dtype=np.float64).copy()
        feature_mean, weights, target_mean = fit
        deltas = (features.float() - feature_mean) @ weights + target_mean
        return apply_offsets(boxes, deltas.cpu().double().numpy())


def offsets(boxes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(N, 4) float32 regression targets from ``boxes`` to ``targets`` (broadcast)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    centre_b = boxes[:, :2] + boxes[:, 2:] / 2
    centre_t = targets[:, :2] + targets[:, 2:] / 2
    shift = (centre_t - centre_b) / boxes[:, 2:]
    scale = np.log(targets[:, 2:] / boxes[:, 2:])
    return np.concatenate([shift, scale], axis=1).astype(np.float32)


def apply_offsets(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    centre = boxes[:, :2] + boxes[:, 2:] / 2 + deltas[:, :2] * boxes[:, 2:]
    # A bounded log-scale step: one regression never more than doubles or halves a side.
    size = boxes[:, 2:] * np.exp(np.clip(deltas[:, 2:], -np.log(2), np.log(2)))
    return np.concatenate([centre - size / 2, size], axis=1)
