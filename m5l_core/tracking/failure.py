"""When a frame is a failure (LOST): the score against the scores of recent good frames.

RT-MDNet calls a frame a failure whenever its score (logit difference of the top-k) is not
above 0. On hard sequences the classifier is rarely that sure even while the box is on the
target, so most frames were "failures" and ran the expensive widened search. Calibrated, a
failure needs the score to be below the threshold *and* clearly below what recent good frames
scored: below the median of the last ``window`` good scores minus ``drop`` robust standard
deviations (1.4826 x the median absolute deviation, at least ``min_spread``). A sudden fall of
the score is what losing the target looks like; a classifier that is merely unsure is not.
The reference starts from the first frame's positive samples, scored after the first fit.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from m5l_core.tracking.config import FailureConfig

MAD_TO_STD = 1.4826   # median absolute deviation -> standard deviation of a normal distribution


class ScoreReference:
    def __init__(self, config: FailureConfig, threshold: float):
        self.config = config
        self.threshold = threshold
        self._scores: deque[float] = deque(maxlen=config.window)

    def reset(self, first_scores: np.ndarray) -> None:
        """Start from the first frame's positives' scores (their median stands for one good frame)."""
        self._scores.clear()
        if len(first_scores):
            self._scores.append(float(np.median(first_scores)))

    def record(self, score: float) -> None:
        """Add the score of a good frame."""
        self._scores.append(float(score))

    def limit(self) -> float:
        """Scores below this (and not above the threshold) are failures."""
        if not self.config.calibrated or not self._scores:
            return self.threshold
        scores = np.asarray(self._scores)
        median = float(np.median(scores))
        spread = max(MAD_TO_STD * float(np.median(np.abs(scores - median))), self.config.min_spread)
        return min(self.threshold, median - self.config.drop * spread)

    def is_failure(self, score: float) -> bool:
        if score > self.threshold:
            return False
        return not self.config.calibrated or score < self.limit()
