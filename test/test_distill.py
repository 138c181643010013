"""m5l-distill: geometry, crops, loss going down, resume, the result file as M5L's initialisation."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from m5l_core.config import ConfigError
from m5l_core.datasets.sequence import DatasetError
from m5l_core.distill import DistillConfig, distill, load_distill_config, write_distilled_vggm
from m5l_core.distill.cli import main
from m5l_core.distill.data import CropSource
from m5l_core.distill.geometry import sample_at_student_cells, teacher_index
from m5l_core.distill.objective import build_teacher
from m5l_core.models import M5LNet, ModelConfig, VggmInitError, conv3_size
from m5l_core.models.effnet import BN_EPS, PACKAGE, EfficientNetLite0Trunk, installed_weights_path
from m5l_core.models.vggm import DISTILLED_FORMAT, make_vggm_stream
from m5l_core.training.log import read_log
from m5l_core.training.state import initialise

REPO = Path(__file__).resolve().parents[1]
CROP = 91   # 3x3 student cells: small enough for a step in a few tens of milliseconds


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Blurred noise plus a few rectangles: structure at several scales, like a photo."""
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3)).astype(np.uint8), (0, 0), 3)
    for _ in range(4):
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        image[y:y + 40, x:x + 60] = rng.integers(0, 256, 3)
    return image


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """photos/ (RGB stream) and pairs/{visible,infrared} (thermal: grey inverted) in a temporary folder."""
    root = tmp_path_factory.mktemp("distill_data")
    rng = np.random.default_rng(0)
    (root / "photos" / "sub").mkdir(parents=True)
    (root / "pairs" / "visible").mkdir(parents=True)
    (root / "pairs" / "infrared").mkdir(parents=True)
    for index in range(4):
        cv2.imwrite(str(root / "photos" / "sub" / f"p{index}.png"), smooth_image(rng, 120, 150))
        visible = smooth_image(rng, 110, 140)
        cv2.imwrite(str(root / "pairs" / "visible" / f"f{index}.png"), visible)
        infrared = cv2.cvtColor(visible, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(root / "pairs" / "infrared" / f"f{index}.png"), infrared)
    cv2.imwrite(str(root / "pairs" / "visible" / "unpaired.png"), smooth_image(rng, 110, 140))
    return root


def tiny_config(data, **changes) -> DistillConfig:
    config = DistillConfig(photo_folders=(str(data / "photos"),), pair_folders=(str(data / "pairs"),),
                           crop_size=CROP, batch_size=2, steps=4, stats_batches=2, device="cpu",
                           checkpoint_every=2, progress=False, prefetch=0, threads=1)
    return replace(config, **changes)


def random_teacher() -> EfficientNetLite0Trunk:
    torch.manual_seed(123)
    return EfficientNetLite0Trunk()


def test_student_cell_centres_map_to_teacher_coordinates():
    # Student cell j is centred on 8j + 37.5, teacher cell i on 8i + 0.5: j sits at teacher index j + 4.625.
    assert torch.allclose(teacher_index(4, "effnet_lite0"), torch.arange(4.0) + 4.625)
    crop = 139
    teacher_side = EfficientNetLite0Trunk()(torch.zeros(1, 3, crop, crop)).shape[-1]
    student_side = make_vggm_stream(ModelConfig())(torch.zeros(1, 3, crop, crop)).shape[-1]
    assert (teacher_side, student_side) == (18, conv3_size(crop)) == (18, 9)
    # A teacher map holding each cell's own input coordinate, resampled, must give the student centres.
    centres = torch.arange(teacher_side, dtype=torch.float32) * 8 + 0.5
    xs, ys = centres[None, :].expand(teacher_side, -1), centres[:, None].expand(-1, teacher_side)
    coords = torch.stack([xs, ys])
    sampled = sample_at_student_cells(coords[None], (student_side, student_side - 2), "effnet_lite0")[0]
    expected = torch.arange(student_side, dtype=torch.float32) * 8 + 37.5
    assert sampled.shape == (2, student_side, student_side - 2)
    assert torch.allclose(sampled[0], expected[None, :student_side - 2].expand(student_side, -1), atol=1e-4)
    assert torch.allclose(sampled[1], expected[:, None].expand(-1, student_side - 2), atol=1e-4)


