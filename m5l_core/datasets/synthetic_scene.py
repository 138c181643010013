"""Where everything is in every frame: camera, target, occluder, distractors, light and heat.

Each part draws from its own random stream (seed + part name), so switching one challenge
on or off leaves the others unchanged: a sequence with and without ``occlusion`` differs only
by the occluder, which is what the tests (and ablations on synthetic data) rely on.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from m5l_core.datasets.synthetic_config import SyntheticConfig


@dataclass(frozen=True)
class Distractor:
    kind: str  # "distractor_rgb" or "distractor_thermal"
    boxes: np.ndarray  # (N, 4) int x, y, w, h in RGB image coordinates


@dataclass(frozen=True)
class ScenePlan:
    """Per-frame geometry and photometry of one sequence (all boxes in RGB image pixels)."""

    camera: np.ndarray  # (N, 2) int top-left of the RGB crop in the background canvas
    margin: int  # canvas border around the start view
    target: np.ndarray  # (N, 4) int x, y, w, h: the exact RGB ground truth
    offset: tuple[int, int]  # thermal image = RGB image shifted by (dx, dy)
    velocity: np.ndarray  # (N, 2) float target image velocity (sets blur direction)
    gain: np.ndarray  # (N,) RGB illumination factor
    heat: np.ndarray  # (N,) target heat factor (1 normal, small at crossover)
    blur: np.ndarray  # (N,) motion blur kernel length in px, 0 = none
    occluder: np.ndarray  # (N, 4) int, zero width where no occluder is in front
    distractors: tuple[Distractor, ...]

    @property
    def n_frames(self) -> int:
        return len(self.target)

    @property
    def thermal_target(self) -> np.ndarray:
        return self.target + np.array([self.offset[0], self.offset[1], 0, 0])


def stream(seed: int, part: str) -> np.random.Generator:
    """Independent, platform-stable random stream for one part of the scene."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(seed) >> 32, zlib.crc32(part.encode())])


def windows(rng: np.random.Generator, n: int, length: tuple[int, int], count: int) -> list[tuple[int, int]]:
    """``count`` non-overlapping [start, stop) stretches that never include frame 0 (the
    initialisation frame must show the target clearly)."""
    bounds = np.linspace(1, n, count + 1).astype(int)
    found = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi <= lo:
            continue
        size = int(min(rng.integers(length[0], length[1] + 1), hi - lo))
        start = int(rng.integers(lo, hi - size + 1))
        found.append((start, start + size))
    return found


def event_count(n: int, every: int) -> int:
    return max(1, round(n / every))


def ramp_profile(n: int, spans: list[tuple[int, int]], low: float, ramp: int = 5) -> np.ndarray:
    """1 outside the spans, ``low`` inside, with short cosine ramps at both ends."""
    profile = np.ones(n, dtype=np.float32)
    frames = np.arange(n)
    for start, stop in spans:
        into = np.clip(np.minimum(frames - start + 1, stop - frames) / max(ramp, 1), 0.0, 1.0)
        weight = 0.5 - 0.5 * np.cos(np.pi * into)
        profile = np.minimum(profile, 1.0 - (1.0 - low) * weight)
    return profile


def camera_path(config: SyntheticConfig, seed: int, n: int, margin: int, travel: int, on: bool) -> np.ndarray:
    """Crop origins: a pan with shake that bounces within ``travel`` px of the start view
    (the canvas keeps ``margin - travel`` px spare for the thermal misalignment)."""
    origin = np.full((n, 2), margin, dtype=np.int64)
    if not on or travel == 0:
        return origin
    rng = stream(seed, "camera")
    angle = rng.uniform(0, 2 * np.pi)
    velocity = rng.uniform(*config.camera_pan_speed) * np.array([np.cos(angle), np.sin(angle)])
    position = np.array([margin, margin], dtype=np.float64)
    for frame in range(1, n):
        velocity = velocity + rng.normal(0, 0.1, 2)
        position = position + velocity + rng.normal(0, config.camera_shake, 2)
        for axis in range(2):
            if not margin - travel <= position[axis] <= margin + travel:
                position[axis] = np.clip(position[axis], margin - travel, margin + travel)
                velocity[axis] = -velocity[axis]
        origin[frame] = np.rint(position)
    return origin


def target_sizes(config: SyntheticConfig, seed: int, n: int, scale_on: bool, deform_on: bool) -> np.ndarray:
    """(N, 2) float width, height: base size times scale change and aspect deformation."""
    rng = stream(seed, "target-size")
    base_h = rng.uniform(*config.target_height_range) * config.height
    base_w = base_h * rng.uniform(*config.target_aspect_range)
    scale = np.ones(n)
    if scale_on:
        srng = stream(seed, "scale")
        final = srng.uniform(*(config.scale_grow_range if srng.random() < 0.5 else config.scale_shrink_range))
        (start, stop), = windows(srng, n, config.scale_change_frames, 1)
        progress = np.clip((np.arange(n) - start) / max(stop - start, 1), 0.0, 1.0)
        scale = np.exp(np.log(final) * (0.5 - 0.5 * np.cos(np.pi * progress)))
    aspect = np.ones(n)
    if deform_on:
        drng = stream(seed, "deformation")
        period = drng.uniform(*config.deformation_period)
        aspect = 1.0 + config.deformation_amplitude * np.sin(2 * np.pi * np.arange(n) / period)
    sizes = np.stack([base_w * scale * np.sqrt(aspect), base_h * scale / np.sqrt(aspect)], axis=1)
    return sizes


