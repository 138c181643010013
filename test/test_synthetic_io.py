"""Synthetic datasets on disk: official layouts, byte-identical reruns, resuming, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from m5l_core.datasets.sequence import DatasetError
from m5l_core.datasets.synthetic import (
    GTOT_ATTRIBUTES,
    RGBT234_ATTRIBUTES,
    SyntheticConfig,
    generate_sequence,
    sequence_seed,
    write_dataset,
)
from m5l_core.datasets.synthetic_cli import main

TINY = SyntheticConfig(width=96, height=72, n_frames=6)
CHALLENGES_USED = ("occlusion", "scale_change", "misalignment")  # canonical order


def _write(out: Path, layout: str, config: SyntheticConfig = TINY, **kwargs) -> list[Path]:
    return write_dataset(out, layout, kwargs.pop("n_sequences", 2), kwargs.pop("n_frames", 6),
                         kwargs.pop("seed", 5), challenges=kwargs.pop("challenges", CHALLENGES_USED),
                         config=config, progress=False, **kwargs)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _expected(index: int, layout: str = "gtot", config: SyntheticConfig = TINY):
    return generate_sequence(config, sequence_seed(5, index), CHALLENGES_USED, layout=layout)


def test_gtot_layout_matches_the_generated_sequence(tmp_path):
    paths = _write(tmp_path, "gtot")
    assert [p.name for p in paths] == ["synth_0000", "synth_0001"]
    assert (tmp_path / "list.txt").read_text().split() == ["synth_0000", "synth_0001"]
    seq_dir, expected = paths[1], _expected(1)
    assert sorted(p.name for p in (seq_dir / "v").iterdir()) == [f"{i:05d}.png" for i in range(1, 7)]
    assert sorted(p.name for p in (seq_dir / "i").iterdir()) == [f"{i:05d}.png" for i in range(1, 7)]
    corners_v = np.loadtxt(seq_dir / "groundTruth_v.txt")
    corners_i = np.loadtxt(seq_dir / "groundTruth_i.txt")
    assert np.array_equal(corners_v[:, :2], expected.gt_rgb[:, :2])
    assert np.array_equal(corners_v[:, 2:] - corners_v[:, :2], expected.gt_rgb[:, 2:])  # x2 = x + w
    assert np.array_equal(corners_i[:, 2:] - corners_i[:, :2], expected.gt_thermal[:, 2:])
    assert np.array_equal(corners_i[:, :2], expected.gt_thermal[:, :2])
    init_lines = (seq_dir / "init.txt").read_text().splitlines()
    assert init_lines[0].split("\t") == [str(int(v)) for v in expected.gt_rgb[0]]
    rgb = cv2.cvtColor(cv2.imread(str(seq_dir / "v" / "00003.png")), cv2.COLOR_BGR2RGB)
    thermal = cv2.imread(str(seq_dir / "i" / "00003.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(rgb, expected.rgb[2]) and np.array_equal(thermal, expected.thermal[2])


def test_gtot_attribute_table_and_metadata(tmp_path):
    _write(tmp_path, "gtot")
    lines = (tmp_path / "attributes.txt").read_text().splitlines()
    assert lines[0].split() == ["sequence", *GTOT_ATTRIBUTES]
    for line, index in zip(lines[1:], range(2), strict=True):
        name, *flags = line.split()
        expected = _expected(index).gtot_attributes
        assert name == f"synth_{index:04d}"
        assert flags == [str(int(expected[code])) for code in GTOT_ATTRIBUTES]
    meta = json.loads((tmp_path / "synth_0000" / "synthetic.json").read_text())
    assert meta["seed"] == sequence_seed(5, 0) and meta["layout"] == "gtot"
    assert meta["challenges"] == list(CHALLENGES_USED) and meta["config"]["width"] == 96
    assert meta["misalignment_px"] == list(_expected(0).misalignment)


def test_rgbt234_layout_with_per_frame_tags_and_attr_txt(tmp_path):
    paths = _write(tmp_path, "rgbt234")
    seq_dir, expected = paths[0], _expected(0, "rgbt234")
    assert sorted(p.name for p in (seq_dir / "visible").iterdir()) == [f"{i:05d}v.jpg" for i in range(1, 7)]
    assert sorted(p.name for p in (seq_dir / "infrared").iterdir()) == [f"{i:05d}i.jpg" for i in range(1, 7)]
    assert np.array_equal(np.loadtxt(seq_dir / "visible.txt", delimiter=","), expected.gt_rgb)
    assert np.array_equal(np.loadtxt(seq_dir / "infrared.txt", delimiter=","), expected.gt_thermal)
    assert np.array_equal(np.loadtxt(seq_dir / "init.txt", delimiter=","), expected.gt_rgb)
    for code in RGBT234_ATTRIBUTES:
        flags = np.loadtxt(seq_dir / f"{code}.tag", dtype=int)
        assert np.array_equal(flags.astype(bool), expected.attributes[code])
    attr_dir = tmp_path / "attr_txt"
    assert (attr_dir / "SequencesName.txt").read_text().split() == ["synth_0000", "synth_0001"]
    files = {p.stem for p in attr_dir.glob("*.txt")} - {"SequencesName"}
    assert files == {"SC" if code == "SV" else code for code in RGBT234_ATTRIBUTES}  # the toolkit's names
    occluded = np.loadtxt(attr_dir / "PO.txt", dtype=int)
    assert occluded.tolist() == [int(_expected(i, "rgbt234").attributes["PO"].any()) for i in range(2)]
    jpeg = cv2.cvtColor(cv2.imread(str(seq_dir / "visible" / "00001v.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(jpeg.astype(int) - expected.rgb[0]).mean() < 8  # lossy but the same image, RGB order


@pytest.mark.parametrize(("layout", "name"), [("gtot", "i/00002.png"), ("rgbt234", "infrared/00002i.png")])
def test_sixteen_bit_thermal_is_written_as_png_uint16(tmp_path, layout, name):
    config = dataclasses.replace(TINY, thermal_bits=16)
    seq_dir = _write(tmp_path, layout, config=config, n_sequences=1)[0]
    thermal = cv2.imread(str(seq_dir / name), cv2.IMREAD_UNCHANGED)
    assert thermal.dtype == np.uint16 and thermal.ndim == 2
    assert np.array_equal(thermal, _expected(0, layout, dataclasses.replace(config, n_frames=6)).thermal[1])


def test_same_seed_writes_byte_identical_files(tmp_path):
    _write(tmp_path / "a", "rgbt234")
    _write(tmp_path / "b", "rgbt234", workers=1)
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first.keys() == second.keys() and first == second
    _write(tmp_path / "c", "rgbt234", seed=6)
    assert _tree(tmp_path / "c") != first


def test_rerun_skips_complete_sequences_and_redoes_interrupted_ones(tmp_path):
    _write(tmp_path, "gtot")
    before = _tree(tmp_path)
    stamp = (tmp_path / "synth_0000" / "v" / "00001.png").stat().st_mtime_ns
    # An interrupted run leaves a hidden partial directory and no synth_0001.
    (tmp_path / "synth_0001").rename(tmp_path / ".synth_0001.partial")
    (tmp_path / ".synth_0001.partial" / "synthetic.json").unlink()
    _write(tmp_path, "gtot")
    assert (tmp_path / "synth_0000" / "v" / "00001.png").stat().st_mtime_ns == stamp
    assert not (tmp_path / ".synth_0001.partial").exists()
    assert _tree(tmp_path) == before


def test_rerun_with_other_settings_is_an_error_naming_the_file(tmp_path):
    _write(tmp_path, "gtot")
    with pytest.raises(DatasetError, match=r"synth_0000/synthetic\.json.*different seed"):
        _write(tmp_path, "gtot", seed=9)


def test_failure_while_writing_leaves_no_sequence_that_looks_complete(tmp_path, monkeypatch):
    import m5l_core.datasets.synthetic_writer as writer

    calls = {"n": 0}
    real = writer.encode_image

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "encode_image", failing)
    with pytest.raises(OSError):
        _write(tmp_path, "gtot", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_to_sequence_points_at_the_written_frames(tmp_path):
    seq = generate_sequence(TINY, 1, ("misalignment",), out_dir=tmp_path, name="one", layout="rgbt234")
    converted = seq.to_sequence()
    assert converted.root == tmp_path / "one" and len(converted) == 6
    assert all(p.is_file() for p in converted.rgb_frames + converted.thermal_frames)
    assert converted.thermal_frames[0].name == "00001i.jpg"
    assert np.array_equal(converted.gt_thermal, seq.gt_thermal)
    with pytest.raises(DatasetError, match="already exists"):
        generate_sequence(TINY, 1, (), out_dir=tmp_path, name="one")


def test_cli_writes_a_tiny_dataset(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["--out", str(out), "--layout", "rgbt234", "--sequences", "2", "--frames", "5", "--seed", "3",
                 "--width", "160", "--height", "120", "--challenges", "occlusion", "thermal_crossover",
                 "--no-progress"])
    assert code == 0
    assert (out / "list.txt").read_text().split() == ["synth_0000", "synth_0001"]
    assert len(list((out / "synth_0001" / "visible").glob("*v.jpg"))) == 5
    image = cv2.imread(str(out / "synth_0000" / "infrared" / "00005i.jpg"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (120, 160)
    meta = json.loads((out / "synth_0000" / "synthetic.json").read_text())
    assert meta["challenges"] == ["occlusion", "thermal_crossover"]
    assert "wrote 2 rgbt234 sequences" in capsys.readouterr().out
    assert main(["--out", str(out), "--layout", "rgbt234", "--sequences", "2", "--frames", "5", "--seed", "3",
                 "--width", "160", "--height", "120", "--challenges", "occlusion", "thermal_crossover",
                 "--no-progress"]) == 0  # rerun: nothing to do


def test_cli_challenge_keywords_and_config_file(tmp_path):
    config_file = tmp_path / "synth.yaml"
    config_file.write_text("synthetic:\n  width: 80\n  height: 64\n  thermal_bits: 16\n")
    assert main(["--out", str(tmp_path / "o"), "--sequences", "1", "--frames", "2", "--challenges", "none",
                 "--config", str(config_file), "--no-progress"]) == 0
    meta = json.loads((tmp_path / "o" / "synth_0000" / "synthetic.json").read_text())
    assert meta["challenges"] == [] and meta["config"]["width"] == 80
    thermal = cv2.imread(str(tmp_path / "o" / "synth_0000" / "i" / "00001.png"), cv2.IMREAD_UNCHANGED)
    assert thermal.dtype == np.uint16 and thermal.shape == (64, 80)


@pytest.mark.parametrize(("args", "message"), [
    (["--frames", "0"], "positive integer"),
    (["--frames", "1"], "at least 2 frames"),
    (["--sequences", "x"], "positive integer"),
    (["--layout", "vot"], "invalid choice"),
    (["--challenges", "rain"], "invalid choice"),
    (["--seed", "-1"], "non-negative"),
    (["--thermal-bits", "12"], "invalid choice"),
])
def test_cli_rejects_bad_arguments_with_exit_2(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "x"), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "no_such_knob=1"], "no_such_knob: unknown key"),
    (["--set", "speed_range=[3, 1]"], "speed_range"),
    (["--challenges", "all", "occlusion"], "cannot be combined"),
    (["--config", "missing.yaml"], "missing.yaml: cannot read"),
])
def test_cli_reports_bad_settings_as_errors_with_exit_2(tmp_path, capsys, args, message):
    code = main(["--out", str(tmp_path / "x"), "--frames", "2", "--sequences", "1", "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert "Traceback" not in err
