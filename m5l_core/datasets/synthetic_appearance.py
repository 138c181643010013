"""Textures and heat signatures of the synthetic scene (background, target, distractors, occluder).

Everything is vectorised numpy/OpenCV: noise grids upsampled with bicubic interpolation give
smooth multi-scale texture cheaply. Thermal images are kept as float32 levels in 0..1 until
they are written, so 8- and 16-bit output come from the same scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from m5l_core.datasets.synthetic_config import SyntheticConfig

TEMPLATE_PX = 96  # long side of object templates; they are resized to the box every frame


@dataclass(frozen=True)
class ObjectLook:
    """How one object looks: an RGB texture and a heat pattern (0..1) at template resolution.

    ``heat`` is the rise above ambient per unit of pattern; ``exponent`` shapes the
    superellipse silhouette (large = boxy, 2 = ellipse); ``None`` means a full rectangle.
    """

    rgb: np.ndarray
    pattern: np.ndarray
    heat: float
    exponent: float | None


@dataclass(frozen=True)
class SceneLook:
    background_rgb: np.ndarray
    background_thermal: np.ndarray
    ambient: float
    target: ObjectLook
    distractor_rgb: ObjectLook
    distractor_thermal: ObjectLook
    occluder: ObjectLook


def value_noise(rng: np.random.Generator, height: int, width: int, cell: int,
                channels: int = 1) -> np.ndarray:
    """Smooth noise in [0, 1] with features about ``cell`` px wide, shape (H, W, C)."""
    grid_h, grid_w = height // cell + 3, width // cell + 3
    grid = rng.random((grid_h, grid_w, channels), dtype=np.float32)
    up = cv2.resize(grid, (grid_w * cell, grid_h * cell), interpolation=cv2.INTER_CUBIC)
    up = up.reshape(grid_h * cell, grid_w * cell, channels)
    return np.clip(up[cell:cell + height, cell:cell + width], 0.0, 1.0)


def fractal_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, ...],
                  channels: int = 1) -> np.ndarray:
    """Sum of value noise at several scales, coarse scales weighted most, in [0, 1]."""
    weights = np.array([0.5 ** i for i in range(len(cells))], dtype=np.float32)
    weights /= weights.sum()
    total = np.zeros((height, width, channels), dtype=np.float32)
    for weight, cell in zip(weights, cells, strict=True):
        total += weight * value_noise(rng, height, width, max(1, cell), channels)
    return total


def superellipse_mask(width: int, height: int, exponent: float | None) -> np.ndarray:
    """Boolean silhouette that touches all four edges of a ``width`` x ``height`` box.

    Evaluated at pixel centres so the middle row and column always reach the border: the
    mask's bounding box is the box itself, which is what makes the ground truth exact.
    """
    if exponent is None:
        return np.ones((height, width), dtype=bool)
    xs = np.abs((np.arange(width, dtype=np.float32) + 0.5) / width * 2.0 - 1.0)
    ys = np.abs((np.arange(height, dtype=np.float32) + 0.5) / height * 2.0 - 1.0)
    inside = ys[:, None] ** exponent + xs[None, :] ** exponent <= 1.0
    inside[height // 2, :] = True
    inside[:, width // 2] = True
    return inside


def random_colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.3, 0.9),
                  value: tuple[float, float] = (0.3, 0.95)) -> np.ndarray:
    """An RGB colour in 0..255 (float32) drawn in HSV space."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]],
                   dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def object_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured object (two colours in stripes or blobs, shading, fine grain), uint8 RGB."""
    base, second = random_colour(rng), random_colour(rng)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period)
        mix = (np.sin(phase) > rng.uniform(-0.5, 0.5)).astype(np.float32)
        mix = cv2.GaussianBlur(mix, (3, 3), 0)
    else:
        mix = (value_noise(rng, height, width, int(rng.integers(8, 24)))[..., 0] > 0.5).astype(np.float32)
    shading = 0.75 + 0.35 * (1.0 - ys / max(height - 1, 1))
    grain = 0.85 + 0.3 * value_noise(rng, height, width, 3)[..., 0]
    rgb = (base[None, None] * (1 - mix[..., None]) + second[None, None] * mix[..., None])
    rgb = rgb * (shading * grain)[..., None]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def heat_pattern(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A warm body: at least 0.55 everywhere, a hot core with a smooth falloff, mild texture."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    core_y, core_x = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    spread = rng.uniform(0.25, 0.45) * max(height, width)
    blob = np.exp(-((ys - core_y) ** 2 + (xs - core_x) ** 2) / (2 * spread ** 2))
    texture = value_noise(rng, height, width, 12)[..., 0]
    pattern = 0.55 + 0.3 * blob + 0.15 * texture
    return cv2.GaussianBlur(pattern.astype(np.float32), (5, 5), 0)


def unlike_texture(rng: np.random.Generator, reference: np.ndarray, tries: int = 8) -> np.ndarray:
    """A texture whose mean colour is far from ``reference``'s (the best of a few draws)."""
    height, width = reference.shape[:2]
    mean = reference.reshape(-1, 3).mean(axis=0)
    candidates = [object_texture(rng, height, width) for _ in range(tries)]
    gaps = [np.abs(c.reshape(-1, 3).mean(axis=0) - mean).sum() for c in candidates]
    return candidates[int(np.argmax(gaps))]


