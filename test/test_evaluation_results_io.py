"""Result files: separators, 4 vs 8 columns, prefix detection, bad input, atomic writing."""

from __future__ import annotations

import numpy as np
import pytest

from m5l_core.evaluation import (
    ResultsError,
    detect_prefix,
    read_result_file,
    read_results_dir,
    write_result_file,
)


@pytest.mark.parametrize("text", [
    "1,2,3,4\n5,6,7,8\n",
    "1 2 3 4\n5 6 7 8\n",
    "1\t2\t3\t4\r\n5\t6\t7\t8\r\n",
    "1, 2, 3, 4\n5,\t6 ,7,8\n\n\n",
])
def test_separators(tmp_path, text):
    path = tmp_path / "r.txt"
    path.write_text(text)
    np.testing.assert_array_equal(read_result_file(path), [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_eight_column_polygons_become_rounded_boxes(tmp_path):
    path = tmp_path / "r.txt"
    # corners clockwise from the top-left, as the GTOT/RGBT234 result sets store them
    path.write_text("10.4 20.6 30.5 20.6 30.5 60.2 10.4 60.2\n")
    np.testing.assert_array_equal(read_result_file(path), [[10, 21, 20, 40]])  # round(20.1), round(39.6)


@pytest.mark.parametrize(("text", "message"), [
    ("", r"r.txt: file is empty"),
    ("1,2,3,4\n1,2,3\n", r"r.txt, line 2: 3 values, expected 4 or 8"),
    ("1,2,3,4\n1,2,3,4,5,6,7,8\n", r"r.txt, line 2: 8 values, but earlier lines have 4"),
    ("1,2,3,4\n1,2,NaN,4\n", r"r.txt, line 2: NaN or infinite"),
    ("1,2,3,4\n1,2,3,inf\n", r"r.txt, line 2: NaN or infinite"),
    ("1,2,3,4\n\n1,2,3,4\n", r"r.txt, line 2: empty line inside the file"),
    ("1,2,3,4\n1,2,three,4\n", r"r.txt, line 2: 'three' is not a number"),
])
def test_bad_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "r.txt"
    path.write_text(text)
    with pytest.raises(ResultsError, match=message):
        read_result_file(path)


def test_nonfinite_values_pass_through_when_allowed(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("1,2,3,4\nNaN,NaN,NaN,NaN\n")
    assert np.isnan(read_result_file(path, allow_nonfinite=True)[1]).all()


@pytest.mark.parametrize("prefix", ["", "MANet_", "JMMAC_234_final_"])
def test_prefix_is_detected(tmp_path, prefix):
    names = ["BlackCar", "car", "bluecar"]
    for name in names:
        (tmp_path / f"{prefix}{name}.txt").write_text("1,2,3,4\n")
    assert detect_prefix(tmp_path, names) == prefix
    assert detect_prefix(tmp_path, ["car"]) == prefix  # one name: the prefix shared by all files wins
    assert set(read_results_dir(tmp_path, names)) == set(names)


def test_missing_sequence_file_is_listed(tmp_path):
    (tmp_path / "T_a.txt").write_text("1,2,3,4\n")
    (tmp_path / "T_b.txt").write_text("1,2,3,4\n")
    with pytest.raises(ResultsError, match=r"no result file for 1 of 3 sequences \(missing: T_c.txt\)"):
        read_results_dir(tmp_path, ["a", "b", "c"])
    with pytest.raises(ResultsError, match="not found"):
        read_results_dir(tmp_path / "nope", ["a"])


def test_write_result_file_round_trips_and_refuses_nan(tmp_path):
    boxes = np.array([[1.0, 2.5, 30.25, 4.0], [0.0, -1.0, 2.0, 3.0]])
    path = write_result_file(tmp_path / "sub" / "seq.txt", boxes)
    assert path.read_text() == "1,2.5,30.25,4\n0,-1,2,3\n"
    np.testing.assert_array_equal(read_result_file(path), boxes)
    with pytest.raises(ResultsError, match="frame 2 has a NaN"):
        write_result_file(tmp_path / "bad.txt", [[1, 2, 3, 4], [np.nan, 1, 1, 1]])
    assert not (tmp_path / "bad.txt").exists()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["seq.txt"]  # no temporary files left


def test_leftovers_of_an_interrupted_write_are_removed_for_that_file_only(tmp_path):
    from m5l_core.atomic import remove_leftovers

    mine = [tmp_path / ".seq[1].txt.ab12cd.tmp", tmp_path / ".seq[1].txt.x9.tmp"]
    others = [tmp_path / ".seq1.txt.ab12cd.tmp", tmp_path / ".seq[1].json.ab.tmp", tmp_path / "seq[1].txt"]
    for path in mine + others:
        path.write_text("1,2")
    assert sorted(remove_leftovers(tmp_path / "seq[1].txt")) == sorted(mine)
    assert not any(p.exists() for p in mine) and all(p.exists() for p in others)
    assert remove_leftovers(tmp_path / "missing" / "seq.txt") == []
