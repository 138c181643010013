"""Time-aware search: how far the target may have moved since the last tracked frame.

Frames come with image stamps in the node; when pairs were dropped (the tracker was busy), the
gap since the last tracked frame is several camera frames and the target may be farther from
the last box than one frame's spread allows. The spread grows with the gap as
``(gap / gap_free) ** gap_exponent`` (up to ``max_trans``), the scale jitter with it
(``gap_scale``), and, optionally, the search centre moves by a share of the velocity seen between
the last two good frames times the gap (only after a gap: the next frame is searched around the
last box). Without stamps (offline sequences) every frame is the next one and none of that
changes.

The optical flow of the last box into this frame proposes where the target went (flow.py; a
share of the candidates is drawn there): after a gap, and with ``flow_every_frame`` (the
default) on every frame, stamped or not, so offline runs and lockstep replays stay equal. With
``flow_scale`` the same points also say how much the target grew or shrank (a camera zooming, a
robot closing in), and the box searched around is resized by that, where one scale fits them.
"""

from __future__ import annotations

import numpy as np

from m5l_core.tracking.config import SearchConfig
from m5l_core.tracking.flow import grey, points_move, points_scale, reliable_points

# Bound on one frame's flow scale change (times the gap's growth after a gap): a target seen at
# 30 Hz does not grow by a tenth between two frames, a wrong fit (points on two surfaces) can.
MAX_SCALE_STEP = 1.1


