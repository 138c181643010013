"""Every knob of the synthetic RGB-T sequence generator, and the challenge/attribute names.

Sizes of the target are fractions of the frame so the defaults suit any frame size; speeds,
blur lengths and attribute thresholds are in pixels, as the benchmarks define them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from m5l_core.config import ConfigError, check_field, param

CHALLENGES: tuple[str, ...] = (
    "occlusion", "heavy_occlusion", "low_illumination", "thermal_crossover", "fast_motion",
    "motion_blur", "scale_change", "deformation", "distractor_rgb", "distractor_thermal",
    "camera_motion", "misalignment",
)
LAYOUTS: tuple[str, ...] = ("gtot", "rgbt234")

# RGBT234 attribute names as the paper (and the project's loaders) use them. The toolkit's
# attr_txt files spell scale variation "SC", hence the file-name map.
RGBT234_ATTRIBUTES: tuple[str, ...] = (
    "BC", "CM", "DEF", "FM", "HO", "LI", "LR", "MB", "NO", "PO", "SV", "TC")
RGBT234_ATTR_FILE_NAMES: dict[str, str] = {"SV": "SC"}
GTOT_ATTRIBUTES: tuple[str, ...] = ("OCC", "LSV", "FM", "LI", "TC", "SO", "DEF")

_PAIRS = ("target_height_range", "target_aspect_range", "speed_range", "fast_speed_range",
          "fast_motion_frames", "scale_shrink_range", "scale_grow_range", "scale_change_frames",
          "deformation_period", "occlusion_frames", "low_light_frames", "crossover_frames",
          "motion_blur_length", "motion_blur_frames", "camera_pan_speed", "misalignment_px",
          "distractor_count", "distractor_orbit", "thermal_ambient_range", "target_heat_range")


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of the seeded synthetic RGB-T sequence generator."""

    width: int = param(640, "frame width in pixels", low=64, high=4096)
    height: int = param(480, "frame height in pixels", low=48, high=4096)
    n_frames: int = param(300, "frames per sequence", low=2, high=100000)
    thermal_bits: int = param(8, "bit depth of the written thermal images (16 = PNG uint16)", choices=(8, 16))
    thermal16_offset: int = param(6000, "16-bit count that thermal level 0 maps to", low=0, high=60000)
    thermal16_span: int = param(8000, "16-bit counts spanned by thermal levels 0..1", low=1, high=65535)
    jpeg_quality: int = param(95, "JPEG quality of the RGBT234 layout", low=1, high=100)
    png_compression: int = param(1, "PNG zlib level (low = fast writing, bigger files)", low=0, high=9)
    challenge_probability: float = param(
        0.4, "chance that each challenge is on in a sequence when none are named", low=0.0, high=1.0)

    target_height_range: tuple[float, ...] = param(
        (0.1, 0.25), "target height as a fraction of the frame height (min, max)", low=0.02, high=0.6)
    target_aspect_range: tuple[float, ...] = param((0.5, 2.0), "target width/height (min, max)", low=0.1,
                                                   high=10.0)
    min_target_px: int = param(4, "smallest target side in pixels", low=2, high=64)
    speed_range: tuple[float, ...] = param((1.0, 4.0), "normal target speed in px/frame", low=0.0, high=200.0)
    acceleration_sigma: float = param(0.35, "random-walk step of the target velocity in px/frame^2",
                                      low=0.0, high=50.0)
    fast_speed_range: tuple[float, ...] = param((22.0, 32.0), "target speed during fast motion, px/frame",
                                                low=0.0, high=500.0)
    fast_motion_frames: tuple[int, ...] = param((10, 30), "length of a fast-motion burst in frames", low=1)
    scale_shrink_range: tuple[float, ...] = param((0.4, 0.6), "final scale when the target shrinks",
                                                  low=0.05, high=1.0)
    scale_grow_range: tuple[float, ...] = param((1.7, 2.3), "final scale when the target grows",
                                                low=1.0, high=10.0)
    scale_change_frames: tuple[int, ...] = param((30, 120), "frames the scale change takes", low=1)
    deformation_amplitude: float = param(0.35, "relative aspect-ratio swing of a deforming target",
                                         low=0.0, high=0.9)
    deformation_period: tuple[int, ...] = param((20, 60), "period of the deformation in frames", low=2)
    occlusion_frames: tuple[int, ...] = param((12, 40), "length of one occlusion event in frames", low=1)
    low_light_gain: float = param(0.2, "RGB brightness factor in low illumination", low=0.01, high=1.0)
    low_light_noise: float = param(9.0, "extra RGB noise sigma (8-bit levels) in the dark", low=0.0,
                                   high=100.0)
    low_light_frames: tuple[int, ...] = param((40, 150), "length of a dark stretch in frames", low=1)
    rgb_noise: float = param(2.0, "RGB sensor noise sigma in 8-bit levels", low=0.0, high=100.0)
    crossover_contrast: float = param(0.05, "target heat factor at full thermal crossover", low=0.0,
                                      high=1.0)
    crossover_frames: tuple[int, ...] = param((30, 120), "length of a thermal crossover in frames", low=1)
    motion_blur_length: tuple[int, ...] = param((7, 17), "motion blur kernel length in px", low=2, high=200)
    motion_blur_frames: tuple[int, ...] = param((8, 25), "length of a motion-blur stretch in frames", low=1)
    camera_pan_speed: tuple[float, ...] = param((1.0, 4.0), "camera pan speed in px/frame", low=0.0,
                                                high=200.0)
    camera_shake: float = param(1.2, "camera shake sigma in px/frame", low=0.0, high=50.0)
    camera_margin: float = param(0.35, "background extent beyond the frame for camera motion (fraction)",
                                 low=0.0, high=2.0)
    misalignment_px: tuple[float, ...] = param((2.0, 6.0), "thermal-vs-RGB shift magnitude in px",
                                               low=0.0, high=100.0)
    distractor_count: tuple[int, ...] = param((1, 2), "distractors per enabled distractor kind", low=0,
                                              high=20)
    distractor_orbit: tuple[float, ...] = param(
        (1.0, 1.8), "distractor distance from the target in target diagonals", low=0.0, high=20.0)
    background_objects: int = param(40, "random shapes painted on the background", low=0, high=1000)
    background_hot_objects: int = param(6, "background shapes with their own heat", low=0, high=1000)
    thermal_ambient_range: tuple[float, ...] = param((0.3, 0.45), "background thermal level (0..1)",
                                                     low=0.0, high=1.0)
    target_heat_range: tuple[float, ...] = param((0.28, 0.42), "target heat above ambient (0..1)",
                                                 low=0.0, high=1.0)
    thermal_noise: float = param(0.008, "thermal sensor noise sigma (0..1 levels)", low=0.0, high=1.0)
    thermal_column_noise: float = param(0.004, "fixed-pattern column noise of the microbolometer",
                                        low=0.0, high=1.0)

    # Attribute thresholds (per-frame flags written as attributes).
    fast_motion_px: float = param(20.0, "FM: centre moves more than this many px in one frame", low=0.0)
    partial_occlusion_min: float = param(0.05, "PO: smallest covered fraction of the target box",
                                         low=0.0, high=1.0)
    heavy_occlusion_fraction: float = param(0.8, "HO: covered fraction from which occlusion is heavy",
                                            low=0.0, high=1.0)
    low_light_flag_gain: float = param(0.5, "LI: brightness factor below which a frame is dark",
                                       low=0.0, high=1.0)
    crossover_flag_contrast: float = param(0.3, "TC: heat factor below which a frame has crossover",
                                           low=0.0, high=1.0)
    scale_variation_ratio: float = param(1.5, "SV/LSV: size ratio to the first frame outside [1/r, r]",
                                         low=1.0, high=100.0)
    deformation_ratio: float = param(1.2, "DEF: aspect ratio change vs the first frame beyond this factor",
                                     low=1.0, high=100.0)
    low_resolution_area: float = param(400.0, "LR/SO: target box area below this many px^2", low=0.0)
    clutter_distance: float = param(2.0, "BC: a distractor within this many target diagonals", low=0.0)
    camera_motion_px: float = param(1.0, "CM: camera moves at least this many px in one frame", low=0.0)

    def __post_init__(self) -> None:
        # Checked on construction too, so values set in code (dataclasses.replace) obey the
        # same ranges as values from YAML or the command line.
        for item in fields(self):
            check_field(SyntheticConfig, item.name, getattr(self, item.name), f"SyntheticConfig.{item.name}")
        for name in _PAIRS:
            value = getattr(self, name)
            if len(value) != 2 or value[0] > value[1]:
                raise ConfigError(f"SyntheticConfig.{name}: expected (min, max) with min <= max, got {value}")


def validate_challenges(names: Iterable[str]) -> tuple[str, ...]:
    """Known challenge names, deduplicated, in the canonical order of :data:`CHALLENGES`."""
    names = list(names)
    unknown = [n for n in names if n not in CHALLENGES]
    if unknown:
        raise ConfigError(f"unknown challenge {unknown[0]!r} (known: {', '.join(CHALLENGES)})")
    return tuple(c for c in CHALLENGES if c in names)