def _template_shape(rng: np.random.Generator) -> tuple[int, int]:
    aspect = rng.uniform(0.5, 2.0)
    if aspect >= 1:
        return int(TEMPLATE_PX / aspect), TEMPLATE_PX
    return TEMPLATE_PX, int(TEMPLATE_PX * aspect)


def make_objects(config: SyntheticConfig, rng: np.random.Generator) -> dict[str, ObjectLook]:
    """Target and look-alikes: the RGB distractor copies the target's colours but is cold,
    the thermal distractor carries the target's heat in a different RGB look."""
    height, width = _template_shape(rng)
    target_rgb = object_texture(rng, height, width)
    target_pattern = heat_pattern(rng, height, width)
    heat = float(rng.uniform(*config.target_heat_range))
    exponent = float(rng.uniform(2.5, 6.0))
    tinted = np.clip(target_rgb.astype(np.float32) * rng.uniform(0.9, 1.1, size=3), 0, 255).astype(np.uint8)
    cold = np.full((height, width), 0.5, dtype=np.float32)
    occluder_h, occluder_w = _template_shape(rng)
    return {
        "target": ObjectLook(target_rgb, target_pattern, heat, exponent),
        "distractor_rgb": ObjectLook(tinted, cold, float(rng.uniform(-0.04, 0.04)), exponent),
        "distractor_thermal": ObjectLook(unlike_texture(rng, target_rgb), target_pattern,
                                         heat * float(rng.uniform(0.9, 1.1)), float(rng.uniform(2.5, 6.0))),
        "occluder": ObjectLook(object_texture(rng, occluder_h, occluder_w),
                               value_noise(rng, occluder_h, occluder_w, 16)[..., 0],
                               float(rng.uniform(-0.1, 0.1)), None),
    }


def make_background(config: SyntheticConfig, rng: np.random.Generator, height: int,
                    width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Background canvas: textured RGB with shapes, and a smoother thermal view of the same
    shapes in which a few are heat sources. Returns (rgb uint8, thermal float32, ambient)."""
    palette = [random_colour(rng, (0.1, 0.6), (0.25, 0.8)) for _ in range(3)]
    mix = fractal_noise(rng, height, width, (256, 64, 16), channels=2)
    rgb = (palette[0] * (1 - mix[..., :1]) + palette[1] * mix[..., :1]) * (1 - 0.4 * mix[..., 1:])
    rgb += palette[2] * 0.4 * mix[..., 1:]
    ambient = float(rng.uniform(*config.thermal_ambient_range))
    thermal = ambient + 0.12 * (fractal_noise(rng, height, width, (256, 96))[..., 0] - 0.5)
    _paint_shapes(config, rng, rgb, thermal, ambient)
    # Shading and grain over the painted shapes too, so no region is a flat colour.
    shading = 0.7 + 0.6 * fractal_noise(rng, height, width, (128, 32, 8, 2))[..., 0]
    rgb = np.clip(rgb * shading[..., None], 0, 255).astype(np.uint8)
    thermal = cv2.GaussianBlur(thermal.astype(np.float32), (0, 0), 1.5)
    return rgb, thermal, ambient


def _paint_shapes(config: SyntheticConfig, rng: np.random.Generator, rgb: np.ndarray,
                  thermal: np.ndarray, ambient: float) -> None:
    """Rectangles and ellipses at several scales; the first ``background_hot_objects`` are warm."""
    height, width = thermal.shape
    count = config.background_objects + config.background_hot_objects
    for index in range(count):
        hot = index < config.background_hot_objects
        size = rng.uniform(0.02, 0.2) * min(height, width)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sx, sy = size * rng.uniform(0.5, 2.0), size * rng.uniform(0.5, 2.0)
        colour = tuple(float(c) for c in random_colour(rng, (0.05, 0.7), (0.15, 0.9)))
        level = ambient + (rng.uniform(0.15, 0.35) if hot else rng.normal(0.0, 0.03))
        centre, axes = (int(cx), int(cy)), (max(1, int(sx / 2)), max(1, int(sy / 2)))
        if rng.random() < 0.5:
            corner1, corner2 = (int(cx - sx / 2), int(cy - sy / 2)), (int(cx + sx / 2), int(cy + sy / 2))
            cv2.rectangle(rgb, corner1, corner2, colour, -1)
            cv2.rectangle(thermal, corner1, corner2, float(level), -1)
        else:
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(rgb, centre, axes, angle, 0, 360, colour, -1)
            cv2.ellipse(thermal, centre, axes, angle, 0, 360, float(level), -1)


def make_scene_look(config: SyntheticConfig, rng: np.random.Generator, canvas_h: int,
                    canvas_w: int) -> SceneLook:
    background_rgb, background_thermal, ambient = make_background(config, rng, canvas_h, canvas_w)
    objects = make_objects(config, rng)
    return SceneLook(background_rgb, background_thermal, ambient, objects["target"],
                     objects["distractor_rgb"], objects["distractor_thermal"], objects["occluder"])
