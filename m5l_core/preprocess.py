"""The one preprocessing path shared by training, tracking, the benchmark runner and the ROS node.

Frames enter as an RGB ``HxWx3`` uint8 image (RGB order) and a thermal image that may be
``HxW`` or ``HxWx1|3``, uint8, uint16 (radiometric mono16) or float. Both leave as
``HxWx3`` uint8 images on the RGB pixel grid; :func:`to_network_input` then subtracts the
pixel mean. Nothing else in the project subtracts 128 or rescales thermal values.

Thermal normalisation rule (documented in README): uint8 is used as is; uint16 and float
frames are stretched linearly so that the ``low_percentile`` and ``high_percentile`` of the
frame map to 0 and 255 (clipped). A per-frame percentile stretch keeps the target's
contrast whatever the camera's radiometric range, at the price of frame-to-frame gain changes.

Registration: the thermal frame is warped onto the RGB pixel grid by a 3x3 homography that
maps thermal pixel coordinates to RGB pixel coordinates. Default ("fit"): scale by the
size ratio, which is the identity when both frames have the same size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from m5l_core.config import param

PIXEL_MEAN = 128.0  # VGG-M as used by MDNet-family trackers: inputs are pixels minus 128


class FrameError(ValueError):
    """An input frame has an unsupported shape, dtype or content."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How thermal frames are normalised and registered to the RGB frame."""

    thermal_low_percentile: float = param(1.0, "percentile of a 16-bit/float thermal frame mapped to 0",
                                          low=0.0, high=50.0)
    thermal_high_percentile: float = param(99.0, "percentile of a 16-bit/float thermal frame mapped to 255",
                                           low=50.0, high=100.0)
    thermal_scale: tuple[float, ...] = param((), "thermal->RGB scale (sx, sy); empty = fit frame sizes")
    thermal_offset: tuple[float, ...] = param((0.0, 0.0), "thermal->RGB offset (tx, ty) in RGB pixels")
    thermal_homography: tuple[float, ...] = param(
        (), "thermal->RGB 3x3 homography, 9 values row-major; overrides scale and offset when given")


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise FrameError(f"RGB frame must be an HxWx3 uint8 array, got {_describe(rgb)}")
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise FrameError(f"RGB frame is too small: {rgb.shape}")
    return rgb


def normalise_thermal(thermal: np.ndarray, config: PreprocessConfig = PreprocessConfig()) -> np.ndarray:
    """Return an ``HxW`` uint8 thermal image following the documented rule."""
    if not isinstance(thermal, np.ndarray) or thermal.ndim not in (2, 3):
        raise FrameError(f"thermal frame must be HxW or HxWxC, got {_describe(thermal)}")
    if thermal.ndim == 3:
        if thermal.shape[2] not in (1, 3):
            raise FrameError(f"thermal frame must have 1 or 3 channels, got {thermal.shape[2]}")
        # Colour-mapped thermal is not radiometric: its luminance is the best single channel.
        thermal = thermal[..., 0] if thermal.shape[2] == 1 else cv2.cvtColor(
            np.ascontiguousarray(thermal), cv2.COLOR_RGB2GRAY)
    if thermal.dtype == np.uint8:
        return thermal
    if thermal.dtype not in (np.uint16, np.float32, np.float64, np.int16, np.int32):
        raise FrameError(f"unsupported thermal dtype {thermal.dtype}")
    values = thermal.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        raise FrameError("thermal frame has no finite values")
    low, high = np.percentile(values[finite], [config.thermal_low_percentile, config.thermal_high_percentile])
    span = max(float(high - low), 1e-6)
    scaled = (np.where(finite, values, low) - low) * (255.0 / span)
    return np.clip(scaled, 0, 255).astype(np.uint8)


def thermal_to_rgb_homography(thermal_shape, rgb_shape, config: PreprocessConfig) -> np.ndarray:
    """3x3 matrix mapping thermal pixel coordinates to RGB pixel coordinates."""
    if config.thermal_homography:
        if len(config.thermal_homography) != 9:
            raise FrameError("thermal_homography needs 9 values (3x3, row-major)")
        return np.asarray(config.thermal_homography, dtype=np.float64).reshape(3, 3)
    if config.thermal_scale:
        if len(config.thermal_scale) != 2:
            raise FrameError("thermal_scale needs 2 values (sx, sy)")
        sx, sy = config.thermal_scale
    else:
        sx = rgb_shape[1] / thermal_shape[1]
        sy = rgb_shape[0] / thermal_shape[0]
    tx, ty = config.thermal_offset
    return np.array([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]])


def register_thermal(thermal_u8: np.ndarray, rgb_shape, config: PreprocessConfig) -> np.ndarray:
    """Warp an ``HxW`` uint8 thermal image onto the RGB pixel grid."""
    matrix = thermal_to_rgb_homography(thermal_u8.shape, rgb_shape, config)
    if thermal_u8.shape[:2] == tuple(rgb_shape[:2]) and np.allclose(matrix, np.eye(3)):
        return thermal_u8
    size = (int(rgb_shape[1]), int(rgb_shape[0]))
    return cv2.warpPerspective(thermal_u8, matrix, size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def prepare_pair(rgb: np.ndarray, thermal: np.ndarray,
                 config: PreprocessConfig = PreprocessConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Validate, normalise and register a frame pair: two ``HxWx3`` uint8 images on one grid."""
    rgb = check_rgb(rgb)
    thermal = register_thermal(normalise_thermal(thermal, config), rgb.shape, config)
    # Thermal is fed to its VGG-M stream as a 3-channel image, as in the RGB-T MDNet family.
    return rgb, np.repeat(thermal[..., None], 3, axis=2)


def to_network_input(images: np.ndarray | list[np.ndarray],
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``(H,W,3)`` or ``(N,H,W,3)`` uint8 images -> float tensor ``(N,3,H,W)`` minus the pixel mean."""
    batch = np.stack(images) if isinstance(images, list) else images
    if batch.ndim == 3:
        batch = batch[None]
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
    return tensor.permute(0, 3, 1, 2).float().sub_(PIXEL_MEAN)


def padded_to(tensor: torch.Tensor, size: tuple[int, int] | None = None, multiple: int = 1) -> torch.Tensor:
    """``(N,3,H,W)`` network input zero-padded (zero = the pixel mean) at the bottom and right to
    ``size`` (width, height; default its own), each side rounded up to a multiple of ``multiple``;
    pixel coordinates, and so RoIs, are unchanged."""
    height, width = tensor.shape[-2:]
    target_w, target_h = size if size is not None else (width, height)
    if width > target_w or height > target_h:
        raise ValueError(f"a {width}x{height} input cannot be padded to {target_w}x{target_h}")
    pad_w, pad_h = target_w - width + -target_w % multiple, target_h - height + -target_h % multiple
    if not (pad_h or pad_w):
        return tensor
    return torch.nn.functional.pad(tensor, (0, pad_w, 0, pad_h))


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return type(value).__name__
