"""``m5l-realtime-bench``: lockstep and realtime replays of a set of 30 Hz 640x480 bags, in one table.

    m5l-realtime-bench --out rt_bench [--synthetic 4] [--real-dev ../shared/data/real_dev]
                       [--fps 30] [--frames 150] [--realtime-learning thread] [--set KEY=VALUE ...]

Bags: ``--synthetic N`` held-out synthetic sequences (seed 7001, one challenge each, as
``m5l-demo --challenges each``) and every sequence of ``--real-dev`` (default
``../shared/data/real_dev`` where that folder exists), each resized to ``--size`` and written as a
``--fps`` bag. Every bag is replayed through the node in lockstep (what the tracker can do, with
the deterministic learning budget) and in realtime at 1x (what a robot sees, learning on a learner
thread as the launch file's config/track.yaml has it; ``--realtime-learning``). Per bag:
lockstep PR, realtime PR (with the node's predicted boxes for dropped pairs, and from its tracked
boxes alone), tracked outputs/s, their latency p50/p95 and the time from the first frame (with the
initial box) to the first tracked box; printed as a Markdown table and written to
``--out/summary.json``. A benchmark that reports (numbers depend on the CPU and its other
load); it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from m5l_core.atomic import atomic_write_text
from m5l_core.datasets import load_sequence
from m5l_core.datasets.frames import read_frame
from m5l_core.datasets.synthetic import CHALLENGES, SyntheticConfig, generate_sequence, sequence_seed
from m5l_core.evaluation.results_io import write_result_file
from m5l_tracker_ros.bag import replay_eval
from m5l_tracker_ros.bag.cli_common import run_main
from m5l_tracker_ros.bag.make_bag import BagOptions, write_sequence_bag
from m5l_tracker_ros.bag.report import RunReport

HELD_OUT_SEED = 7001   # the README's held-out synthetic suite
DEFAULT_REAL_DEV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real_dev"


def synthetic_sequences(root: Path, count: int, frames: int, size: tuple[int, int]) -> list[Path]:
    config = SyntheticConfig(width=size[0], height=size[1], n_frames=frames)
    paths = []
    for index in range(count):
        name = f"synth_{index:02d}"
        if not (root / name).is_dir():
            challenge = CHALLENGES[index % len(CHALLENGES)]
            generate_sequence(config, sequence_seed(HELD_OUT_SEED, index), (challenge,), out_dir=root,
                              name=name, layout="rgbt234", keep_frames=False)
        paths.append(root / name)
    return paths


def resized_sequence(source: Path, out: Path, size: tuple[int, int]) -> Path:
    """``source`` with every frame resized to ``size`` (boxes scaled alike), in the RGBT234 layout."""
    sequence = load_sequence(source)
    if out.is_dir():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in ("visible", "infrared"):
        (tmp / folder).mkdir(parents=True)
    first = read_frame(sequence.rgb_frames[0], thermal=False)
    scale = np.array([size[0] / first.shape[1], size[1] / first.shape[0]] * 2)
    for index, (rgb_path, thermal_path) in enumerate(zip(sequence.rgb_frames, sequence.thermal_frames,
                                                         strict=True)):
        rgb = cv2.resize(read_frame(rgb_path, thermal=False), size, interpolation=cv2.INTER_AREA)
        thermal = cv2.resize(read_frame(thermal_path, thermal=True), size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(tmp / "visible" / f"{index + 1:05d}v.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tmp / "infrared" / f"{index + 1:05d}i.jpg"), thermal)
    write_result_file(tmp / "visible.txt", sequence.gt_rgb * scale)
    write_result_file(tmp / "infrared.txt", sequence.gt_thermal * scale)
    write_result_file(tmp / "init.txt", (sequence.init_box * scale)[None])
    tmp.rename(out)
    return out


def make_bags(args) -> list[Path]:
    work = args.out / "sequences"
    sources = synthetic_sequences(work / "synthetic", args.synthetic, args.frames, args.size)
    real = args.real_dev
    if real is not None and real.is_dir():
        names = [line.strip() for line in (real / "list.txt").read_text().splitlines() if line.strip()]
        sources += [resized_sequence(real / name, work / "real" / name, args.size) for name in names]
    bags = []
    for source in sources:
        bag = args.out / "bags" / source.name
        if not bag.exists():
            write_sequence_bag(load_sequence(source), bag, BagOptions(fps=args.fps), overwrite=True)
        bags.append(bag)
    return bags


def replay(args, bag: Path, mode: str) -> RunReport:
    argv = ["--bag", str(bag), "--mode", mode, "--out", str(args.out / "replays" / f"{bag.name}.{mode}"),
            "--device", "cpu", "--quiet"]
    settings = list(args.overrides)
    if mode == "realtime":
        settings.append(f"budget.mode={args.realtime_learning}")
    for setting in settings:
        argv += ["--set", setting]
    if args.params_file is not None:
        argv += ["--params-file", str(args.params_file)]
    report, _, _ = replay_eval.replay_eval(replay_eval.build_parser().parse_args(argv))
    print("\n".join(report.lines()), flush=True)
    return report


def table(rows: list[dict]) -> str:
    lines = ["| bag | lockstep PR | realtime PR | ratio | realtime PR, tracked boxes alone | outputs/s "
             "| latency p50 / p95 ms | first box ms |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lock, real = row["lockstep"], row["realtime"]
        ratio = real["pr"] / lock["pr"] if lock["pr"] > 0 else float("nan")
        latency = real["latency"] or {"p50_ms": float("nan"), "p95_ms": float("nan")}
        first = real["first_output_ms"] if real["first_output_ms"] is not None else float("nan")
        alone = real.get("pr_tracked")
        lines.append(f"| {row['bag']} | {lock['pr']:.3f} | {real['pr']:.3f} | {ratio:.2f} | "
                     f"{real['pr'] if alone is None else alone:.3f} | "
                     f"{real['outputs_per_s'] or 0:.1f} | {latency['p50_ms']:.0f} / "
                     f"{latency['p95_ms']:.0f} | {first:.0f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m5l-realtime-bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--out", type=Path, required=True, help="work and result folder (bags are reused)")
    parser.add_argument("--synthetic", type=int, default=4, help="held-out synthetic sequences (default 4)")
    parser.add_argument("--frames", type=int, default=150, help="frames per synthetic sequence")
    real_dev = DEFAULT_REAL_DEV if DEFAULT_REAL_DEV.is_dir() else None
    parser.add_argument("--real-dev", type=Path, default=real_dev,
                        help="real sequences (RGBT234 layout + list.txt); default ../shared/data/real_dev")
    parser.add_argument("--fps", type=float, default=30.0, help="bag frame rate (default 30)")
    parser.add_argument("--size", type=int, nargs=2, default=(640, 480), metavar=("W", "H"))
    parser.add_argument("--modes", nargs="+", choices=replay_eval.MODES, default=list(replay_eval.MODES))
    parser.add_argument("--params-file", type=Path, help="node parameter YAML (e.g. config/track.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="TrackerConfig override for the node (repeatable)")
    parser.add_argument("--realtime-learning", choices=("thread", "steps", "time"), default="thread",
                        help="budget.mode of the realtime replays (default thread, as config/track.yaml "
                             "sets for a live robot); lockstep replays keep the deterministic steps "
                             "unless --set says otherwise")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.size = tuple(args.size)

    def body() -> int:
        rows = []
        for bag in make_bags(args):
            row = {"bag": bag.name}
            for mode in args.modes:
                row[mode] = asdict(replay(args, bag, mode))
            rows.append(row)
        atomic_write_text(args.out / "summary.json", json.dumps(rows, indent=2) + "\n")
        if set(replay_eval.MODES) <= set(args.modes):
            print("\n" + table(rows))
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
