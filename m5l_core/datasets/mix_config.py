"""Settings of the training mix (``dataset: mix``): which real and synthetic sources, how many.

Each source has its own section with its folders, sequence count, frame count, frame size and
motion settings; a count of 0 turns a source off. Folder paths are empty by default: a recipe
(``config/train_real.yaml``) names them, and a source with sequences but no folder is an error
naming the key. Every sequence of every source is one training domain.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from m5l_core.config import ConfigError, nested, param
from m5l_core.datasets.synthetic_config import CHALLENGES, SyntheticConfig, validate_challenges


def _check_ranges(config: object, names: tuple[str, ...]) -> None:
    """Checked on construction, so values set in code obey the same rule as YAML values."""
    for name in names:
        value = getattr(config, name)
        if len(value) != 2 or value[0] > value[1]:
            raise ConfigError(f"{type(config).__name__}.{name}: expected (min, max) with min <= max, "
                              f"got {value}")


@dataclass(frozen=True)
class CameraMotionConfig:
    """A virtual camera: a moving, zooming, slightly rotating window over the source image."""

    target_fraction: tuple[float, ...] = param(
        (0.15, 0.4), "target's longer side as a fraction of the frame's shorter side, first frame (min, max)",
        low=0.02, high=1.0)
    max_upscale: float = param(2.0, "at most this many output pixels per source pixel (sharpness)",
                               low=0.1, high=16.0)
    wander: float = param(0.6, "how far the target wanders from the frame centre, as a fraction of the "
                               "room between the target and the frame edge", low=0.0, high=1.0)
    zoom: float = param(1.35, "the camera zooms within [1/zoom, zoom] of the first frame's scale",
                        low=1.0, high=4.0)
    rotation_deg: float = param(4.0, "largest camera roll in degrees (boxes stay axis-aligned)",
                                low=0.0, high=30.0)
    knot_frames: int = param(12, "frames between the random control points of the smooth trajectories "
                                 "(smaller = faster, jerkier motion)", low=2, high=1000)
    blur_probability: float = param(0.3, "share of sequences with motion blur along the camera motion",
                                    low=0.0, high=1.0)
    blur_exposure: float = param(0.8, "blur length as a fraction of the frame-to-frame motion", low=0.0,
                                 high=4.0)
    illumination_probability: float = param(0.3, "share of sequences whose RGB brightness drifts "
                                                 "(thermal is not lit, so it keeps its levels)",
                                            low=0.0, high=1.0)
    illumination_gain: tuple[float, ...] = param((0.35, 1.3), "RGB brightness factor range of a drift",
                                                 low=0.01, high=4.0)
    rgb_noise: float = param(1.5, "RGB sensor noise sigma in 8-bit levels", low=0.0, high=50.0)

    def __post_init__(self) -> None:
        _check_ranges(self, ("target_fraction", "illumination_gain"))


@dataclass(frozen=True)
class GreyThermalConfig:
    """The thermal channel of a source without thermal images: the grey-scale of the RGB frame."""

    mode: str = param("grey", "grey = the RGB frame's grey-scale (as real_dev); styled = the same with a "
                              "per-sequence gamma, contrast, blur and noise, so the streams differ a bit",
                      choices=("grey", "styled"))
    gamma_range: tuple[float, ...] = param((0.7, 1.4), "styled: gamma range", low=0.1, high=10.0)
    contrast_range: tuple[float, ...] = param((0.7, 1.2), "styled: contrast factor range", low=0.1, high=4.0)
    blur_sigma: tuple[float, ...] = param((0.0, 1.2), "styled: Gaussian blur sigma range in px", low=0.0,
                                          high=10.0)
    noise: float = param(2.0, "styled: noise sigma in 8-bit levels", low=0.0, high=50.0)

    def __post_init__(self) -> None:
        _check_ranges(self, ("gamma_range", "contrast_range", "blur_sigma"))


@dataclass(frozen=True)
class SourceFrames:
    """What every source's sequences share: their length and frame size (the synthetic source
    passes them to its generator as n_frames, width and height)."""

    frames: int = param(32, "frames per sequence", low=2, high=10000)
    width: int = param(320, "frame width", low=64, high=4096)
    height: int = param(240, "frame height", low=48, high=4096)


@dataclass(frozen=True)
class PhotoMotionConfig(SourceFrames):
    """Photos with boxes turned into sequences by a moving virtual camera; each box is one domain."""

    sequences: int = param(200, "sequences to make (0 = source off); boxes are used in a seeded order "
                                "and reused with new motion when there are fewer", low=0, high=100000)
    roots: tuple[str, ...] = param((), "YOLO-style folders, each with images/ and boxes/ (same sub-paths, "
                                       "boxes/<x>.txt rows: class cx cy w h, normalised)")
    min_box_side: float = param(24.0, "boxes with a side shorter than this (source px) are not used",
                                low=1.0)
    max_box_fraction: float = param(0.7, "boxes wider or taller than this fraction of their photo are "
                                         "not used (no room for the camera to move)", low=0.05, high=1.0)
    motion: CameraMotionConfig = nested(CameraMotionConfig)
    thermal: GreyThermalConfig = nested(GreyThermalConfig)


@dataclass(frozen=True)
class PasteConfig(SourceFrames):
    """Real objects cut out with their instance polygons, moving over real background photos."""

    sequences: int = param(100, "sequences to make (0 = source off)", low=0, high=100000)
    object_roots: tuple[str, ...] = param((), "YOLO-style folders, each with images/ and polygons/ (rows: "
                                              "class x1 y1 x2 y2 ..., normalised)")
    background_dirs: tuple[str, ...] = param((), "folders of background photos (searched recursively)")
    min_object_side: float = param(32.0, "objects with a side shorter than this (source px) are not used",
                                   low=4.0)
    object_fraction: tuple[float, ...] = param((0.15, 0.35), "object's base longer side as a fraction of "
                                                             "the frame's shorter side", low=0.02,
                                               high=0.9)
    scale_change: float = param(1.5, "the object's size drifts within [1/s, s] of a base size drawn from "
                                     "object_fraction",
                                low=1.0, high=4.0)
    rotation_deg: float = param(0.0, "the object rolls within [-r, r] degrees of its photo's pose along "
                                     "a smooth path, so its box changes shape (a diver, a gymnast); "
                                     "0 = upright",
                                low=0.0, high=180.0)
    aspect_change: float = param(1.0, "the object's width/height drifts within [1/a, a] of its photo's, "
                                      "area kept (a body turning or bending); 1 = rigid",
                                 low=1.0, high=4.0)
    travel: float = param(0.8, "how far the object roams, as a fraction of the room to the frame edge",
                          low=0.0, high=1.0)
    occluder_probability: float = param(0.4, "share of sequences where a second pasted object crosses "
                                             "in front of the target", low=0.0, high=1.0)
    occluder_scale: tuple[float, ...] = param((0.4, 0.8), "occluder size relative to the target",
                                              low=0.05, high=2.0)
    motion: CameraMotionConfig = nested(CameraMotionConfig)
    thermal: GreyThermalConfig = nested(GreyThermalConfig)

    def __post_init__(self) -> None:
        _check_ranges(self, ("object_fraction", "occluder_scale"))


@dataclass(frozen=True)
class AlignedPairsConfig(SourceFrames):
    """Pixel-aligned RGB/thermal photo pairs seen by one moving camera: real thermal images."""

    sequences: int = param(100, "sequences to make (0 = source off)", low=0, high=100000)
    roots: tuple[str, ...] = param((), "folders, each with visible/ and infrared/ holding images of the "
                                       "same names")
    box_fraction: tuple[float, ...] = param((0.08, 0.25), "target box side as a fraction of the photo's "
                                                          "shorter side (min, max)", low=0.02, high=0.8)
    box_aspect: tuple[float, ...] = param((0.5, 2.0), "target box width/height (min, max)", low=0.1,
                                          high=10.0)
    candidates: int = param(200, "random boxes scored per sequence; the most distinctive in both "
                                "modalities is the target", low=1, high=10000)
    motion: CameraMotionConfig = nested(CameraMotionConfig)

    def __post_init__(self) -> None:
        _check_ranges(self, ("box_fraction", "box_aspect"))


@dataclass(frozen=True)
class MixSyntheticConfig(SourceFrames):
    """The synthetic generator for the thermal-specific challenges real photos cannot show."""

    sequences: int = param(40, "sequences to make (0 = source off)", low=0, high=100000)
    challenges: tuple[str, ...] = param(("thermal_crossover", "distractor_rgb", "distractor_thermal"),
                                        "challenges drawn from for each sequence", choices=CHALLENGES)
    challenges_per_sequence: int = param(1, "challenges on in one sequence (at most len(challenges))",
                                         low=0, high=len(CHALLENGES))
    generator: SyntheticConfig = nested(SyntheticConfig)

    def __post_init__(self) -> None:
        validate_challenges(self.challenges)


@dataclass(frozen=True)
class MixConfig:
    """Training sequences mixed from real photos, real RGB/thermal pairs and the synthetic generator."""

    seed: int = param(0, "seed of the whole mix: the same seed and settings give the same files", low=0)
    jpeg_quality: int = param(92, "JPEG quality of the written frames", low=1, high=100)
    photo_motion: PhotoMotionConfig = nested(PhotoMotionConfig)
    paste: PasteConfig = nested(PasteConfig)
    aligned_pairs: AlignedPairsConfig = nested(AlignedPairsConfig)
    synthetic: MixSyntheticConfig = nested(MixSyntheticConfig)


SOURCE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(MixConfig)
                                      if f.name not in ("seed", "jpeg_quality"))
