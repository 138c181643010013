"""The learning budget: online learning queued as jobs and run a few steps after each frame.

A job is an iterator whose every ``next()`` performs one step of work: an SGD iteration,
pooling one batch of first-frame samples, fitting the box regressor. ``run_frame`` runs
``steps_per_frame`` steps after a frame's result (fractions accumulate from frame to frame),
so no frame waits for a whole update, and learning that a frame triggers starts on that frame.
Counting steps rather than seconds keeps tracking deterministic: the offline runner, a lockstep
replay and the node perform the same steps in the same order. ``time`` mode adds steps while the
frame is under ``frame_ms`` (a node with spare time learns more; not reproducible).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from m5l_core.tracking.config import BudgetConfig

Job = Iterator[None]


class Learner:
    """Pending learning jobs, taking turns step by step (so a long first-frame remainder does not
    hold back the updates); a job of a kind already queued is replaced (newer samples)."""

    def __init__(self, config: BudgetConfig):
        self.config = config
        self._jobs: list[tuple[str, Job]] = []
        self._credit = 0.0
        self.steps = 0   # steps run since the last clear()

    @property
    def pending(self) -> tuple[str, ...]:
        """Kinds of the queued jobs, the one whose turn is next first."""
        return tuple(kind for kind, _ in self._jobs)

    def clear(self) -> None:
        self._jobs.clear()
        self._credit = 0.0
        self.steps = 0

    def submit(self, kind: str, job: Job) -> None:
        self._jobs = [(k, j) for k, j in self._jobs if k != kind]
        self._jobs.append((kind, job))

    def run_all(self) -> int:
        """Every pending step now (a blocking update)."""
        ran = 0
        while self._step():
            ran += 1
        return ran

    def run_frame(self, frame_start: float) -> int:
        """This frame's share of learning; ``frame_start`` is its ``time.perf_counter()`` at arrival."""
        cfg = self.config
        if cfg.steps_per_frame == 0:
            return self.run_all()
        self._credit += cfg.steps_per_frame
        ran = 0
        while ran + 1 <= self._credit and self._step():
            ran += 1
        # Credit is for work that exists: an idle frame does not bank steps for a later burst.
        self._credit = self._credit - ran if self._jobs else self._credit % 1.0
        if cfg.mode == "time":
            deadline = frame_start + cfg.frame_ms / 1000.0
            while time.perf_counter() < deadline and self._step():
                ran += 1
        return ran

    def _step(self) -> bool:
        """One step of the job whose turn it is; False when nothing is pending."""
        while self._jobs:
            try:
                next(self._jobs[0][1])
            except StopIteration:
                self._jobs.pop(0)
                continue
            self._jobs.append(self._jobs.pop(0))
            self.steps += 1
            return True
        return False
