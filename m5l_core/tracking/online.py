"""The one online training loop: fc4-fc6 on cached fused features, with hard-negative mining.

Used for first-frame fine-tuning (fresh fc6) and for the short- and long-term updates. Each
iteration takes ``batch_pos`` positives and, out of ``neg_candidates`` negatives scored by the
current classifier, the ``batch_neg`` that look most like the target (RT-MDNet's hard-negative
mining). The loss is the two-class softmax cross-entropy SUMMED over the mini-batch, as in
RT-MDNet, so its learning rates carry over unchanged.

Only fc4, fc5 and the fresh fc6 receive gradients: the features are cached after fusion, so
conv layers and attention never run during an update (that is what keeps updates cheap).
A :class:`TrainingRun` is one such training job, steppable one iteration at a time so that the
tracker's learning budget (learner.py) can spread it over frames without changing its steps.
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from m5l_core.tracking.config import OnlineOptimConfig


def online_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The network's weights that online learning changes: fc4 and fc5 (the sequence-specific
    head aside)."""
    return [*model.fc4.parameters(), *model.fc5.parameters()]


LEARNER_OWN_LAYERS = ("fc4", "fc5", "dropout")   # trained online, or switched in mode while training


def learner_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for a learner thread: its own fc4, fc5 and dropout, every other layer
    shared (online learning never changes them or their mode, and reading them from two threads
    is safe). A deep copy of the whole network costs ~40 ms of Python per new target on a CPU,
    most of it walking the backbone's modules."""
    clone = copy.copy(model)
    for table in ("_modules", "_parameters", "_buffers"):
        setattr(clone, table, type(getattr(model, table))(getattr(model, table)))
    for name in LEARNER_OWN_LAYERS:
        setattr(clone, name, copy.deepcopy(getattr(model, name)))
    return clone


