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

PRIOR_KEY = "box_prior"    # checkpoint extra: the offline-learnt regressor of that model's features


class BoxPrior:
    """A linear box regressor learnt offline on many objects (``python -m m5l_core.tracking.box_prior``)
    for one model's fused RoI features, stored in that model's checkpoint.

    The first-frame regressor knows only the first view of its target; on real video, where the
    target turns or deforms, its sizes lean to that view. This one has seen many objects' extents.
    """

    def __init__(self, feature_mean: torch.Tensor, weights: torch.Tensor, offset_mean: torch.Tensor):
        self.feature_mean, self.weights, self.offset_mean = feature_mean, weights, offset_mean

    def offsets(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, 4)`` offsets (dx, dy, log dw, log dh) from each box to the object it frames."""
        return (features.float() - self.feature_mean) @ self.weights + self.offset_mean

    def to(self, device: torch.device | str) -> BoxPrior:
        return BoxPrior(self.feature_mean.to(device), self.weights.to(device), self.offset_mean.to(device))

    def to_extra(self) -> dict[str, dict[str, torch.Tensor]]:
        return {PRIOR_KEY: {"feature_mean": self.feature_mean.cpu(), "weights": self.weights.cpu(),
                            "offset_mean": self.offset_mean.cpu()}}

    @classmethod
    def from_extra(cls, extra: dict, device: torch.device | str = "cpu") -> BoxPrior | None:
        """The prior a checkpoint carries (None for one without)."""
        stored = extra.get(PRIOR_KEY)
        if stored is None:
            return None
        return cls(*(stored[k].float() for k in ("feature_mean", "weights", "offset_mean"))).to(device)

    @classmethod
    def fit(cls, features: torch.Tensor, targets: torch.Tensor, alpha: float) -> BoxPrior:
        """Ridge regression of ``targets`` (N, 4) offsets on ``features`` (N, D), primal form
        (many more boxes than dimensions here, unlike the first frame's)."""
        x, y = features.double(), targets.double()
        feature_mean, offset_mean = x.mean(dim=0), y.mean(dim=0)
        xc = x - feature_mean
        gram = xc.T @ xc
        gram.diagonal().add_(alpha)
        weights = torch.linalg.solve(gram, xc.T @ (y - offset_mean))
        return cls(feature_mean.float(), weights.float(), offset_mean.float())


class BoxRegressor:
    def __init__(self, alpha: float, prior: BoxPrior | None = None, prior_size_weight: float = 0.0):
        self.alpha = float(alpha)
        # the size's log offsets are mixed: (1 - w) first frame + w prior; the centre stays the first
        # frame's (the prior knows objects' extents, the first frame knows where this target's centre is)
        self.prior = prior if prior_size_weight > 0 else None
        self.prior_size_weight = float(prior_size_weight)
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
        if self.prior is not None:
            w = self.prior_size_weight
            deltas[:, 2:] = (1 - w) * deltas[:, 2:] + w * self.prior.offsets(features)[:, 2:]
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
