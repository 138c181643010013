"""A virtual camera over a still image: smooth random trajectories as per-frame affine warps.

Coordinates: boxes are ``x, y, w, h`` in edge coordinates (pixel ``i`` spans ``[i, i + 1]``),
as the benchmarks' files and YOLO boxes mean them. ``cv2.warpAffine`` maps pixel *centres*
(pixel ``i`` at ``i``), so every matrix here maps source centre coordinates to output centre
coordinates and :func:`warp_box` shifts by half a pixel on the way in and out. A box is
warped by its four corners and the axis-aligned box around them, which is exact for the
warped rectangle (the camera roll keeps small, so the rectangle stays close to its box).
"""

from __future__ import annotations

import cv2
import numpy as np

from m5l_core.datasets.mix_config import CameraMotionConfig

# Downscaling by more than this per warp aliases with bilinear sampling; beyond it the source
# is first shrunk with area averaging.
_MAX_WARP_SHRINK = 1.5


def smooth_path(rng: np.random.Generator, n_frames: int, knot_frames: int) -> np.ndarray:
    """``(n_frames,)`` values in ``[-1, 1]`` following a uniform cubic B-spline of random knots.

    A B-spline stays inside its control points' hull (no overshoot) and is twice continuously
    differentiable, so the camera neither jumps nor stops dead at a knot.
    """
    knots = rng.uniform(-1.0, 1.0, n_frames // knot_frames + 4)
    t = np.arange(n_frames) / knot_frames
    index = np.floor(t).astype(int)
    f = t - index
    basis = np.stack([(1 - f) ** 3, 3 * f ** 3 - 6 * f ** 2 + 4, -3 * f ** 3 + 3 * f ** 2 + 3 * f + 1,
                      f ** 3]) / 6.0
    return sum(basis[k] * knots[index + k] for k in range(4))


def affine(anchor: np.ndarray, scale: float, angle: float, target: np.ndarray,
           stretch: float = 1.0) -> np.ndarray:
    """``2x3`` matrix taking source point ``anchor`` to output point ``target``.

    ``scale`` is source pixels per output pixel, ``angle`` the roll in radians; ``stretch``
    widens the source by ``sqrt(stretch)`` and narrows its height alike (area kept) before the roll.
    """
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    wide = np.sqrt(stretch)    # exactly 1.0 when unstretched, so those matrices are bit-identical
    linear = np.array([[cos * wide, -sin / wide], [sin * wide, cos / wide]])
    return np.concatenate([linear, (target - linear @ anchor)[:, None]], axis=1)


def warp_box(box: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The axis-aligned ``x, y, w, h`` (edge coordinates) around the warped box."""
    x, y, w, h = (float(v) for v in box)
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]]) - 0.5
    moved = corners @ matrix[:, :2].T + matrix[:, 2] + 0.5
    low, high = moved.min(axis=0), moved.max(axis=0)
    return np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]])


def rotated_extent(width: float, height: float, angle: float) -> tuple[float, float]:
    """Sides of the axis-aligned box around a ``width x height`` rectangle rolled by ``angle``."""
    cos, sin = abs(np.cos(angle)), abs(np.sin(angle))
    return width * cos + height * sin, width * sin + height * cos


def first_scale(box_side: float, image_size: tuple[int, int], out_size: tuple[int, int],
                motion: CameraMotionConfig, rng: np.random.Generator) -> float:
    """Source pixels per output pixel so the target's longer side spans the drawn frame fraction."""
    out_w, out_h = out_size
    fraction = rng.uniform(*motion.target_fraction)
    scale = box_side / (fraction * min(out_w, out_h))
    # Keep the window within the photo where the target allows it (less mirrored border) ...
    scale = min(scale, max(image_size[0] / out_w, image_size[1] / out_h))
    # ... but never magnify beyond max_upscale, and always leave the target room in the frame.
    return max(scale, 1.0 / motion.max_upscale, box_side / (0.8 * min(out_w, out_h)))


def follow_box(box: np.ndarray, image_size: tuple[int, int], out_size: tuple[int, int], n_frames: int,
               motion: CameraMotionConfig, rng: np.random.Generator) -> np.ndarray:
    """``(n_frames, 2, 3)`` warps of a camera that keeps ``box`` (source, edge coords) in view.

    The box centre lands at the frame centre plus an offset that wanders smoothly, bounded per
    frame by the room the (zoomed, rolled) box leaves to the frame edge, so it never leaves.
    """
    out_w, out_h = out_size
    scale0 = first_scale(max(box[2], box[3]), image_size, out_size, motion, rng)
    scales = scale0 / motion.zoom ** smooth_path(rng, n_frames, motion.knot_frames)
    angles = np.deg2rad(motion.rotation_deg) * smooth_path(rng, n_frames, motion.knot_frames)
    wander_x = smooth_path(rng, n_frames, motion.knot_frames)
    wander_y = smooth_path(rng, n_frames, motion.knot_frames)
    anchor = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2]) - 0.5
    centre = np.array([out_w, out_h]) / 2.0 - 0.5
    matrices = np.empty((n_frames, 2, 3))
    for t in range(n_frames):
        seen_w, seen_h = rotated_extent(box[2] / scales[t], box[3] / scales[t], angles[t])
        room = np.maximum(0.0, (np.array([out_w, out_h]) - (seen_w, seen_h)) / 2.0) * motion.wander
        offset = room * (wander_x[t], wander_y[t])
        matrices[t] = affine(anchor, scales[t], angles[t], centre + offset)
    return matrices


def pan_over(image_size: tuple[int, int], out_size: tuple[int, int], n_frames: int,
             motion: CameraMotionConfig, rng: np.random.Generator) -> np.ndarray:
    """``(n_frames, 2, 3)`` warps of a camera drifting over a whole photo (no target to follow)."""
    width, height = image_size
    out_w, out_h = out_size
    fit = min(width / out_w, height / out_h)
    scale0 = max(fit * rng.uniform(0.6, 1.0), 1.0 / motion.max_upscale)
    scales = scale0 / motion.zoom ** smooth_path(rng, n_frames, motion.knot_frames)
    angles = np.deg2rad(motion.rotation_deg) * smooth_path(rng, n_frames, motion.knot_frames)
    # Room for the window's centre to drift while the first frame's window stays on the photo.
    half_room = np.maximum(0.0, (np.array([width, height]) - np.array([out_w, out_h]) * scale0) / 2.0)
    drift = np.stack([smooth_path(rng, n_frames, motion.knot_frames) for _ in range(2)], axis=1)
    anchors = np.array([width, height]) / 2.0 - 0.5 + drift * half_room * motion.wander
    centre = np.array([out_w, out_h]) / 2.0 - 0.5
    return np.stack([affine(anchors[t], scales[t], angles[t], centre) for t in range(n_frames)])


def shrink_for(image: np.ndarray, matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image area-downscaled where every warp shrinks it a lot, with the matrices adjusted."""
    scale = float(np.min(1.0 / np.sqrt(np.abs(np.linalg.det(matrices[:, :, :2])))))
    factor = scale / _MAX_WARP_SHRINK
    if factor <= 1.0:
        return image, matrices
    height, width = image.shape[:2]
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    # A small-image centre q is the full-image centre fx * (q + 0.5) - 0.5 (per axis).
    fx, fy = width / size[0], height / size[1]
    to_full = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
    return small, matrices @ to_full


def warp(image: np.ndarray, matrix: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    """One output frame; the border mirrors the photo so no black edge gives the crop away."""
    return cv2.warpAffine(image, matrix, out_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
