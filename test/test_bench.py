"""``m5l-bench``: one run times M5L and the RT-MDNet+RGBT baseline and reports stages (no timing asserts)."""

from __future__ import annotations

import json

from test_tracking import FAST_SETTINGS, write_tiny_checkpoint

from m5l_core.tracking.bench import STAGES, main


def fast_overrides() -> list[str]:
    args = []
    for section, values in FAST_SETTINGS.items():
        for key, value in values.items():
            args += ["--set", f"{section}.{key}={value}"]
    return args


def test_json_report_has_both_trackers_and_every_stage(tmp_path, capsys):
    checkpoint = tmp_path / "tiny.pt"
    write_tiny_checkpoint(checkpoint)
    code = main(["--device", "cpu", "--json", "--frames", "3", "--warmup", "1",
                 "--checkpoint", str(checkpoint), *fast_overrides()])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["m5l_fps"] > 0 and report["baseline_fps"] > 0
    assert report["ratio"] > 0
    for tracker in ("m5l", "baseline"):
        assert set(report["stages"][tracker]) == set(STAGES)
        assert report[tracker]["frames"] == 3           # both trackers ran the whole sequence
    assert report["frames_timed"] == 2
    assert report["weights"] == str(checkpoint)
    assert "fps" in report["note"]


def test_bad_arguments_exit_2(capsys):
    assert main(["--frames", "2", "--warmup", "5"]) == 2
    assert capsys.readouterr().err.startswith("error:")
    assert main(["--device", "cpu", "--set", "search.bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_background_load_runs_the_bench_twice_and_reports_the_share_left(tmp_path, capsys):
    checkpoint = tmp_path / "tiny.pt"
    write_tiny_checkpoint(checkpoint)
    code = main(["--device", "cpu", "--json", "--frames", "2", "--warmup", "1", "--background-threads", "1",
                 "--checkpoint", str(checkpoint), *fast_overrides()])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["background_threads"] == 1 and report["loaded"]["m5l_fps"] > 0
    assert report["loaded_share"] == round(report["loaded"]["m5l_fps"] / report["m5l_fps"], 3)
