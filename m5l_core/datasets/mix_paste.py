"""``paste``: real objects cut out along their instance polygons, moving over real backgrounds.

The camera drifts over a background photo (:func:`mix_camera.pan_over`); the target, cut out
with its polygon, roams the frame along a smooth path while its size drifts (and, where
configured, it rolls and its width/height ratio drifts, so its box changes shape as a diver's or
a turning pedestrian's does); in some sequences a second cut-out object crosses in front of it
(partial occlusion). The ground truth is the box
of the target's own warped mask (alpha >= 0.5), so it is exact; under occlusion it keeps the
whole object's extent, as the benchmarks annotate occluded targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from m5l_core.datasets.image_folders import list_images
from m5l_core.datasets.mix_camera import affine, pan_over, rotated_extent, shrink_for, smooth_path, warp
from m5l_core.datasets.mix_config import PasteConfig
from m5l_core.datasets.mix_inputs import BoxedObject, annotated_objects, gather, read_rgb, usable
from m5l_core.datasets.mix_look import draw_look, scene_velocity
from m5l_core.datasets.mix_photo import RenderedSequence, seeded_order

# Cut-outs keep this many pixels around the polygon so bilinear warping has a clean zero border.
_SPRITE_MARGIN = 2


@dataclass(frozen=True)
class Sprite:
    """An object cut out of its photo: colour patch and a 0..1 mask of the same size."""

    rgb: np.ndarray
    alpha: np.ndarray

    @property
    def longer_side(self) -> int:
        return max(self.rgb.shape[:2]) - 2 * _SPRITE_MARGIN


def cut_out(item: BoxedObject) -> Sprite:
    photo = read_rgb(item.image)
    x1, y1 = np.floor(item.polygon.min(axis=0)).astype(int) - _SPRITE_MARGIN
    x2, y2 = np.ceil(item.polygon.max(axis=0)).astype(int) + _SPRITE_MARGIN
    height, width = photo.shape[:2]
    patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = photo[sy1:sy2, sx1:sx2]
    mask = np.zeros(patch.shape[:2], np.uint8)
    # Polygon vertices are edge coordinates; fillPoly wants pixel centres, in 1/16 px (shift=4).
    points = np.round((item.polygon - (x1, y1) - 0.5) * 16).astype(np.int32)
    cv2.fillPoly(mask, [points], 255, lineType=cv2.LINE_AA, shift=4)
    return Sprite(patch, mask.astype(np.float32) / 255.0)


@dataclass(frozen=True)
class TargetPath:
    """Per frame: the target's longer side (px, before stretching), centre (pixel-centre
    coordinates), roll (radians) and width/height stretch (area kept)."""

    sides: np.ndarray
    centres: np.ndarray
    angles: np.ndarray
    stretches: np.ndarray


def place(sprite: Sprite, centre: np.ndarray, side: float, angle: float = 0.0,
          stretch: float = 1.0) -> np.ndarray:
    """Matrix putting the sprite's centre at ``centre`` (output pixel centres) with longer side
    ``side``, its width times and its height over ``sqrt(stretch)``, rolled by ``angle``."""
    height, width = sprite.rgb.shape[:2]
    anchor = np.array([width, height]) / 2.0 - 0.5
    return affine(anchor, sprite.longer_side / side, angle, centre, stretch)


def paste(frame: np.ndarray, sprite: Sprite, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frame with the sprite composited in, and the sprite's warped mask."""
    size = (frame.shape[1], frame.shape[0])
    rgb = cv2.warpAffine(sprite.rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(sprite.alpha, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = alpha[..., None]
    mixed = frame.astype(np.float32) * (1.0 - a) + rgb.astype(np.float32) * a
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8), alpha


def mask_box(alpha: np.ndarray) -> np.ndarray:
    """``x, y, w, h`` of the pixels where the mask is at least one half (NaN when there are none)."""
    rows, cols = np.nonzero(alpha >= 0.5)
    if len(rows) == 0:
        return np.full(4, np.nan)
    return np.array([cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1],
                    dtype=float)


def target_path(config: PasteConfig, aspect: float, rng: np.random.Generator) -> TargetPath:
    """The target's pose in every frame, its box inside the frame."""
    out = np.array([config.width, config.height], dtype=float)
    n, knots = config.frames, config.motion.knot_frames
    base = rng.uniform(*config.object_fraction) * out.min()
    sides = base * config.scale_change ** smooth_path(rng, n, knots)
    roam = np.stack([smooth_path(rng, n, knots) for _ in range(2)], axis=1)
    # Drawn only when on, so that a mix without them is the same, file for file, as before they existed.
    angles = (np.deg2rad(config.rotation_deg) * smooth_path(rng, n, knots) if config.rotation_deg > 0
              else np.zeros(n))
    stretches = (config.aspect_change ** smooth_path(rng, n, knots) if config.aspect_change > 1.0
                 else np.ones(n))
    width = sides * aspect / max(aspect, 1.0) * np.sqrt(stretches)
    height = sides / max(aspect, 1.0) / np.sqrt(stretches)
    extent = np.stack(rotated_extent(width, height, angles), axis=1)
    room = np.maximum(0.0, (out - extent) / 2.0)
    centres = out / 2.0 - 0.5 + roam * room * config.travel
    return TargetPath(sides, centres, angles, stretches)


def crossing(centres: np.ndarray, sides: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Centres of an occluder that passes over the target once, from one side to the other."""
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    reach = (sides * (1.0 + scale) / 2.0)[:, None]
    progress = np.linspace(1.0, -1.0, len(centres))[:, None]
    return centres + progress * reach * direction


class PasteSource:
    """Every usable polygon object of the configured photos, pasted in a seeded order."""

    key = "mix.paste"

    def __init__(self, config: PasteConfig, seed: int):
        self.config = config
        key = f"{self.key}.object_roots"

        def objects(root: Path) -> list[BoxedObject]:
            return usable(annotated_objects(root, "polygons", key), config.min_object_side)

        self.objects = gather(config.object_roots, key, config.sequences, objects)
        self.backgrounds = gather(config.background_dirs, f"{self.key}.background_dirs", config.sequences,
                                  list_images)
        self.order = seeded_order(len(self.objects), seed, "paste")

    def render(self, index: int, rng: np.random.Generator) -> RenderedSequence:
        config = self.config
        item = self.objects[self.order[index % len(self.objects)]]
        background_path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        background = read_rgb(background_path)
        out_size = (config.width, config.height)
        matrices = pan_over((background.shape[1], background.shape[0]), out_size, config.frames,
                            config.motion, rng)
        look = draw_look(config.motion, config.thermal, config.frames, rng)
        target = cut_out(item)
        path = target_path(config, item.box[2] / item.box[3], rng)
        sides = path.sides
        occluder, occluder_path, occluder_scale = None, None, 0.0
        if rng.random() < config.occluder_probability:
            other = self.objects[int(rng.integers(len(self.objects)))]
            occluder, occluder_scale = cut_out(other), float(rng.uniform(*config.occluder_scale))
            occluder_path = crossing(path.centres, sides, occluder_scale, rng)
        small, small_matrices = shrink_for(background, matrices)
        rgb_frames, thermal_frames, boxes = [], [], []
        for t in range(config.frames):
            pose = place(target, path.centres[t], sides[t], path.angles[t], path.stretches[t])
            frame, alpha = paste(warp(small, small_matrices[t], out_size), target, pose)
            boxes.append(mask_box(alpha))
            if occluder is not None:
                spot = place(occluder, occluder_path[t], sides[t] * occluder_scale)
                frame, _ = paste(frame, occluder, spot)
            frame, heat = look.finish(t, frame, None, scene_velocity(matrices, t, path.centres[t]), rng)
            rgb_frames.append(frame)
            thermal_frames.append(heat)
        info = {"object": str(item.image), "background": str(background_path),
                "occluded": occluder is not None}
        return RenderedSequence(rgb_frames, thermal_frames, np.stack(boxes), info)
