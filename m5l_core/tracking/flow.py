"""Optical-flow motion proposal (median flow, as in TLD's tracker), made for dropped frames.

After a stamp gap the target may have moved several of its sides: a UAV-borne boarder covers
1.7 of his heights in the 0.4 s the first box takes, and a Gaussian spread wide enough to reach
him would thin the candidates out. Pyramidal Lucas-Kanade follows a grid of points of the last
box from the last tracked frame into this one; the half of the points with the larger
forward-backward error is dropped (TLD's rule: over long gaps no point comes back exactly, the
better half still moves with the target), and the median displacement of the rest is the
proposal. It is only a proposal: the tracker draws a share of its candidates around it and the
rest around the last box, and the classifier decides. On consecutive frames it rarely moves
beyond the candidates' own reach and is then not used (``search.flow_every_frame``).

What it follows best is what moves the whole view, the robot or UAV turning while pairs were
dropped; a target moving on its own is followed where it has texture at the coarse pyramid
levels. The reach is a few windows at the coarsest level that the image allows (OpenCV stops
where a level gets smaller than the window): about 50 px at 320x240, more at 640x480.

The same points also tell how much the box's content grew (TLD's scale, :func:`points_scale`),
and how well one scale and shift explain their moves: the tracker resizes the box it searches
around only where they do (a rigid view).
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_POINTS = 4        # fewer points tracked both ways than this: no proposal
MIN_WINDOW = 5        # Lucas-Kanade window side in pixels below which the fit is noise


def grey(rgb: np.ndarray) -> np.ndarray:
    """The single channel the flow runs on (RGB, uint8)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def fitted_window(box: np.ndarray, window: int, fit: float) -> int:
    """The Lucas-Kanade window for ``box``: ``window``, or with ``fit`` > 0 at most ``fit`` times the
    box's shorter side (not under MIN_WINDOW). A window wider than the target mostly sees what is
    around it, and follows that where it has the stronger texture (a boat's wake beside a 6 px wide
    boarder: on wakeboard7 at 640x480, the flow of the true box over 3 frames lands within a quarter
    of its side for 68 % of the frames with a 21 px window, 86 % with a fitted one)."""
    if fit <= 0:
        return int(window)
    return int(min(window, max(MIN_WINDOW, round(fit * float(min(box[2], box[3]))))))


def median_flow(previous: np.ndarray, current: np.ndarray, box: np.ndarray, grid: int, window: int,
                levels: int, max_disagreement: float = 0.0, fit: float = 0.0) -> np.ndarray | None:
    """The ``(dx, dy)`` pixels the content of ``box`` moved from ``previous`` to ``current`` (grey
    images), or None when too few grid points track reliably (see :func:`reliable_points`)."""
    points = reliable_points(previous, current, box, grid, window, levels, fit)
    return None if points is None else points_move(*points, box, max_disagreement)


def reliable_points(previous: np.ndarray, current: np.ndarray, box: np.ndarray, grid: int, window: int,
                    levels: int, fit: float = 0.0) -> tuple[np.ndarray, np.ndarray] | None:
    """A ``grid`` x ``grid`` lattice over ``box`` followed by pyramidal Lucas-Kanade from
    ``previous`` into ``current`` (window: :func:`fitted_window`): the ``(N, 2)`` start and end
    points of the better half by forward-backward error, or None when fewer than MIN_POINTS track
    both ways."""
    x, y, w, h = np.asarray(box, dtype=np.float64)
    xs, ys = np.meshgrid(np.linspace(x, x + w, grid), np.linspace(y, y + h, grid))
    start = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)[:, None]
    side = fitted_window(box, window, fit)
    lk = {"winSize": (side, side), "maxLevel": levels}
    ahead, ok_ahead, _ = cv2.calcOpticalFlowPyrLK(previous, current, start, None, **lk)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, ahead, None, **lk)
    fb_error = np.linalg.norm((back - start)[:, 0], axis=1)
    tracked = (ok_ahead[:, 0] == 1) & (ok_back[:, 0] == 1) & np.isfinite(fb_error)
    if tracked.sum() < MIN_POINTS:
        return None
    reliable = tracked & (fb_error <= float(np.median(fb_error[tracked])))
    return start[reliable, 0], ahead[reliable, 0]


def points_move(start: np.ndarray, end: np.ndarray, box: np.ndarray,
                max_disagreement: float = 0.0) -> np.ndarray | None:
    """The median move of the points; with ``max_disagreement`` > 0, None when they disagree: their
    median distance to the median move exceeds that many mean sides of ``box``. Points on a small
    target over water or snow lock onto different texture after a gap; where they move together
    the move is right even when their forward-backward error is not small."""
    moves = end - start
    move = np.median(moves, axis=0).astype(np.float64)
    if max_disagreement > 0:
        disagreement = float(np.median(np.linalg.norm(moves - move, axis=1)))
        if disagreement > max_disagreement * float(np.mean(box[2:])):
            return None
    return move


def points_scale(start: np.ndarray, end: np.ndarray, box: np.ndarray) -> tuple[float, float]:
    """How much the points spread apart (TLD's median-flow scale: the median ratio of pairwise
    distances after and before), and how well one scale and shift explains them: the median
    distance of the end points from that fit, in units of the box's side (sqrt of its area).
    A rigid view (the camera zooming, the robot approaching) fits within a few hundredths; points
    on a deforming target, or split between target and background, do not."""
    start, end = start.astype(np.float64), end.astype(np.float64)
    first, second = np.triu_indices(len(start), 1)
    before = np.linalg.norm(start[first] - start[second], axis=1)
    after = np.linalg.norm(end[first] - end[second], axis=1)
    apart = before > 1e-6
    if not apart.any():
        return 1.0, float("inf")
    scale = float(np.median(after[apart] / before[apart]))
    fitted = np.median(end, axis=0) + scale * (start - np.median(start, axis=0))
    side = float(np.sqrt(box[2] * box[3]))
    return scale, float(np.median(np.linalg.norm(end - fitted, axis=1))) / max(side, 1e-6)
