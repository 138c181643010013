"""Crops around a target and the mapping of boxes into crop pixels (shared by training and tracking).

The network never sees a whole frame: like RT-MDNet, training and tracking crop a *region* of
the frame around the target and resize it to a fixed ``out_size`` so that the target has a
known size in pixels (``target_size``, 107 in RT-MDNet). Sample boxes are mapped into the
crop's pixel coordinates and handed to :meth:`m5l_core.models.M5LNet.pool` as RoIs.

Coordinates are continuous: a box ``x, y, w, h`` covers ``[x, x + w) x [y, y + h)``, and the
pixel with index ``i`` covers ``[i, i + 1)`` (its centre is ``i + 0.5``). A region maps onto
the crop by a per-axis scale, so a region with another aspect ratio than ``out_size`` is
stretched; RT-MDNet does the same (its target is always ``107 x 107`` in the crop).
:func:`crop_sides` makes that stretch a choice: ImageNet features were learnt on undistorted
images, and a tall thin person stretched to a square no longer looks like one.

Both modalities of a registered pair are cropped with the SAME region, so one set of RoIs
serves both streams.
"""

from __future__ import annotations

import cv2
import numpy as np

BORDERS = ("mean", "replicate")
ROI_CONTEXT = 1.2  # RT-MDNet's sample padding for RoI pooling, shared by training and tracking


def _as_boxes(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (N, 4) as x, y, w, h; got {boxes.shape}")
    return boxes


def _check_region(region_xywh) -> np.ndarray:
    region = np.asarray(region_xywh, dtype=np.float64).reshape(-1)
    if region.shape != (4,) or not np.all(np.isfinite(region)) or region[2] <= 0 or region[3] <= 0:
        raise ValueError(f"region must be a finite x, y, w, h box with positive size; got {region_xywh!r}")
    return region


def _check_out_size(out_size) -> tuple[int, int]:
    width, height = (int(v) for v in out_size)
    if width < 1 or height < 1:
        raise ValueError(f"out_size must be positive (width, height); got {out_size!r}")
    return width, height


def crop_scale(region_xywh, out_size: tuple[int, int]) -> np.ndarray:
    """Crop pixels per image pixel along x and y: ``(out_w / region_w, out_h / region_h)``."""
    region = _check_region(region_xywh)
    width, height = _check_out_size(out_size)
    return np.array([width / region[2], height / region[3]])


def crop_sides(target_wh, stretch: float) -> np.ndarray:
    """The target's sides as the crop's scale sees them: its own per axis (``stretch`` 1: every target
    becomes square in the crop, RT-MDNet) down to their geometric mean on both axes (``stretch`` 0:
    one scale, the target keeps its aspect and its area maps to a square target's)."""
    sides = np.maximum(np.asarray(target_wh, dtype=np.float64), 1e-6)
    return sides ** stretch * np.sqrt(sides[0] * sides[1]) ** (1.0 - stretch)


def context_region(box_xywh, out_size: tuple[int, int],
                   target_size: float | tuple[float, float]) -> np.ndarray:
    """Region centred on ``box`` that maps the box onto ``target_size`` crop pixels per axis.

    ``target_size`` may be one number (both axes, RT-MDNet) or ``(tw, th)``. With
    ``out_size = 3 * target_size`` the region is three times the target in each direction.
    """
    box = _as_boxes(box_xywh)[0]
    if box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"box must have a positive size; got {box_xywh!r}")
    width, height = _check_out_size(out_size)
    target_w, target_h = np.broadcast_to(np.asarray(target_size, dtype=np.float64), (2,))
    region_w = box[2] * width / target_w
    region_h = box[3] * height / target_h
    centre = box[:2] + box[2:] / 2
    return np.array([centre[0] - region_w / 2, centre[1] - region_h / 2, region_w, region_h])


def crop_region(image_u8: np.ndarray, region_xywh, out_size: tuple[int, int],
                border: str = "mean") -> np.ndarray:
    """Resample ``region`` of an ``HxWx3`` image into an ``out_h x out_w x 3`` crop (bilinear).

    Parts of the region outside the image are filled with the image's mean colour
    (``border="mean"``, as MDNet pads) or by replicating the edge pixels (``"replicate"``).
    """
    if not isinstance(image_u8, np.ndarray) or image_u8.ndim != 3 or image_u8.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got {getattr(image_u8, 'shape', type(image_u8))}")
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    region = _check_region(region_xywh)
    width, height = _check_out_size(out_size)
    step_x, step_y = region[2] / width, region[3] / height
    # Inverse map: crop pixel centre (u + 0.5) -> image coordinate -> image pixel index (minus 0.5).
    inverse = np.array([[step_x, 0.0, region[0] + 0.5 * step_x - 0.5],
                        [0.0, step_y, region[1] + 0.5 * step_y - 0.5]])
    if border == "mean":
        fill = tuple(cv2.mean(image_u8)[:3])   # ~100x faster than numpy's mean on a full frame
        mode = cv2.BORDER_CONSTANT
    else:
        fill, mode = (0.0, 0.0, 0.0), cv2.BORDER_REPLICATE
    return cv2.warpAffine(np.ascontiguousarray(image_u8), inverse, (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=mode, borderValue=fill)


def image_to_crop(boxes_xywh, region_xywh, out_size: tuple[int, int]) -> np.ndarray:
    """Map ``(N, 4)`` image boxes into crop pixel coordinates (still ``x, y, w, h``)."""
    boxes = _as_boxes(boxes_xywh)
    region = _check_region(region_xywh)
    scale = crop_scale(region, out_size)
    out = boxes.copy()
    out[:, :2] = (boxes[:, :2] - region[:2]) * scale
    out[:, 2:] = boxes[:, 2:] * scale
    return out


def crop_to_image(boxes_xywh, region_xywh, out_size: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`image_to_crop`: crop pixel boxes back to image coordinates."""
    boxes = _as_boxes(boxes_xywh)
    region = _check_region(region_xywh)
    scale = crop_scale(region, out_size)
    out = boxes.copy()
    out[:, :2] = boxes[:, :2] / scale + region[:2]
    out[:, 2:] = boxes[:, 2:] / scale
    return out


def boxes_to_rois(boxes_xywh, region_xywh, out_size: tuple[int, int], batch_index: int = 0, *,
                  context: float = ROI_CONTEXT) -> np.ndarray:
    """``(N, 5)`` float32 RoIs ``batch_index, x1, y1, x2, y2`` in crop pixels.

    ``context`` grows each box about its centre (RT-MDNet pools 1.2x the sample, so the fc
    layers see a little background). The result is pure geometry: pass it (as a tensor)
    through :func:`m5l_core.models.roi_align.align_rois_to_receptive_field` before
    ``M5LNet.pool``, which shifts boxes onto the conv3 cells' receptive-field centres.
    Training and tracking must use the same ``context``; both take this default.
    """
    if context <= 0:
        raise ValueError(f"context must be positive, got {context}")
    crop_boxes = image_to_crop(boxes_xywh, region_xywh, out_size)
    centre = crop_boxes[:, :2] + crop_boxes[:, 2:] / 2
    half = crop_boxes[:, 2:] * context / 2
    index = np.full((len(crop_boxes), 1), float(batch_index))
    return np.concatenate([index, centre - half, centre + half], axis=1).astype(np.float32)