class MotionModel:
    def __init__(self, config: SearchConfig):
        self.config = config
        self.reset(None, None)

    def reset(self, box: np.ndarray | None, stamp: float | None, rgb: np.ndarray | None = None) -> None:
        self._stamp = stamp                         # stamp of the last tracked frame
        self._grey = self._flow_frame(rgb, stamp)   # its grey image, kept for the flow proposal
        self._previous_grey: np.ndarray | None = None
        self._points: tuple[np.ndarray, np.ndarray] | None = None   # the last box's flow, this frame
        self._good: tuple[np.ndarray, float] | None = None if stamp is None or box is None else (
            _centre(box), stamp)                    # centre and stamp of the last good frame
        self._velocity = np.zeros(2)                # pixels per second
        self.gap = 0.0                              # seconds between the last two tracked frames

    def advance(self, stamp: float | None, rgb: np.ndarray | None = None) -> float:
        """Note a new frame (``rgb``: its image, for the flow proposal); returns the gap in seconds
        since the last one (0 when unknown)."""
        gap = 0.0
        if stamp is not None and self._stamp is not None:
            gap = max(0.0, float(stamp) - self._stamp)
        if stamp is not None:
            self._stamp = float(stamp)
        self.gap = gap
        self._previous_grey, self._grey = self._grey, self._flow_frame(rgb, stamp)
        self._points = None
        return gap

    def follow(self, box: np.ndarray) -> None:
        """Follow ``box``'s content from the last tracked frame into this one (optical flow), for
        :meth:`flow_proposal` and :meth:`rescaled`: after a gap, or on every frame with
        ``flow_every_frame`` or ``flow_scale``."""
        cfg = self.config
        self._points = None
        if self._previous_grey is None or self._grey is None:
            return
        if self._after_gap() or self._flow_on_every_frame():
            self._points = reliable_points(self._previous_grey, self._grey, box, cfg.flow_grid,
                                           cfg.flow_window, cfg.flow_levels, cfg.flow_window_fit)

    def _flow_on_every_frame(self) -> bool:
        """Whether the flow is used on every frame (the proposal with ``flow_every_frame``, or the
        scale), not only after a gap."""
        cfg = self.config
        return (cfg.flow_share > 0 and cfg.flow_every_frame) or cfg.flow_scale > 0

    def _after_gap(self) -> bool:
        return self.config.gap_free > 0 and self.gap > self.config.gap_free

    def _flow_frame(self, rgb: np.ndarray | None, stamp: float | None) -> np.ndarray | None:
        """The grey image the flow needs, only where the flow is used: stamped frames (a proposal
        after a gap), or every frame with ``flow_every_frame`` or ``flow_scale``."""
        if rgb is None or (self.config.flow_share <= 0 and self.config.flow_scale <= 0):
            return None
        if stamp is None and not self._flow_on_every_frame():
            return None
        return grey(rgb)

    def flow_proposal(self, box: np.ndarray, spread: float) -> np.ndarray | None:
        """``box`` moved by the optical flow that :meth:`follow` measured, after a gap (or on every
        frame with ``flow_every_frame``). None otherwise, when the flow is unreliable, or when the
        move is within the candidates' own reach (half of ``spread`` mean sides, one standard
        deviation of their offsets): there a second cluster would only enlarge the crop."""
        cfg = self.config
        if self._points is None or cfg.flow_share <= 0 or not (self._after_gap() or cfg.flow_every_frame):
            return None
        shift = points_move(*self._points, box, cfg.flow_max_disagreement)
        side = float(np.mean(box[2:]))
        if shift is None or np.linalg.norm(shift) <= 0.5 * spread * side or self._beyond_reach(shift, side):
            return None
        moved = np.array(box, dtype=np.float64)
        moved[:2] += shift
        return moved

    def rescaled(self, box: np.ndarray) -> np.ndarray:
        """``box`` resized about its centre by the flow's scale to the power ``flow_scale``, where
        one scale and shift fit the points within ``flow_scale_fit`` box sides; else ``box``."""
        cfg = self.config
        if cfg.flow_scale <= 0 or self._points is None or len(self._points[0]) < 2:
            return box
        scale, misfit = points_scale(*self._points, box)
        if misfit > cfg.flow_scale_fit:
            return box
        bound = np.log(MAX_SCALE_STEP) * max(1.0, self._gap_growth())
        factor = float(np.exp(np.clip(cfg.flow_scale * np.log(scale), -bound, bound)))
        size = np.asarray(box, dtype=np.float64)[2:] * factor
        return np.concatenate([_centre(box) - size / 2, size])

    def _beyond_reach(self, shift: np.ndarray, side: float) -> bool:
        """A move farther than the target could have gone (``flow_max_move`` sides per frame's worth
        of gap): points that locked onto something else."""
        cfg = self.config
        if cfg.flow_max_move <= 0:
            return False
        return float(np.linalg.norm(shift)) > cfg.flow_max_move * side * max(1.0, self._gap_growth())

    def _gap_growth(self) -> float:
        """How many frames' worth of motion the gap allows: ``(gap / gap_free) ** gap_exponent``
        after a gap, else 1."""
        cfg = self.config
        return (self.gap / cfg.gap_free) ** cfg.gap_exponent if self._after_gap() else 1.0

    def spread(self, base: float) -> float:
        """Candidate spread (target sides) for this frame, from ``base`` and the gap."""
        if not self._after_gap():
            return base
        return max(base, min(base * self._gap_growth(), self.config.max_trans))

    def scale_jitter(self, base_spread: float) -> float:
        """The candidates' scale jitter base for this frame: ``search.scale``, and after a gap (with
        ``gap_scale``) grown as the spread grew from ``base_spread``, since a target zooms during
        dropped frames as it moves."""
        cfg = self.config
        spread = self.spread(base_spread)
        if not cfg.gap_scale or base_spread <= 0 or spread <= base_spread:
            return cfg.scale
        return cfg.scale ** (spread / base_spread)

    def predict(self, box: np.ndarray) -> np.ndarray:
        """The box to search around: ``box`` moved by the constant-velocity prediction, after a gap
        (dropped pairs) only: the next frame is searched around the last box, as in RT-MDNet, so a
        lockstep replay still equals the offline runner."""
        weight = self.config.velocity_weight
        if weight <= 0 or not self._after_gap():
            return box
        moved = np.array(box, dtype=np.float64)
        moved[:2] += weight * self._velocity * self.gap
        return moved

    def good_frame(self, box: np.ndarray) -> None:
        """A successful result at the current stamp: update the velocity estimate."""
        if self._stamp is None:
            return
        centre = _centre(box)
        if self._good is not None and self._stamp > self._good[1]:
            self._velocity = (centre - self._good[0]) / (self._stamp - self._good[1])
        self._good = (centre, self._stamp)


def _centre(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    return box[:2] + box[2:] / 2