def fit_sizes(config: SyntheticConfig, sizes: np.ndarray, border: int) -> np.ndarray:
    """Integer sizes that fit inside the frame with ``border`` px to spare on each side."""
    limit = np.array([config.width, config.height]) - 2 * border - 2
    ratio = np.minimum(1.0, np.min(limit / np.maximum(sizes, 1e-6), axis=1, keepdims=True))
    fitted = np.rint(sizes * ratio).astype(np.int64)
    return np.clip(fitted, config.min_target_px, limit)


def target_track(config: SyntheticConfig, seed: int, sizes: np.ndarray, camera: np.ndarray,
                 border: int, fast_on: bool) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and velocities (N, 2): a random-walk velocity with bounces at the frame
    border, fast bursts when ``fast_on``; camera motion shifts the target the opposite way."""
    n = len(sizes)
    rng = stream(seed, "target-path")
    fast = np.zeros(n, dtype=bool)
    if fast_on:
        frng = stream(seed, "fast-motion")
        for start, stop in windows(frng, n, config.fast_motion_frames, event_count(n, 120)):
            fast[start:stop] = True
        fast_speed = frng.uniform(*config.fast_speed_range)
    normal_speed = rng.uniform(*config.speed_range)
    angle = rng.uniform(0, 2 * np.pi)
    velocity = normal_speed * np.array([np.cos(angle), np.sin(angle)])
    frame_size = np.array([config.width, config.height], dtype=np.float64)
    low = border + sizes[0] / 2
    centre = low + rng.random(2) * np.maximum(frame_size - 2 * low, 0)
    boxes = np.zeros((n, 4), dtype=np.int64)
    velocities = np.zeros((n, 2))
    for frame in range(n):
        if frame > 0:
            velocity = velocity + rng.normal(0, config.acceleration_sigma, 2)
            speed = fast_speed if fast[frame] else normal_speed
            velocity = velocity / max(np.linalg.norm(velocity), 1e-6) * speed
            centre = centre + velocity - (camera[frame] - camera[frame - 1])
        half = sizes[frame] / 2
        low, high = border + half, frame_size - border - half
        velocity = np.where((centre < low) | (centre > high), -velocity, velocity)
        centre = np.clip(centre, low, high)
        corner = np.rint(centre - half).astype(np.int64)
        boxes[frame] = [corner[0], corner[1], sizes[frame][0], sizes[frame][1]]
        velocities[frame] = velocity
    return boxes, velocities


def misalignment(config: SyntheticConfig, seed: int, on: bool) -> tuple[int, int]:
    """Constant thermal-vs-RGB shift of a rig whose cameras are not perfectly registered."""
    if not on:
        return 0, 0
    rng = stream(seed, "misalignment")
    magnitude, angle = rng.uniform(*config.misalignment_px), rng.uniform(0, 2 * np.pi)
    dx, dy = int(np.rint(magnitude * np.cos(angle))), int(np.rint(magnitude * np.sin(angle)))
    if (dx, dy) == (0, 0) and config.misalignment_px[1] > 0:
        dx = 1  # a switched-on challenge must change something
    return dx, dy


def occluder_boxes(config: SyntheticConfig, seed: int, target: np.ndarray, kinds: list[str]) -> np.ndarray:
    """Rectangles sweeping across the target. A heavy occluder is bigger than the target and
    lingers over it (covered fraction reaches 1); a partial one passes off-centre so that it
    hides at most the fraction ``overlap`` of the box."""
    n = len(target)
    boxes = np.zeros((n, 4), dtype=np.int64)
    if not kinds:
        return boxes
    rng = stream(seed, "occlusion")
    spans = windows(rng, n, config.occlusion_frames, max(len(kinds), event_count(n, 150)))
    for index, (start, stop) in enumerate(spans):
        heavy = kinds[index % len(kinds)] == "heavy_occlusion"
        along = int(rng.integers(0, 2))  # 0: sweep along x, 1: along y
        across = 1 - along
        sign = 1.0 if rng.random() < 0.5 else -1.0
        size = target[start, 2:4].astype(np.float64)
        if heavy:
            occluder_size = size * rng.uniform(1.3, 1.6)
            side_shift = 0.0
        else:
            occluder_size = size.copy()
            occluder_size[along] *= rng.uniform(0.6, 1.0)
            side_shift = (1.0 - rng.uniform(0.3, 0.6)) * size[across] * (1 if rng.random() < 0.5 else -1)
        for frame in range(start, stop):
            u = 2.0 * (frame - start + 0.5) / (stop - start) - 1.0
            sweep = np.sign(u) * abs(u) ** 3 if heavy else u
            centre = target[frame, :2] + target[frame, 2:4] / 2.0
            reach = (target[frame, 2 + along] + occluder_size[along]) / 2.0
            centre[along] += sign * sweep * reach
            centre[across] += side_shift
            corner = np.rint(centre - occluder_size / 2.0)
            boxes[frame] = [corner[0], corner[1], np.rint(occluder_size[0]), np.rint(occluder_size[1])]
    return boxes


def distractor_paths(config: SyntheticConfig, seed: int, target: np.ndarray, kind: str) -> list[Distractor]:
    """Look-alikes orbiting the target at a few target diagonals, scaled with it, drawn behind
    it, and kept inside the frame (a look-alike out of view distracts nobody)."""
    rng = stream(seed, kind)
    n = len(target)
    frames = np.arange(n)
    size = target[:, 2:4].astype(np.float64)
    centre = target[:, :2] + size / 2.0
    diagonal = np.hypot(size[:, 0], size[:, 1])
    found = []
    for _ in range(int(rng.integers(config.distractor_count[0], config.distractor_count[1] + 1))):
        radius = rng.uniform(*config.distractor_orbit)
        spin = rng.uniform(0.01, 0.05) * (1 if rng.random() < 0.5 else -1)
        angle = rng.uniform(0, 2 * np.pi) + spin * frames
        wobble = 1.0 + 0.2 * np.sin(frames * rng.uniform(0.02, 0.08) + rng.uniform(0, 2 * np.pi))
        offset = (radius * wobble * diagonal)[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        own_size = np.maximum(np.rint(size * rng.uniform(0.8, 1.2)), config.min_target_px)
        corner = np.rint(centre + offset - own_size / 2.0)
        corner = np.clip(corner, 0, np.array([config.width, config.height]) - own_size)
        found.append(Distractor(kind, np.concatenate([corner, own_size], axis=1).astype(np.int64)))
    return found


def _photometry(config: SyntheticConfig, seed: int, n: int, on: set[str]) -> tuple[np.ndarray, ...]:
    """Illumination factor, heat factor and blur length per frame."""
    gain = np.ones(n, dtype=np.float32)
    if "low_illumination" in on:
        rng = stream(seed, "low-light")
        # Night sequences are dark throughout; others pass through a dark stretch.
        spans = [(0, n)] if rng.random() < 0.4 else windows(rng, n, config.low_light_frames, 1)
        ramp = 0 if spans == [(0, n)] else min(5, (spans[0][1] - spans[0][0]) // 4)
        gain = ramp_profile(n, spans, config.low_light_gain, ramp=ramp)
    heat = np.ones(n, dtype=np.float32)
    if "thermal_crossover" in on:
        spans = windows(stream(seed, "crossover"), n, config.crossover_frames, 1)
        # The target's temperature drifts towards the background's, it does not jump.
        ramp = max(1, (spans[0][1] - spans[0][0]) // 4)
        heat = ramp_profile(n, spans, config.crossover_contrast, ramp=ramp)
    blur = np.zeros(n, dtype=np.int64)
    if "motion_blur" in on:
        rng = stream(seed, "motion-blur")
        for start, stop in windows(rng, n, config.motion_blur_frames, event_count(n, 100)):
            blur[start:stop] = rng.integers(config.motion_blur_length[0], config.motion_blur_length[1] + 1)
    return gain, heat, blur


def plan_scene(config: SyntheticConfig, seed: int, challenges: tuple[str, ...]) -> ScenePlan:
    """Everything the renderer needs for one sequence."""
    on = set(challenges)
    n = config.n_frames
    # The border does not depend on the challenges, so trajectories stay comparable.
    border = int(np.ceil(config.misalignment_px[1])) + 1
    travel = int(np.ceil(config.camera_margin * max(config.width, config.height)))
    margin = travel + border
    camera = camera_path(config, seed, n, margin, travel, "camera_motion" in on)
    raw_sizes = target_sizes(config, seed, n, "scale_change" in on, "deformation" in on)
    sizes = fit_sizes(config, raw_sizes, border)
    target, velocity = target_track(config, seed, sizes, camera, border, "fast_motion" in on)
    occlusion_kinds = [kind for kind in ("heavy_occlusion", "occlusion") if kind in on]
    distractors: list[Distractor] = []
    for kind in ("distractor_rgb", "distractor_thermal"):
        if kind in on:
            distractors += distractor_paths(config, seed, target, kind)
    gain, heat, blur = _photometry(config, seed, n, on)
    return ScenePlan(camera=camera, margin=margin, target=target, offset=misalignment(config, seed,
                     "misalignment" in on), velocity=velocity, gain=gain, heat=heat, blur=blur,
                     occluder=occluder_boxes(config, seed, target, occlusion_kinds),
                     distractors=tuple(distractors))
