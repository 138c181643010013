"""Challenge attributes measured from what was actually rendered, not from the switches.

A switched-on challenge records an attribute only on the frames where it happened (an
occluder that has not reached the target yet is no occlusion), with the thresholds of
:class:`SyntheticConfig`. RGBT234 keeps per-frame flags; GTOT's are per sequence.
"""

from __future__ import annotations

import numpy as np

from m5l_core.datasets.synthetic_config import GTOT_ATTRIBUTES, RGBT234_ATTRIBUTES, SyntheticConfig
from m5l_core.datasets.synthetic_scene import ScenePlan


def covered_fraction(target: np.ndarray, occluder: np.ndarray) -> np.ndarray:
    """Fraction of each target box (N, 4) hidden by the occluder box in front of it."""
    x0 = np.maximum(target[:, 0], occluder[:, 0])
    y0 = np.maximum(target[:, 1], occluder[:, 1])
    x1 = np.minimum(target[:, 0] + target[:, 2], occluder[:, 0] + occluder[:, 2])
    y1 = np.minimum(target[:, 1] + target[:, 3], occluder[:, 1] + occluder[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    inter = np.where(occluder[:, 2] > 0, inter, 0)
    return inter / np.maximum(target[:, 2] * target[:, 3], 1)


def _step_lengths(points: np.ndarray) -> np.ndarray:
    """Distance moved since the previous frame (0 for the first frame)."""
    steps = np.zeros(len(points))
    steps[1:] = np.hypot(*np.diff(points.astype(np.float64), axis=0).T)
    return steps


def _clutter(config: SyntheticConfig, plan: ScenePlan) -> np.ndarray:
    target = plan.target.astype(np.float64)
    centre = target[:, :2] + target[:, 2:4] / 2
    reach = config.clutter_distance * np.hypot(target[:, 2], target[:, 3])
    near = np.zeros(plan.n_frames, dtype=bool)
    for distractor in plan.distractors:
        other = distractor.boxes[:, :2] + distractor.boxes[:, 2:4] / 2
        near |= np.hypot(*(other - centre).T) < reach
    return near


def frame_attributes(config: SyntheticConfig, plan: ScenePlan) -> dict[str, np.ndarray]:
    """Per-frame boolean flags for the 12 RGBT234 attributes (``SV`` is the toolkit's ``SC``)."""
    target = plan.target.astype(np.float64)
    area = target[:, 2] * target[:, 3]
    cover = covered_fraction(plan.target, plan.occluder)
    heavy = cover >= config.heavy_occlusion_fraction
    partial = (cover >= config.partial_occlusion_min) & ~heavy
    ratio = np.sqrt(area / area[0])
    aspect = target[:, 2] / target[:, 3]
    aspect_change = np.maximum(aspect / aspect[0], aspect[0] / aspect)
    flags = {
        "BC": _clutter(config, plan),
        "CM": _step_lengths(plan.camera) >= max(config.camera_motion_px, 1e-9),
        "DEF": aspect_change > config.deformation_ratio,
        "FM": _step_lengths(target[:, :2] + target[:, 2:4] / 2) > config.fast_motion_px,
        "HO": heavy,
        "LI": plan.gain < config.low_light_flag_gain,
        "LR": area < config.low_resolution_area,
        "MB": plan.blur > 0,
        "NO": ~(heavy | partial),
        "PO": partial,
        "SV": (ratio > config.scale_variation_ratio) | (ratio < 1.0 / config.scale_variation_ratio),
        "TC": plan.heat < config.crossover_flag_contrast,
    }
    return {code: np.asarray(flags[code], dtype=bool) for code in RGBT234_ATTRIBUTES}


def rgbt234_sequence_flags(attributes: dict[str, np.ndarray]) -> dict[str, bool]:
    """Sequence-level flags as in the toolkit's attr_txt: set when any frame has the
    attribute; ``NO`` only when no frame is occluded."""
    return {code: bool(np.all(flags) if code == "NO" else np.any(flags))
            for code, flags in attributes.items()}


def gtot_sequence_flags(attributes: dict[str, np.ndarray]) -> dict[str, bool]:
    """GTOT's seven sequence-level flags from the per-frame RGBT234-style ones."""
    flags = {
        "OCC": bool(np.any(attributes["PO"] | attributes["HO"])),
        "LSV": bool(np.any(attributes["SV"])),
        "FM": bool(np.any(attributes["FM"])),
        "LI": bool(np.any(attributes["LI"])),
        "TC": bool(np.any(attributes["TC"])),
        # A small object is small for most of the sequence, not for one frame of a zoom.
        "SO": bool(np.mean(attributes["LR"]) > 0.5),
        "DEF": bool(np.any(attributes["DEF"])),
    }
    return {code: flags[code] for code in GTOT_ATTRIBUTES}
