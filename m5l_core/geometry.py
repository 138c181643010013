"""Box geometry shared by sampling, tracking and evaluation.

Boxes are ``(x, y, w, h)`` with (x, y) the top-left corner, as float arrays of shape
``(..., 4)``. Two overlap conventions exist on purpose:

* :func:`overlap_ratio` — continuous geometry, used for sample generation and training;
* :func:`overlap_ratio_pixels` — the MATLAB toolkits' pixel convention (right edge at
  ``x + w - 1``, ``+1`` in intersections), used only by the benchmark evaluator so the
  scores match the published ones.
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape[-1] != 4:
        raise ValueError(f"boxes must have 4 values (x, y, w, h) in the last axis, got shape {arr.shape}")
    return arr


def xywh_to_xyxy(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)


def xyxy_to_xywh(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2]], axis=-1)


def centers(boxes) -> np.ndarray:
    """Box centres as ``x + w/2, y + h/2`` (the GTOT/RGBT234 toolkit convention)."""
    b = as_boxes(boxes)
    return b[..., :2] + b[..., 2:] / 2.0


def overlap_ratio(a, b) -> np.ndarray:
    """IoU of boxes ``a`` and ``b`` (broadcast) in continuous coordinates."""
    a, b = as_boxes(a), as_boxes(b)
    left = np.maximum(a[..., 0], b[..., 0])
    top = np.maximum(a[..., 1], b[..., 1])
    right = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    bottom = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def overlap_ratio_pixels(a, b) -> np.ndarray:
    """IoU in the MATLAB toolkits' pixel convention (inclusive right/bottom edges)."""
    a, b = as_boxes(a), as_boxes(b)
    left = np.maximum(a[..., 0], b[..., 0])
    top = np.maximum(a[..., 1], b[..., 1])
    right = np.minimum(a[..., 0] + a[..., 2] - 1, b[..., 0] + b[..., 2] - 1)
    bottom = np.minimum(a[..., 1] + a[..., 3] - 1, b[..., 1] + b[..., 3] - 1)
    inter = np.clip(right - left + 1, 0, None) * np.clip(bottom - top + 1, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def polygon_to_xywh(polygons) -> np.ndarray:
    """Axis-aligned bounding box of 8-value corner polygons ``x1 y1 ... x4 y4``."""
    p = np.asarray(polygons, dtype=np.float64)
    if p.shape[-1] != 8:
        raise ValueError(f"polygons must have 8 values, got shape {p.shape}")
    xs, ys = p[..., 0::2], p[..., 1::2]
    x1, y1 = xs.min(axis=-1), ys.min(axis=-1)
    return np.stack([x1, y1, xs.max(axis=-1) - x1, ys.max(axis=-1) - y1], axis=-1)


def clip_box(box, width: int, height: int, min_size: float = 1.0) -> np.ndarray:
    """Keep a box inside a ``width x height`` image with at least ``min_size`` sides."""
    b = as_boxes(box).copy()
    b[..., 2] = np.clip(b[..., 2], min_size, width)
    b[..., 3] = np.clip(b[..., 3], min_size, height)
    b[..., 0] = np.clip(b[..., 0], 0, width - b[..., 2])
    b[..., 1] = np.clip(b[..., 1], 0, height - b[..., 3])
    return b