def test_pairs_get_the_same_crop_and_batches_are_seeded(data):
    config = tiny_config(data, augment=replace(DistillConfig().augment, photometric=0.0))
    source = CropSource("thermal", config)
    assert len(source) == 4                                       # the unpaired visible file is skipped
    batch = source.batch(3)
    assert batch.teacher.shape == batch.student.shape == (2, CROP, CROP, 3)
    grey = np.stack([cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in batch.teacher])
    assert np.abs(grey.astype(int) - batch.student[..., 0].astype(int)).max() <= 2
    assert np.array_equal(source.batch(3).student, batch.student)
    assert not np.array_equal(source.batch(4).student, batch.student)
    photos = CropSource("rgb", config).batch(0)
    assert photos.student is photos.teacher                       # RGB: teacher and student see one image


def test_distillation_lowers_the_loss(data, tmp_path):
    summary = distill(tiny_config(data, steps=16, batch_size=4, checkpoint_every=100), tmp_path,
                      teacher=random_teacher())
    records = read_log(tmp_path / "distill_log.jsonl")
    assert [r["step"] for r in records] == list(range(17))
    start, end = records[0], records[-1]     # the fixed evaluation batches before and after training
    for stream in ("rgb", "thermal"):
        assert start[f"eval_loss_{stream}"] == pytest.approx(1.0, abs=0.05)   # targets standardised on them
        assert end[f"eval_loss_{stream}"] < 0.95 * start[f"eval_loss_{stream}"], (start, end)
        assert np.isfinite([r[f"loss_{stream}"] for r in records[1:]]).all()
    assert summary["steps_this_run"] == 16 and summary["photos"] == 4 and summary["pairs"] == 4
    assert (tmp_path / "distill_curves.png").stat().st_size > 0


def test_resume_gives_the_uninterrupted_result_and_initialises_m5l(data, tmp_path):
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    distill(tiny_config(data, steps=6), whole, teacher=random_teacher())
    distill(tiny_config(data, steps=3), halves, teacher=random_teacher())
    summary = distill(tiny_config(data, steps=6), halves, resume=True, teacher=random_teacher())
    assert summary["resumed_from_step"] == 3 and summary["steps_this_run"] == 3
    assert [r["step"] for r in read_log(halves / "distill_log.jsonl")] == list(range(7))
    expected = torch.load(whole / "distilled_vggm.pt", weights_only=True)
    resumed = torch.load(halves / "distilled_vggm.pt", weights_only=True)
    assert expected["format"] == DISTILLED_FORMAT and expected["teacher"] == "effnet_lite0"
    assert expected["steps"] == resumed["steps"] == 6
    for stream in ("rgb", "thermal"):
        for key, value in expected[stream].items():
            assert torch.allclose(value, resumed[stream][key], rtol=1e-5, atol=1e-7), (stream, key)

    model = M5LNet(ModelConfig(), num_domains=1)
    initialise(model, f"vggm:{whole / 'distilled_vggm.pt'}", torch.device("cpu"))
    for name, stream in (("rgb", model.rgb_stream), ("thermal", model.thermal_stream)):
        for key, value in stream.state_dict().items():
            assert torch.equal(value, expected[name][key]), (name, key)
    assert not torch.equal(model.rgb_stream.conv1.weight, model.thermal_stream.conv1.weight)


def test_resume_refuses_a_changed_recipe_and_a_fresh_run_refuses_an_old_checkpoint(data, tmp_path):
    distill(tiny_config(data, steps=2), tmp_path, teacher=random_teacher())
    with pytest.raises(ConfigError, match="differs from the checkpoint's in lr"):
        distill(tiny_config(data, steps=4, lr=0.1), tmp_path, resume=True, teacher=random_teacher())
    with pytest.raises(ConfigError, match="pass --resume"):
        distill(tiny_config(data, steps=4), tmp_path, teacher=random_teacher())


