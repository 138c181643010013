"""Per-sequence appearance of mixed sequences: motion blur, lighting drift, noise, grey thermal.

A sequence draws its look once (:func:`draw_look`) and every frame passes :meth:`SequenceLook.finish`
with the same random stream, so a sequence is a pure function of its seed. Lighting changes
only the RGB frame: a thermal camera does not see visible light, so a source without thermal
images takes the grey-scale of the *unlit* RGB frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from m5l_core.datasets.mix_camera import smooth_path
from m5l_core.datasets.mix_config import CameraMotionConfig, GreyThermalConfig

# Blur kernels shorter than this many pixels change nothing visible.
_MIN_BLUR_PX = 1.5


@dataclass(frozen=True)
class ThermalStyle:
    """A mild, per-sequence difference between the RGB grey-scale and the derived thermal frame."""

    gamma: float
    contrast: float
    blur_sigma: float
    noise: float

    def apply(self, grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        levels = (np.arange(256) / 255.0) ** self.gamma * 255.0
        levels = np.clip((levels - 128.0) * self.contrast + 128.0, 0, 255).astype(np.uint8)
        out = cv2.LUT(grey, levels)
        if self.blur_sigma > 0.05:
            out = cv2.GaussianBlur(out, (0, 0), self.blur_sigma)
        return add_noise(out, self.noise, rng)


@dataclass(frozen=True)
class SequenceLook:
    blur_exposure: float            # 0 = no motion blur
    gains: np.ndarray | None        # (frames,) RGB brightness factors, None = constant light
    rgb_noise: float
    grey_thermal: bool              # derive thermal from the RGB frame (no thermal source image)
    style: ThermalStyle | None      # styled grey thermal, None = plain grey

    def finish(self, t: int, rgb: np.ndarray, thermal: np.ndarray | None, velocity: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t``'s final RGB (``HxWx3``) and thermal (``HxW``) uint8 images."""
        if self.grey_thermal:
            thermal = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        elif thermal.ndim == 3:
            thermal = cv2.cvtColor(thermal, cv2.COLOR_RGB2GRAY)
        if self.blur_exposure > 0:
            rgb = motion_blur(rgb, velocity * self.blur_exposure)
            thermal = motion_blur(thermal, velocity * self.blur_exposure)
        if self.gains is not None:
            rgb = cv2.convertScaleAbs(rgb, alpha=float(self.gains[t]))
        rgb = add_noise(rgb, self.rgb_noise, rng)
        if self.style is not None:
            thermal = self.style.apply(thermal, rng)
        return rgb, thermal


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return image
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def motion_blur(image: np.ndarray, smear: np.ndarray) -> np.ndarray:
    """Average along the segment ``smear`` (output px) centred on each pixel."""
    length = float(np.hypot(*smear))
    if length < _MIN_BLUR_PX:
        return image
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    half = size // 2
    dx, dy = smear / length * (length / 2.0)
    # Sub-pixel end points (shift=4 means coordinates in 1/16 px) keep short kernels symmetric.
    start = (round((half - dx) * 16), round((half - dy) * 16))
    end = (round((half + dx) * 16), round((half + dy) * 16))
    cv2.line(kernel, start, end, 1.0, thickness=1, lineType=cv2.LINE_AA, shift=4)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)


def scene_velocity(matrices: np.ndarray, t: int, point: np.ndarray) -> np.ndarray:
    """How far the scene point seen at output ``point`` in frame ``t`` moved since frame ``t - 1``."""
    if t == 0:
        return np.zeros(2)
    linear, shift = matrices[t][:, :2], matrices[t][:, 2]
    source = np.linalg.solve(linear, point - shift)
    return point - (matrices[t - 1][:, :2] @ source + matrices[t - 1][:, 2])


def draw_style(config: GreyThermalConfig, rng: np.random.Generator) -> ThermalStyle | None:
    if config.mode == "grey":
        return None
    return ThermalStyle(gamma=float(rng.uniform(*config.gamma_range)),
                        contrast=float(rng.uniform(*config.contrast_range)),
                        blur_sigma=float(rng.uniform(*config.blur_sigma)), noise=config.noise)


def draw_look(motion: CameraMotionConfig, thermal: GreyThermalConfig | None, n_frames: int,
              rng: np.random.Generator) -> SequenceLook:
    """The look of one sequence; ``thermal=None`` for sources with real thermal images."""
    blur = motion.blur_exposure if rng.random() < motion.blur_probability else 0.0
    gains = None
    if rng.random() < motion.illumination_probability:
        low, high = np.log(motion.illumination_gain)
        path = smooth_path(rng, n_frames, motion.knot_frames)
        gains = np.exp(low + (path + 1.0) / 2.0 * (high - low))
    style = draw_style(thermal, rng) if thermal is not None else None
    return SequenceLook(blur_exposure=blur, gains=gains, rgb_noise=motion.rgb_noise,
                        grey_thermal=thermal is not None, style=style)
