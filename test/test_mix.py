"""The training mix (``dataset: mix``): exact boxes, determinism, resume, errors, and the loader.

Every input is a tiny fake written into ``tmp_path`` in the real formats (YOLO boxes and
polygons, aligned visible/infrared pairs), so nothing here needs the real data.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from m5l_core.config import ConfigError, from_dict
from m5l_core.datasets.mix import generate_mix
from m5l_core.datasets.mix_aligned import distinctive_box
from m5l_core.datasets.mix_cli import main as mix_main
from m5l_core.datasets.mix_config import (
    AlignedPairsConfig,
    CameraMotionConfig,
    GreyThermalConfig,
    MixConfig,
    MixSyntheticConfig,
    PasteConfig,
    PhotoMotionConfig,
)
from m5l_core.datasets.mix_paste import PasteSource
from m5l_core.datasets.mix_photo import PhotoMotionSource
from m5l_core.datasets.sequence import DatasetError
from m5l_core.preprocess import PreprocessConfig
from m5l_core.training.config import DataConfig, SamplingConfig, load_train_config
from m5l_core.training.data import build_batch, make_domains
from m5l_core.training.sources import load_training_sequences

MARKER_BOX = (50, 40, 36, 24)                    # x, y, w, h of the red marker in the fake photo
OBJECT_POLYGON = np.array([[90, 20], [140, 30], [130, 80], [95, 70]], float)   # the blue object
CLEAN = CameraMotionConfig(blur_probability=0.0, illumination_probability=0.0, rgb_noise=0.0, knot_frames=4)


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Grey-green clutter with no strong red or blue, so colour markers can be found again."""
    base = rng.integers(60, 150, (height // 8 + 1, width // 8 + 1, 1), dtype=np.uint8)
    image = cv2.resize(np.repeat(base, 3, axis=2), (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(image, (5, 5), 0)


def _fake_inputs(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    photos = root / "coco"
    (photos / "images" / "train").mkdir(parents=True)
    (photos / "boxes" / "train").mkdir(parents=True)
    (photos / "polygons" / "train").mkdir(parents=True)
    photo = _texture(rng, 120, 160)
    x, y, w, h = MARKER_BOX
    photo[y:y + h, x:x + w] = (255, 0, 0)
    cv2.fillPoly(photo, [OBJECT_POLYGON.astype(np.int32)], (0, 0, 255))
    cv2.imwrite(str(photos / "images" / "train" / "a.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (photos / "boxes" / "train" / "a.txt").write_text(
        f"3 {(x + w / 2) / 160} {(y + h / 2) / 120} {w / 160} {h / 120}\n")
    # fillPoly's vertices are pixel centres; polygon files hold edge coordinates (+0.5).
    normalised = " ".join(f"{(px + 0.5) / 160} {(py + 0.5) / 120}" for px, py in OBJECT_POLYGON)
    (photos / "polygons" / "train" / "a.txt").write_text(f"7 {normalised}\n")
    backgrounds = root / "backgrounds"
    backgrounds.mkdir()
    for index in range(2):
        cv2.imwrite(str(backgrounds / f"bg{index}.png"), _texture(rng, 100, 140))
    pairs = root / "pairs"
    for folder in ("visible", "infrared"):
        (pairs / folder).mkdir(parents=True)
    scene = _texture(rng, 96, 128)
    heat = np.full((96, 128), 40, np.uint8)
    scene[30:60, 70:100] = rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)   # busy in RGB ...
    heat[30:60, 70:100] = 230                                                # ... and hot
    cv2.imwrite(str(pairs / "visible" / "p.png"), scene)
    cv2.imwrite(str(pairs / "infrared" / "p.png"), heat)
    return {"photos": photos, "backgrounds": backgrounds, "pairs": pairs}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return _fake_inputs(tmp_path_factory.mktemp("mix_inputs"))


def _tiny_mix(inputs: dict[str, Path], count: int = 2, frames: int = 5) -> MixConfig:
    size = {"frames": frames, "width": 80, "height": 64}
    return MixConfig(
        seed=3,
        photo_motion=PhotoMotionConfig(sequences=count, roots=(str(inputs["photos"]),), min_box_side=8,
                                       **size),
        paste=PasteConfig(sequences=count, object_roots=(str(inputs["photos"]),),
                          background_dirs=(str(inputs["backgrounds"]),), min_object_side=8,
                          occluder_probability=1.0, thermal=GreyThermalConfig(mode="styled"), **size),
        aligned_pairs=AlignedPairsConfig(sequences=count, roots=(str(inputs["pairs"]),), candidates=16,
                                         **size),
        synthetic=MixSyntheticConfig(sequences=1, frames=frames, width=80, height=64))


def _colour_box(frame: np.ndarray, channel: int) -> np.ndarray:
    """Box of the pixels at least half covered by a pure-colour marker.

    Over a grey background, (marker channel - largest other channel) is 255 x the coverage.
    """
    others = [c for c in range(3) if c != channel]
    mask = frame[..., channel].astype(int) - frame[..., others].max(axis=2) >= 128
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1])


def _corner_error(seen: np.ndarray, box: np.ndarray) -> float:
    """Largest distance between the corners of two ``x, y, w, h`` boxes."""
    return float(np.abs(np.concatenate([seen[:2] - box[:2], seen[:2] + seen[2:] - box[:2] - box[2:]])).max())


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_photo_motion_box_follows_the_warped_marker(inputs):
    config = PhotoMotionConfig(sequences=1, roots=(str(inputs["photos"]),), frames=12, width=96, height=72,
                               min_box_side=8, motion=dataclasses.replace(CLEAN, rotation_deg=0.0))
    made = PhotoMotionSource(config, seed=1).render(0, np.random.default_rng(4))
    assert len(made.rgb) == 12 and made.thermal[0].shape == (72, 96)
    # Without thermal images the thermal frame is the RGB frame's grey-scale (as in real_dev).
    assert np.array_equal(made.thermal[5], cv2.cvtColor(made.rgb[5], cv2.COLOR_RGB2GRAY))
    centres = made.boxes[:, :2] + made.boxes[:, 2:] / 2
    assert np.ptp(centres, axis=0).max() > 2.0             # the camera really moved
    for frame, box in zip(made.rgb, made.boxes, strict=True):
        # Pixels at least half covered count, so the corners agree to half a pixel.
        assert _corner_error(_colour_box(frame, 0), box) <= 0.6


def test_rolling_camera_box_encloses_the_marker(inputs):
    config = PhotoMotionConfig(sequences=1, roots=(str(inputs["photos"]),), frames=8, width=96, height=72,
                               min_box_side=8, motion=dataclasses.replace(CLEAN, rotation_deg=10.0))
    made = PhotoMotionSource(config, seed=1).render(0, np.random.default_rng(5))
    for frame, box in zip(made.rgb, made.boxes, strict=True):
        # The box around a rolled rectangle is the box around its pixels.
        assert _corner_error(_colour_box(frame, 0), box) <= 0.75


def test_pasted_object_box_matches_its_mask(inputs):
    config = PasteConfig(sequences=1, object_roots=(str(inputs["photos"]),),
                         background_dirs=(str(inputs["backgrounds"]),), frames=10, width=96, height=72,
                         min_object_side=8, occluder_probability=0.0, motion=CLEAN)
    source = PasteSource(config, seed=2)
    assert len(source.objects) == 1
    made = source.render(0, np.random.default_rng(6))
    assert np.ptp(made.boxes[:, 0]) + np.ptp(made.boxes[:, 1]) > 2.0     # the object moved
    errors = [_corner_error(_colour_box(frame, 2), box)
              for frame, box in zip(made.rgb, made.boxes, strict=True)]
    # Equal but where a pixel's alpha rounds across one half.
    assert max(errors) <= 1.0 and errors.count(0.0) >= 0.8 * len(errors)


def test_a_rolling_stretching_object_changes_its_box_shape_and_the_box_follows_its_mask(inputs):
    def render(**shape) -> np.ndarray:
        config = PasteConfig(sequences=1, object_roots=(str(inputs["photos"]),),
                             background_dirs=(str(inputs["backgrounds"]),), frames=40, width=160, height=120,
                             min_object_side=8, object_fraction=(0.5, 0.5), occluder_probability=0.0,
                             scale_change=1.0, motion=CLEAN, **shape)
        return PasteSource(config, seed=2).render(0, np.random.default_rng(6))

    rigid, changing = render(), render(rotation_deg=60.0, aspect_change=1.8)
    for frame, box in zip(changing.rgb, changing.boxes, strict=True):
        assert _corner_error(_colour_box(frame, 2), box) <= 1.0
    # The rigid object's box keeps its photo's aspect; the rolling, stretching one's does not.
    log_aspect = [np.log(made.boxes[:, 2] / made.boxes[:, 3]) for made in (rigid, changing)]
    assert np.std(log_aspect[0]) < 0.03 and np.std(log_aspect[1]) > 0.1


def test_aligned_target_is_distinctive_in_both_modalities(inputs):
    rgb = cv2.cvtColor(cv2.imread(str(inputs["pairs"] / "visible" / "p.png")), cv2.COLOR_BGR2RGB)
    heat = cv2.imread(str(inputs["pairs"] / "infrared" / "p.png"), cv2.IMREAD_GRAYSCALE)
    box = distinctive_box(rgb, heat, AlignedPairsConfig(candidates=200), np.random.default_rng(0))
    centre = box[:2] + box[2:] / 2
    assert 60 <= centre[0] <= 110 and 20 <= centre[1] <= 70     # on or beside the hot, busy square


def test_generated_mix_is_deterministic_and_loads_as_domains(inputs, tmp_path):
    config = _tiny_mix(inputs)
    first = generate_mix(config, tmp_path / "a", progress=False, workers=1)
    assert [p.name for p in first] == ["photo_motion_0000", "photo_motion_0001", "paste_0000", "paste_0001",
                                       "aligned_pairs_0000", "aligned_pairs_0001", "synthetic_0000"]
    assert (tmp_path / "a" / "paste_0000" / "visible" / "00005v.jpg").is_file()
    # Training generates the same mix into <out>/mix and reads it back, one domain per sequence.
    sequences = load_training_sequences(DataConfig(dataset="mix", mix=config), tmp_path / "run")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "run" / "mix")
    domains = make_domains(sequences, 4.0)
    assert len(domains) == 7
    sampling = SamplingConfig(frames_per_step=2, pos_per_frame=4, neg_per_frame=8, target_size=16,
                              crop_size=48)
    batch = build_batch(domains, step=0, rank=0, world_size=1, seed=0, config=sampling,
                        preprocess=PreprocessConfig())
    assert batch.rgb.shape == batch.thermal.shape == (2, 48, 48, 3)
    for sequence in sequences:
        assert len(sequence) == 5 and len(sequence.thermal_frames) == 5
        assert np.array_equal(sequence.gt_rgb, sequence.gt_thermal)
        assert (sequence.gt_rgb[:, 2:] >= 4).all()
        assert (sequence.gt_rgb[:, 0] + sequence.gt_rgb[:, 2] <= 80).all()


def test_interrupted_generation_resumes_and_other_settings_are_refused(inputs, tmp_path):
    config = _tiny_mix(inputs, count=1, frames=4)
    generate_mix(config, tmp_path / "mix", progress=False, workers=1)
    complete = _tree(tmp_path / "mix")
    # An interrupted run leaves a .partial folder and misses the sequences after it.
    for name in ("paste_0000", "synthetic_0000"):
        (tmp_path / "mix" / name).rename(tmp_path / "mix" / f".{name}.partial")
    generate_mix(config, tmp_path / "mix", progress=False, workers=1)
    assert _tree(tmp_path / "mix") == complete
    more = dataclasses.replace(config, paste=dataclasses.replace(config.paste, sequences=2))
    generate_mix(more, tmp_path / "mix", progress=False, workers=1)        # a larger count only adds
    assert (tmp_path / "mix" / "paste_0001").is_dir()
    assert "paste_0001" in (tmp_path / "mix" / "list.txt").read_text()
    other = dataclasses.replace(config, paste=dataclasses.replace(config.paste, frames=6))
    with pytest.raises(DatasetError, match=r"mix\.sources\.paste\.frames: 4, now 6"):
        generate_mix(other, tmp_path / "mix", progress=False, workers=1)
    # A folder made before a setting existed holds that setting's default, and only that.
    manifest = tmp_path / "mix" / "mix.json"
    made = json.loads(manifest.read_text())
    del made["sources"]["paste"]["rotation_deg"]
    manifest.write_text(json.dumps(made))
    generate_mix(config, tmp_path / "mix", progress=False, workers=1)
    rolled = dataclasses.replace(config, paste=dataclasses.replace(config.paste, rotation_deg=30.0))
    with pytest.raises(DatasetError, match=r"mix\.sources\.paste\.rotation_deg: 0\.0, now 30\.0"):
        generate_mix(rolled, tmp_path / "mix", progress=False, workers=1)


def test_missing_or_unnamed_folders_are_clear_errors(inputs, tmp_path):
    config = _tiny_mix(inputs, count=1)
    missing = dataclasses.replace(config, aligned_pairs=dataclasses.replace(
        config.aligned_pairs, roots=(str(tmp_path / "no_such_pairs"),)))
    with pytest.raises(DatasetError, match=r"mix\.aligned_pairs\.roots: folder .*no_such_pairs not found"):
        generate_mix(missing, tmp_path / "out1", progress=False)
    assert not any((tmp_path / "out1").glob("photo_motion_*"))           # failed before writing
    unnamed = dataclasses.replace(config, paste=dataclasses.replace(config.paste, background_dirs=()))
    with pytest.raises(DatasetError, match=r"mix\.paste\.background_dirs is empty"):
        generate_mix(unnamed, tmp_path / "out2", progress=False)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not a mix folder"):
        generate_mix(config, tmp_path / "foreign", progress=False)


def test_mix_config_is_strict_and_the_recipe_parses():
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(MixConfig, {"paste": {"occluders": 1}}, "test")
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(MixConfig, {"synthetic": {"challenges": ["crossover"]}}, "test")
    with pytest.raises(ConfigError, match="min <= max"):
        CameraMotionConfig(target_fraction=(0.5, 0.2))
    repo = Path(__file__).resolve().parents[1]
    recipe = load_train_config(str(repo / "config" / "train_real.yaml"))
    assert recipe.data.dataset == "mix"
    (root,) = recipe.data.mix.photo_motion.roots
    assert Path(root).name == "coco128"
    assert not (repo / root).resolve().is_relative_to(repo)        # data is never committed
    assert recipe.data.mix.synthetic.sequences > 0


def test_cli_generates_and_previews(inputs, tmp_path, capsys):
    yaml_text = (f"mix:\n  photo_motion: {{sequences: 1, frames: 3, roots: ['{inputs['photos']}'], "
                 f"min_box_side: 8}}\n  paste: {{sequences: 0}}\n  aligned_pairs: {{sequences: 0}}\n"
                 f"  synthetic: {{sequences: 0}}\n")
    (tmp_path / "mix.yaml").write_text(yaml_text)
    args = ["--config", str(tmp_path / "mix.yaml"), "--out", str(tmp_path / "out"), "--no-progress",
            "--preview", str(tmp_path / "sheet.png")]
    assert mix_main(args) == 0
    assert (tmp_path / "sheet.png").is_file() and "1 sequences" in capsys.readouterr().out
    assert mix_main([*args[:4], "--set", "paste.sequences=1", "--no-progress"]) == 2
    assert "mix.paste.object_roots is empty" in capsys.readouterr().err