def test_foreign_files_are_clear_errors(tmp_path):
    model = M5LNet(ModelConfig(), num_domains=0)
    with pytest.raises(VggmInitError, match="not found"):
        model.load_vgg_m(tmp_path / "missing.pt")
    torch.save({"format": "m5l", "version": 1}, tmp_path / "checkpoint.pt")
    with pytest.raises(VggmInitError, match="format 'm5l'.*checkpoint:PATH"):
        model.load_vgg_m(tmp_path / "checkpoint.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(VggmInitError, match="format 'list'"):
        model.load_vgg_m(tmp_path / "list.pt")
    path = write_distilled_vggm(tmp_path / "good.pt", {"rgb": make_vggm_stream(ModelConfig()),
                                                       "thermal": make_vggm_stream(ModelConfig())},
                                DistillConfig(), steps=0)
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "version": 2}, tmp_path / "future.pt")
    with pytest.raises(VggmInitError, match="version 2"):
        model.load_vgg_m(tmp_path / "future.pt")
    torch.save({**raw, "thermal": {**raw["thermal"], "conv2.weight": torch.zeros(256, 96, 3, 3)}},
               tmp_path / "shapes.pt")
    with pytest.raises(VggmInitError, match="thermal: conv2 weights .* do not match"):
        model.load_vgg_m(tmp_path / "shapes.pt")
    (tmp_path / "text.mat").write_text("not weights at all\n" * 20)
    with pytest.raises(VggmInitError, match="not a readable"):
        model.load_vgg_m(tmp_path / "text.mat")


def test_missing_folders_name_the_key_and_the_cli_exits_2(data, tmp_path, capsys):
    with pytest.raises(DatasetError, match=r"photo_folders\[1\]: folder .*nowhere not found"):
        CropSource("rgb", tiny_config(data, photo_folders=(str(data / "photos"), str(tmp_path / "nowhere"))))
    with pytest.raises(DatasetError, match=r"pair_folders\[0\]: folder .*photos/visible not found"):
        CropSource("thermal", tiny_config(data, pair_folders=(str(data / "photos"),)))
    folders = ["--set", f"photo_folders=[{tmp_path / 'nowhere'}]",
               "--set", f"pair_folders=[{data / 'pairs'}]"]
    assert main([*folders, "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    assert "error: photo_folders[0]: folder" in capsys.readouterr().err
    assert main(["--set", "no_such_key=1"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "run")]) == 2            # no folders named at all
    assert "photo_folders is empty" in capsys.readouterr().err


def test_recipe_loads_and_names_its_data_outside_the_repository():
    config = load_distill_config(str(REPO / "config" / "distill.yaml"), ["steps=10"])
    assert config.steps == 10
    folders = [*config.photo_folders, *config.pair_folders]
    assert not any((REPO / folder).resolve().is_relative_to(REPO) for folder in folders)   # never committed
    assert ("coco128", "images") in {Path(folder).parts[-2:] for folder in config.photo_folders}
    assert "roadscene" in {Path(folder).name for folder in config.pair_folders}


@pytest.mark.skipif(importlib.util.find_spec(PACKAGE) is None, reason=f"{PACKAGE} not installed")
def test_default_teacher_loads_the_packaged_imagenet_weights():
    teacher = build_teacher(DistillConfig())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    state = torch.load(installed_weights_path(), weights_only=True)
    scale = state["_bn0.weight"] / torch.sqrt(state["_bn0.running_var"] + BN_EPS)   # BatchNorm folded
    assert torch.allclose(teacher.stem.weight, state["_conv_stem.weight"] * scale[:, None, None, None])
    features = teacher(torch.zeros(1, 3, CROP, CROP).uniform_(-128, 127))
    assert features.shape == (1, 112, 12, 12) and torch.isfinite(features).all()


@pytest.mark.skipif(importlib.util.find_spec(PACKAGE) is None, reason=f"{PACKAGE} not installed")
def test_cli_runs_with_the_imagenet_teacher(data, tmp_path, capsys):
    sets = [f"photo_folders=[{data / 'photos'}]", f"pair_folders=[{data / 'pairs'}]", f"crop_size={CROP}",
            "batch_size=2", "stats_batches=1", "threads=1", "prefetch=0"]
    args = [arg for value in sets for arg in ("--set", value)] + ["--out", str(tmp_path), "--no-progress"]
    assert main([*args, "--steps", "2", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["steps_this_run"] == 2 and printed["result"].endswith("distilled_vggm.pt")
    assert main([*args, "--steps", "3", "--device", "cpu", "--resume"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps_this_run"] == 1
    model = M5LNet(ModelConfig(), num_domains=1)
    initialise(model, f"vggm:{printed['result']}", torch.device("cpu"))
