"""Turn a :class:`ScenePlan` and a :class:`SceneLook` into RGB and thermal frames.

Per frame: crop the background canvas at the camera position, paste distractors, target and
occluder (in that depth order), blur the target's surroundings when it is motion-blurred,
then apply illumination and sensor noise. The thermal view is the same scene shifted by the
rig misalignment. Sensor noise comes from a small bank of pre-drawn fields cropped at random
offsets, which costs one slice per frame instead of drawing a million normals.
"""

from __future__ import annotations

import cv2
import numpy as np

from m5l_core.datasets.synthetic_appearance import ObjectLook, SceneLook, superellipse_mask
from m5l_core.datasets.synthetic_config import SyntheticConfig
from m5l_core.datasets.synthetic_scene import ScenePlan, stream

NOISE_BANKS = 3
NOISE_PAD = 32
NOISE_SCALE = 20.0  # uint8 noise = 128 + NOISE_SCALE * N(0, 1), clipped at about 6 sigma


def _noise_bytes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian noise stored as uint8 around 128 so OpenCV can add it in one saturating call."""
    noise = 128 + NOISE_SCALE * rng.standard_normal(shape, dtype=np.float32)
    return np.clip(noise, 0, 255).astype(np.uint8)


def paste(image: np.ndarray, box: np.ndarray, patch: np.ndarray, mask: np.ndarray) -> None:
    """Copy ``patch`` where ``mask`` is set into ``image`` at ``box`` (clipped to the image)."""
    x, y, w, h = (int(v) for v in box)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, image.shape[1]), min(y + h, image.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    keep = mask[y0 - y:y1 - y, x0 - x:x1 - x]
    image[y0:y1, x0:x1][keep] = patch[y0 - y:y1 - y, x0 - x:x1 - x][keep]


def blur_kernel(length: int, velocity: np.ndarray) -> np.ndarray:
    """Normalised line kernel of ``length`` px along the motion direction."""
    speed = float(np.linalg.norm(velocity))
    direction = velocity / speed if speed > 1e-6 else np.array([1.0, 0.0])
    kernel = np.zeros((length, length), dtype=np.float32)
    centre = (length - 1) / 2.0
    start = np.rint(centre - direction * centre).astype(int)
    stop = np.rint(centre + direction * centre).astype(int)
    cv2.line(kernel, (int(start[0]), int(start[1])), (int(stop[0]), int(stop[1])), 1.0, 1)
    return kernel / kernel.sum()


def blur_around(image: np.ndarray, box: np.ndarray, kernel: np.ndarray) -> None:
    """Motion-blur the box and a kernel-wide ring around it (the smear leaves the box)."""
    pad = kernel.shape[0]
    x, y, w, h = (int(v) for v in box)
    x0, y0 = max(x - pad, 0), max(y - pad, 0)
    x1, y1 = min(x + w + pad, image.shape[1]), min(y + h + pad, image.shape[0])
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = cv2.filter2D(image[y0:y1, x0:x1], -1, kernel, borderType=cv2.BORDER_REPLICATE)


class FrameRenderer:
    """Renders frame ``i`` of a planned sequence; frames can be rendered in any order."""

    def __init__(self, config: SyntheticConfig, plan: ScenePlan, look: SceneLook, seed: int):
        self._config, self._plan, self._look = config, plan, look
        rng = stream(seed, "sensor-noise")
        shape = (config.height + NOISE_PAD, config.width + NOISE_PAD)
        self._rgb_noise = [_noise_bytes(rng, (*shape, 3)) for _ in range(NOISE_BANKS)]
        self._thermal_noise = [rng.standard_normal(shape, dtype=np.float32) for _ in range(NOISE_BANKS)]
        self._columns = rng.standard_normal(config.width, dtype=np.float32) * config.thermal_column_noise
        # Per frame: RGB bank, x, y offsets, then the same for thermal.
        highs = [NOISE_BANKS, NOISE_PAD, NOISE_PAD] * 2
        self._noise_pick = rng.integers(0, highs, size=(plan.n_frames, 6))
        self._masks: dict[tuple[int, int, float | None], np.ndarray] = {}

    def render(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 HxWx3, thermal uint8 or uint16 HxW) for one frame."""
        rgb = self._render_rgb(frame)
        thermal = self._render_thermal(frame)
        return rgb, thermal

    def _mask(self, w: int, h: int, exponent: float | None) -> np.ndarray:
        key = (w, h, exponent)
        if key not in self._masks:
            self._masks[key] = superellipse_mask(w, h, exponent)
        return self._masks[key]

    def _layers(self, frame: int) -> list[tuple[ObjectLook, np.ndarray, float]]:
        """(look, RGB box, heat factor) back to front."""
        look, plan = self._look, self._plan
        layers = [(getattr(look, d.kind), d.boxes[frame], 1.0) for d in plan.distractors]
        layers.append((look.target, plan.target[frame], float(plan.heat[frame])))
        if plan.occluder[frame, 2] > 0:
            layers.append((look.occluder, plan.occluder[frame], 1.0))
        return layers

    def _render_rgb(self, frame: int) -> np.ndarray:
        config, plan = self._config, self._plan
        cx, cy = plan.camera[frame]
        image = self._look.background_rgb[cy:cy + config.height, cx:cx + config.width].copy()
        for look, box, _ in self._layers(frame):
            w, h = int(box[2]), int(box[3])
            patch = cv2.resize(look.rgb, (w, h), interpolation=cv2.INTER_AREA)
            paste(image, box, patch, self._mask(w, h, look.exponent))
        if plan.blur[frame] > 0:
            blur_around(image, plan.target[frame], blur_kernel(int(plan.blur[frame]), plan.velocity[frame]))
        return self._expose(frame, image)

    def _expose(self, frame: int, image: np.ndarray) -> np.ndarray:
        """Illumination gain and sensor noise; a dark frame is amplified, hence noisier."""
        config = self._config
        gain = float(self._plan.gain[frame])
        darkness = (1.0 - gain) / max(1.0 - config.low_light_gain, 1e-6)
        sigma = config.rgb_noise + config.low_light_noise * darkness
        bank, ox, oy = self._noise_pick[frame, :3]
        noise = self._rgb_noise[bank][oy:oy + config.height, ox:ox + config.width]
        scale = sigma / NOISE_SCALE
        return cv2.addWeighted(image, gain, noise, scale, -128.0 * scale)

    def _render_thermal(self, frame: int) -> np.ndarray:
        config, plan, ambient = self._config, self._plan, self._look.ambient
        dx, dy = plan.offset
        cx, cy = plan.camera[frame] - np.array([dx, dy])
        image = self._look.background_thermal[cy:cy + config.height, cx:cx + config.width].copy()
        shift = np.array([dx, dy, 0, 0])
        for look, box, factor in self._layers(frame):
            w, h = int(box[2]), int(box[3])
            pattern = cv2.resize(look.pattern, (w, h), interpolation=cv2.INTER_AREA)
            paste(image, box + shift, ambient + look.heat * factor * pattern, self._mask(w, h, look.exponent))
        if plan.blur[frame] > 0:
            kernel = blur_kernel(int(plan.blur[frame]), plan.velocity[frame])
            blur_around(image, plan.target[frame] + shift, kernel)
        bank, ox, oy = self._noise_pick[frame, 3:]
        image += config.thermal_noise * self._thermal_noise[bank][oy:oy + config.height, ox:ox + config.width]
        image += self._columns[None, :]
        return self._quantise(image)

    def _quantise(self, levels: np.ndarray) -> np.ndarray:
        config = self._config
        if config.thermal_bits == 16:
            counts = config.thermal16_offset + levels * config.thermal16_span
            return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
        return np.clip(np.rint(levels * 255.0), 0, 255).astype(np.uint8)
