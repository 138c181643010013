"""Behaviour of the synthetic RGB-T generator in memory: determinism, challenges, ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from m5l_core.config import ConfigError
from m5l_core.datasets.synthetic import (
    CHALLENGES,
    GTOT_ATTRIBUTES,
    RGBT234_ATTRIBUTES,
    SyntheticConfig,
    generate_sequence,
)
from m5l_core.datasets.synthetic_scene import plan_scene

SMALL = SyntheticConfig(width=160, height=120, n_frames=40)


def _pair(challenge: str, seed: int = 7, config: SyntheticConfig = SMALL, base: tuple[str, ...] = ()):
    """The same seeded scene without and with one challenge."""
    return (generate_sequence(config, seed, base),
            generate_sequence(config, seed, (*base, challenge)))


def _box_pixels(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    x, y, w, h = (int(v) for v in box)
    return image[y:y + h, x:x + w]


def _ring(image: np.ndarray, box: np.ndarray, pad: int) -> np.ndarray:
    """Pixels in a band of ``pad`` px around the box (inside the image)."""
    x, y, w, h = (int(v) for v in box)
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[max(y - pad, 0):y + h + pad, max(x - pad, 0):x + w + pad] = True
    mask[y:y + h, x:x + w] = False
    return image[mask]


def test_same_seed_gives_identical_sequences_and_other_seeds_differ():
    first = generate_sequence(SMALL, 11, CHALLENGES)
    again = generate_sequence(SMALL, 11, CHALLENGES)
    other = generate_sequence(SMALL, 12, CHALLENGES)
    assert all(np.array_equal(a, b) for a, b in zip(first.rgb, again.rgb, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(first.thermal, again.thermal, strict=True))
    assert np.array_equal(first.gt_rgb, again.gt_rgb) and np.array_equal(first.gt_thermal, again.gt_thermal)
    assert all(np.array_equal(first.attributes[k], again.attributes[k]) for k in RGBT234_ATTRIBUTES)
    assert not np.array_equal(first.rgb[0], other.rgb[0])
    assert not np.array_equal(first.gt_rgb, other.gt_rgb)


def test_frames_have_the_documented_types_and_attributes_cover_both_benchmarks():
    seq = generate_sequence(SMALL, 3, ("occlusion",))
    assert len(seq) == 40 and len(seq.rgb) == 40 and len(seq.thermal) == 40
    assert seq.rgb[0].shape == (120, 160, 3) and seq.rgb[0].dtype == np.uint8
    assert seq.thermal[0].shape == (120, 160) and seq.thermal[0].dtype == np.uint8
    assert seq.gt_rgb.shape == (40, 4) and seq.gt_thermal.shape == (40, 4)
    assert set(seq.attributes) == set(RGBT234_ATTRIBUTES)
    assert all(flags.shape == (40,) and flags.dtype == bool for flags in seq.attributes.values())
    assert set(seq.gtot_attributes) == set(GTOT_ATTRIBUTES)
    assert seq.challenges == ("occlusion",)


def test_a_textured_scene_not_flat_colours():
    seq = generate_sequence(SMALL, 5, ())
    target = _box_pixels(seq.rgb[0], seq.gt_rgb[0]).reshape(-1, 3).astype(float)
    assert target.std(axis=0).mean() > 10  # the target has texture, not one colour
    assert seq.rgb[0].reshape(-1, 3).astype(float).std(axis=0).mean() > 15
    assert len(np.unique(seq.rgb[0].reshape(-1, 3), axis=0)) > 1000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_truth_stays_inside_the_frame_with_every_challenge(seed):
    seq = generate_sequence(SMALL, seed, CHALLENGES)
    for gt in (seq.gt_rgb, seq.gt_thermal):
        assert np.all(gt[:, :2] >= 0) and np.all(gt[:, 2:] >= SMALL.min_target_px)
        assert np.all(gt[:, 0] + gt[:, 2] <= SMALL.width) and np.all(gt[:, 1] + gt[:, 3] <= SMALL.height)


def test_thermal_blob_fills_the_thermal_ground_truth():
    """With a plain background, the pixels warmer than the background are the target's,
    and they lie inside the (misaligned) thermal box and span it."""
    config = dataclasses.replace(SMALL, background_objects=0, background_hot_objects=0,
                                 target_heat_range=(0.4, 0.42), n_frames=12)
    seq = generate_sequence(config, 4, ("misalignment",))
    for frame in range(len(seq)):
        thermal = seq.thermal[frame].astype(float)
        hot = thermal > np.median(thermal) + 0.12 * 255
        x, y, w, h = seq.gt_thermal[frame].astype(int)
        inside = np.zeros_like(hot)
        inside[y:y + h, x:x + w] = True
        assert hot.any() and not (hot & ~inside).any()
        rows, cols = np.nonzero(hot)
        hot_area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert hot_area >= 0.85 * w * h


def test_rgb_ground_truth_bounds_what_moves_in_a_static_clean_scene():
    config = dataclasses.replace(SMALL, rgb_noise=0.0, n_frames=10)
    seq = generate_sequence(config, 8, ())
    for frame in (3, 9):
        changed = np.any(seq.rgb[frame] != seq.rgb[0], axis=2)
        allowed = np.zeros_like(changed)
        for box in (seq.gt_rgb[0], seq.gt_rgb[frame]):
            x, y, w, h = box.astype(int)
            allowed[y:y + h, x:x + w] = True
        assert changed.any() and not (changed & ~allowed).any()


def test_misalignment_shifts_the_thermal_ground_truth_and_only_then():
    plain, shifted = _pair("misalignment")
    assert np.array_equal(plain.gt_rgb, plain.gt_thermal) and plain.misalignment == (0, 0)
    offset = shifted.gt_thermal - shifted.gt_rgb
    assert np.all(offset == offset[0]) and np.any(offset[0, :2] != 0)
    assert np.array_equal(offset[0, 2:], [0, 0])
    assert tuple(offset[0, :2].astype(int)) == shifted.misalignment
    assert np.array_equal(plain.gt_rgb, shifted.gt_rgb)


def test_low_illumination_darkens_rgb_and_is_flagged():
    plain, dark = _pair("low_illumination")
    flagged = dark.attributes["LI"]
    assert flagged.any() and not plain.attributes["LI"].any()
    mean_plain = np.mean([plain.rgb[i].mean() for i in np.nonzero(flagged)[0]])
    mean_dark = np.mean([dark.rgb[i].mean() for i in np.nonzero(flagged)[0]])
    assert mean_dark < 0.6 * mean_plain
    assert np.array_equal(plain.thermal[5], dark.thermal[5])  # thermal cameras do not need light


def test_thermal_crossover_lowers_target_contrast_on_flagged_frames():
    plain, crossed = _pair("thermal_crossover", config=dataclasses.replace(SMALL, n_frames=60))
    flagged = np.nonzero(crossed.attributes["TC"])[0]
    assert len(flagged) > 0 and not plain.attributes["TC"].any()
    assert not crossed.attributes["TC"][0]

    def contrast(seq, frame):
        box = seq.gt_thermal[frame]
        thermal = seq.thermal[frame].astype(float)
        return _box_pixels(thermal, box).mean() - _ring(thermal, box, 6).mean()

    for frame in flagged:
        assert contrast(crossed, frame) < 0.5 * contrast(plain, frame)


def _covered_fraction_seen(plain, occluded, frame):
    before = _box_pixels(plain.rgb[frame], plain.gt_rgb[frame])
    after = _box_pixels(occluded.rgb[frame], occluded.gt_rgb[frame])
    return np.mean(np.any(before != after, axis=2))


def test_partial_occlusion_flags_exactly_the_covered_frames():
    plain, occluded = _pair("occlusion", config=dataclasses.replace(SMALL, n_frames=60))
    assert np.array_equal(plain.gt_rgb, occluded.gt_rgb)
    partial, heavy = occluded.attributes["PO"], occluded.attributes["HO"]
    assert partial.any() and not heavy.any() and not plain.attributes["PO"].any()
    assert np.array_equal(occluded.attributes["NO"], ~partial)
    seen = np.array([_covered_fraction_seen(plain, occluded, f) for f in range(len(occluded))])
    assert np.all(seen[~partial] < 0.05)
    assert np.all((seen[partial] > 0.02) & (seen[partial] < 0.8))
    assert occluded.gtot_attributes["OCC"] and not plain.gtot_attributes["OCC"]


def test_heavy_occlusion_hides_most_of_the_target_on_flagged_frames():
    plain, occluded = _pair("heavy_occlusion", config=dataclasses.replace(SMALL, n_frames=60))
    heavy = occluded.attributes["HO"]
    assert heavy.any() and not heavy[0]
    seen = np.array([_covered_fraction_seen(plain, occluded, f) for f in range(len(occluded))])
    assert np.all(seen[heavy] > 0.75)
    assert np.all(seen[occluded.attributes["NO"]] < 0.05)


def test_scale_change_changes_box_size_and_is_flagged():
    config = dataclasses.replace(SMALL, n_frames=80)
    plain, scaled = _pair("scale_change", config=config)
    assert len({tuple(size) for size in plain.gt_rgb[:, 2:]}) == 1
    ratio = np.sqrt(scaled.gt_rgb[:, 2] * scaled.gt_rgb[:, 3] / (scaled.gt_rgb[0, 2] * scaled.gt_rgb[0, 3]))
    assert ratio.max() > 1.5 or ratio.min() < 1 / 1.5
    assert scaled.attributes["SV"].any() and not plain.attributes["SV"].any()
    assert scaled.gtot_attributes["LSV"]


def test_deformation_changes_the_aspect_ratio():
    plain, deformed = _pair("deformation", config=dataclasses.replace(SMALL, n_frames=60))
    aspect = deformed.gt_rgb[:, 2] / deformed.gt_rgb[:, 3]
    assert aspect.max() / aspect.min() > 1.3
    assert deformed.attributes["DEF"].any() and not plain.attributes["DEF"].any()


def test_fast_motion_moves_the_target_farther_per_frame():
    config = dataclasses.replace(SMALL, width=320, height=240, n_frames=60, fast_speed_range=(25.0, 30.0))
    plain, fast = _pair("fast_motion", config=config)

    def steps(seq):
        centres = seq.gt_rgb[:, :2] + seq.gt_rgb[:, 2:] / 2
        return np.hypot(*np.diff(centres, axis=0).T)

    assert steps(fast).max() > config.fast_motion_px > steps(plain).max()
    assert fast.attributes["FM"].any() and not plain.attributes["FM"].any()


def test_motion_blur_smooths_the_target():
    plain, blurred = _pair("motion_blur", config=dataclasses.replace(SMALL, n_frames=60, rgb_noise=0.0))
    flagged = np.nonzero(blurred.attributes["MB"])[0]
    assert len(flagged) > 0 and not plain.attributes["MB"].any()

    def roughness(seq, frame):
        patch = _box_pixels(seq.rgb[frame], seq.gt_rgb[frame]).astype(float)
        return np.abs(np.diff(patch, axis=0)).mean() + np.abs(np.diff(patch, axis=1)).mean()

    for frame in flagged:
        assert roughness(blurred, frame) < roughness(plain, frame)


def test_camera_motion_moves_the_background():
    config = dataclasses.replace(SMALL, n_frames=20, rgb_noise=0.0, thermal_noise=0.0)
    plain, moving = _pair("camera_motion", config=config)
    assert moving.attributes["CM"].any() and not plain.attributes["CM"].any()
    corner = (slice(0, 20), slice(0, 20))
    changes = [not np.array_equal(seq.rgb[0][corner], seq.rgb[-1][corner]) for seq in (plain, moving)]
    assert changes == [False, True]


@pytest.mark.parametrize(("kind", "like_in"), [("distractor_rgb", "rgb"), ("distractor_thermal", "thermal")])
def test_distractors_resemble_the_target_in_one_modality_only(kind, like_in):
    config = dataclasses.replace(SMALL, width=320, height=240, n_frames=30, distractor_count=(1, 1))
    seq = generate_sequence(config, 21, (kind,))
    plan = plan_scene(config, 21, (kind,))
    assert seq.attributes["BC"].any()
    boxes = plan.distractors[0].boxes
    rgb_gap, thermal_gap = [], []
    for frame in range(len(seq)):
        box, target = boxes[frame], seq.gt_rgb[frame]
        if box[0] < 0 or box[1] < 0 or box[0] + box[2] > 320 or box[1] + box[3] > 240:
            continue
        rgb_gap.append(np.abs(_box_pixels(seq.rgb[frame], box).reshape(-1, 3).mean(0)
                              - _box_pixels(seq.rgb[frame], target).reshape(-1, 3).mean(0)).mean())
        thermal_gap.append(abs(_box_pixels(seq.thermal[frame], box).mean()
                               - _box_pixels(seq.thermal[frame], target).mean()))
    assert len(rgb_gap) >= 5
    rgb_gap_mean, thermal_gap_mean = np.mean(rgb_gap), np.mean(thermal_gap)
    if like_in == "rgb":
        assert rgb_gap_mean < 20 and thermal_gap_mean > 40
    else:
        assert rgb_gap_mean > 20 and thermal_gap_mean < 20


def test_sixteen_bit_thermal_keeps_the_same_scene():
    eight = generate_sequence(dataclasses.replace(SMALL, n_frames=3), 2, ())
    sixteen = generate_sequence(dataclasses.replace(SMALL, n_frames=3, thermal_bits=16), 2, ())
    assert sixteen.thermal[0].dtype == np.uint16 and sixteen.thermal[0].max() > 255
    levels = (sixteen.thermal[0].astype(float) - SMALL.thermal16_offset) / SMALL.thermal16_span
    assert np.abs(levels * 255 - eight.thermal[0].astype(float)).max() <= 1.0
    assert np.array_equal(eight.rgb[0], sixteen.rgb[0])


def test_unknown_challenges_and_bad_ranges_are_config_errors():
    with pytest.raises(ConfigError, match="unknown challenge 'rain'"):
        generate_sequence(SMALL, 0, ("rain",))
    with pytest.raises(ConfigError, match="non-negative"):
        generate_sequence(SMALL, -1, ())
    with pytest.raises(ConfigError, match="unknown layout"):
        generate_sequence(SMALL, 0, (), layout="vot")
    with pytest.raises(ConfigError, match="speed_range"):
        dataclasses.replace(SMALL, speed_range=(5.0, 1.0))
    with pytest.raises(ConfigError, match="n_frames: 1 is below the minimum 2"):
        dataclasses.replace(SMALL, n_frames=1)


def test_default_mix_draws_different_challenges_per_seed():
    mixes = {generate_sequence(dataclasses.replace(SMALL, n_frames=2), seed).challenges for seed in range(8)}
    assert len(mixes) > 3
    assert set().union(*mixes) <= set(CHALLENGES)