class OnlineClassifier:
    """The network's fc4/fc5 with a sequence-specific fc6, trained online."""

    def __init__(self, model: nn.Module, head: nn.Linear, config: OnlineOptimConfig,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        self.model = model
        self.head = head
        self.config = config
        self.autocast = autocast
        head_ids = {id(p) for p in head.parameters()}
        domain_heads = getattr(model, "domain_heads", None)
        skip = head_ids | ({id(p) for p in domain_heads.parameters()} if domain_heads is not None else set())
        self._fc_params = [p for p in model.fc_parameters() if id(p) not in skip]

    def learnt_parameters(self) -> list[torch.Tensor]:
        """What online learning changes: fc4, fc5 and the head (in a fixed order)."""
        return [*online_parameters(self.model), *self.head.parameters()]

    def load_weights_from(self, other: OnlineClassifier) -> None:
        """Copy ``other``'s fc4, fc5 and head into this classifier (a learner thread publishing)."""
        with torch.no_grad():
            for mine, theirs in zip(self.learnt_parameters(), other.learnt_parameters(), strict=True):
                mine.copy_(theirs)

    def logits(self, fused: torch.Tensor) -> torch.Tensor:
        """(N, 2) float logits in evaluation mode (no dropout, no gradients)."""
        self._dropout(False)
        with torch.no_grad(), self.autocast():
            return self.model.classify(fused, self.head).float()

    def scores(self, fused: torch.Tensor) -> torch.Tensor:
        """Target score per sample: positive minus negative logit (> 0 means p(target) > 0.5)."""
        logits = self.logits(fused)
        return logits[:, 1] - logits[:, 0]

    def optimizer(self, lr: float) -> torch.optim.SGD:
        cfg = self.config
        groups = [{"params": self._fc_params, "lr": lr},
                  {"params": list(self.head.parameters()), "lr": lr * cfg.head_lr_mult}]
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    def train(self, optimizer: torch.optim.Optimizer, pos: torch.Tensor, neg: torch.Tensor,
              iterations: int, rng: np.random.Generator) -> float:
        """``iterations`` SGD steps at once; returns the last mini-batch loss (nan when none ran)."""
        return TrainingRun(self, optimizer, pos, neg, iterations, rng).run_all()

    def sgd_step(self, optimizer: torch.optim.Optimizer, batch_pos: torch.Tensor,
                 neg_candidates: torch.Tensor) -> float:
        """One SGD step on ``batch_pos`` and the hardest of ``neg_candidates``; returns its loss."""
        cfg = self.config
        batch = torch.cat((batch_pos, self._hard_negatives(neg_candidates)))
        if cfg.modality_dropout > 0:
            batch = drop_modalities(batch, cfg.modality_dropout)
        self._dropout(True)
        with self.autocast():
            logits = self.model.classify(batch, self.head).float()
        labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        labels[: len(batch_pos)] = 1
        loss = F.cross_entropy(logits, labels, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self._fc_params + list(self.head.parameters()), cfg.grad_clip)
        optimizer.step()
        self._dropout(False)   # scoring between steps (the next frame) runs without dropout
        return float(loss.detach())

    def _dropout(self, active: bool) -> None:
        """Switch the fc path's dropout, the one module of ``classify`` whose mode matters. The
        backbone stays in evaluation mode: ``Module.train()`` on the whole model walks every backbone
        module, about 2 ms per call on a CPU, twice per SGD step."""
        self.model.dropout.train(active)

    def _hard_negatives(self, candidates: torch.Tensor) -> torch.Tensor:
        """The ``batch_neg`` candidates with the highest positive logit (all when fewer)."""
        keep = self.config.batch_neg
        if len(candidates) <= keep:
            return candidates
        positive_logit = self.logits(candidates)[:, 1]
        return candidates.index_select(0, positive_logit.topk(keep).indices)


def drop_modalities(fused: torch.Tensor, share: float) -> torch.Tensor:
    """``fused`` with one modality zeroed in about ``share`` of its rows (RGB or thermal at random).

    Fused features are the RGB half followed by the thermal half (models/fusion.py).
    """
    n, half = len(fused), fused.shape[1] // 2
    draws = torch.rand(n, device=fused.device)
    keep = torch.ones(n, 2, dtype=fused.dtype, device=fused.device)
    dropped = draws < share
    keep[dropped, (draws[dropped] < share / 2).long()] = 0   # column 0 = RGB, 1 = thermal
    return (fused.view(n, 2, half) * keep[:, :, None]).view(n, -1)


def weight_publisher(owner) -> Callable[[], None]:
    """The learner's publish callback for a tracker: copies ``owner.trainer`` into
    ``owner.classifier`` where online learning trains a copy (learner thread). Weak, so a learner
    thread does not keep its tracker alive."""
    ref = weakref.ref(owner)

    def publish() -> None:
        t = ref()
        if t is not None and t.trainer is not t.classifier:
            t.classifier.load_weights_from(t.trainer)
    return publish


class TrainingRun:
    """One training job (first-frame fine-tuning or an update) that can run a few steps at a time.

    Every random draw of the job (which positives and negative candidates each step takes) is
    made when the job is created, so running it in pieces spread over frames (the learning
    budget) performs exactly the steps a blocking run would, in the same order.
    """

    def __init__(self, classifier: OnlineClassifier, optimizer: torch.optim.Optimizer, pos: torch.Tensor,
                 neg: torch.Tensor, iterations: int, rng: np.random.Generator,
                 neg_candidates: int | None = None):
        cfg = classifier.config
        self.classifier, self.optimizer = classifier, optimizer
        self.pos, self.neg = pos, neg
        self.last_loss = float("nan")
        self.done = 0
        self.iterations = iterations if iterations > 0 and len(pos) and len(neg) else 0
        if not self.iterations:
            return
        n_cand = max(neg_candidates or cfg.neg_candidates, cfg.batch_neg)
        self._pos_idx = _index_stream(len(pos), cfg.batch_pos, iterations, rng, pos.device)
        self._neg_idx = _index_stream(len(neg), n_cand, iterations, rng, neg.device)

    @property
    def remaining(self) -> int:
        return self.iterations - self.done

    def step(self) -> float:
        """The next SGD step of the job."""
        index = self.done
        batch_pos = self.pos.index_select(0, self._pos_idx[index])
        self.last_loss = self.classifier.sgd_step(self.optimizer, batch_pos,
                                                  self.neg.index_select(0, self._neg_idx[index]))
        self.done += 1
        return self.last_loss

    def run_all(self) -> float:
        """Every remaining step now; returns the last mini-batch loss (nan when none ran)."""
        while self.remaining:
            self.step()
        return self.last_loss

    def as_job(self):
        """The remaining steps as a learner job (learner.py): one SGD iteration per ``next``."""
        while self.remaining:
            self.step()
            yield


def _index_stream(n: int, per_step: int, steps: int, rng: np.random.Generator,
                  device: torch.device) -> torch.Tensor:
    """(steps, per_step) indices walking through successive random permutations of ``range(n)``."""
    needed = per_step * steps
    rounds = -(-needed // n)
    order = np.concatenate([rng.permutation(n) for _ in range(rounds)])[:needed]
    return torch.from_numpy(order.reshape(steps, per_step)).to(device)
