"""A bound on each frame's crop from the conv layers' measured speed, for the realtime schedules.

A frame's conv time is its crop's pixels times the machine's time per pixel. The pixels follow the
target's shape: the candidates spread by the mean of its sides (RT-MDNet), so a tall, thin target
gets a larger crop than a square one of the same area (Diving's diver: 384x320 at the 80 px target,
conv layers 64-74 ms a frame in the node against 36-47 ms on the other bags; docs/experiments.md,
"Session 26: what makes Diving slow" and the full runs of session 25). The time per pixel follows
the machine's load. Either can push a live frame past its budget, and a slow frame makes the next
gap, and with it the next search, larger.

So in the schedules that already run by the clock (``budget.mode`` time and thread) a frame's crop
is taken at a coarser scale, the same place at fewer pixels, when at the recent time per pixel its
conv layers would take longer than ``budget.conv_ms``. The time per pixel is the median of the last
frames', so the one slow frame of a crop size met for the first time (oneDNN prepares kernels per
size, crop_sizes.py) does not shrink the next crops. The deterministic schedule (``steps``:
``m5l-track``, lockstep replays) never uses it: its boxes must not depend on the clock.
"""

from __future__ import annotations

from collections import deque

import numpy as np

RECENT_FRAMES = 9     # frames whose time per pixel the median is taken over
MIN_FRAMES = 3        # frames measured before any crop is bounded
STEP = 1.25           # the bound's steps below an ordinary crop (search.size_reuse's slack in the node)
MIN_SHARE = 0.25      # of an ordinary crop's pixels (half the target's side): a slow machine tracks
                      # coarser, never on a few pixels (small crops cost more per pixel, a spiral)


class CropBudget:
    """The largest crop (pixels) whose conv layers fit ``conv_ms`` at the recent speed."""

    def __init__(self, conv_ms: float, active: bool):
        self.conv_ms = float(conv_ms)
        self.active = bool(active) and self.conv_ms > 0
        self._ms_per_pixel: deque[float] = deque(maxlen=RECENT_FRAMES)

    def max_pixels(self, ordinary: float) -> float:
        """Crop pixels allowed for the next frame, whose ordinary crop has ``ordinary`` pixels
        (infinite while off or not yet measured). Below the ordinary crop the bound moves in steps
        of ``STEP``, so a load that wavers does not bring a new crop size every frame."""
        if not self.active or len(self._ms_per_pixel) < MIN_FRAMES:
            return np.inf
        allowed = self.conv_ms / float(np.median(self._ms_per_pixel))
        if allowed >= ordinary:
            return allowed
        steps = np.ceil(np.log(ordinary / allowed) / np.log(STEP))
        return max(ordinary * STEP ** -steps, MIN_SHARE * ordinary)

    def record(self, pixels: float, seconds: float) -> None:
        """One frame's conv layers took ``seconds`` on a crop (input) of ``pixels``."""
        if self.active and pixels > 0 and seconds > 0:
            self._ms_per_pixel.append(1000.0 * seconds / pixels)
