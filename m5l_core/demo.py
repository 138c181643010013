"""``m5l-demo``: the whole offline pipeline in a few minutes, with no network and no dataset.

1. generate a few synthetic RGB-T sequences with FRESH seeds (the default model was trained on
   ``synthetic_seed: 0``; the demo uses 2024), in the RGBT234 layout;
2. track them with the bundled default model (``m5l_core/assets/default_model.pt``), writing
   result files and an MP4 per sequence (RGB | thermal, ground truth, result, score, weights);
3. score them with the RGBT234 protocol (PR at 20 px, SR) and print PR/SR and fps per sequence
   and overall; write the precision/success plots, a Markdown table and a JSON document.

``--challenges each`` gives sequence ``i`` only the ``i``-th challenge of the generator (every
challenge covered by 12 sequences); ``mix`` (default) draws each challenge with probability 0.4
per sequence; ``none`` gives clean sequences.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m5l_core.atomic import atomic_write_text
from m5l_core.cli_errors import run_cli
from m5l_core.config import ConfigError, apply_overrides
from m5l_core.datasets import DatasetError, load_benchmark
from m5l_core.datasets.synthetic import (
    CHALLENGES,
    SyntheticConfig,
    draw_challenges,
    generate_sequence,
    sequence_seed,
)
from m5l_core.evaluation import (
    ResultsError,
    evaluate_tracker,
    json_document,
    markdown_table,
    plot_curves,
    read_results_dir,
)
from m5l_core.geometry import overlap_ratio
from m5l_core.models import CheckpointError
from m5l_core.tracking.config import TrackerConfig
from m5l_core.tracking.loading import checkpoint_path, load_tracker
from m5l_core.tracking.runner import SequenceRun, run_sequences

DEMO_SEED = 2024      # not the default model's training seed (0)
BENCHMARK = "rgbt234"  # the protocol the README's numbers use: PR at 20 px, SR averaged per sequence


def make_sequences(root: Path, count: int, frames: int, seed: int, mode: str,
                   size: tuple[int, int]) -> list[str]:
    """Write the sequences (kept between runs: same seed, same files) and return their names."""
    config = SyntheticConfig(width=size[0], height=size[1], n_frames=frames)
    names = [f"demo_{index:02d}" for index in range(count)]
    for index, name in enumerate(tqdm(names, desc="generating", unit="seq", leave=False)):
        if (root / name).is_dir():
            continue
        seed_i = sequence_seed(seed, index)
        if mode == "each":
            challenges = (CHALLENGES[index % len(CHALLENGES)],)
        elif mode == "none":
            challenges = ()
        else:
            challenges = draw_challenges(config, seed_i)
        generate_sequence(config, seed_i, challenges, out_dir=root, name=name, layout=BENCHMARK,
                          keep_frames=False)
    atomic_write_text(root / "list.txt", "".join(f"{n}\n" for n in names))
    return names


def challenges_of(root: Path, name: str) -> str:
    try:
        meta = json.loads((root / name / "synthetic.json").read_text())
    except (OSError, ValueError):
        return "?"
    return ",".join(meta.get("challenges", [])) or "none"


def print_table(score, runs: dict[str, SequenceRun], root: Path) -> None:
    print(f"\n{'sequence':<10} {'PR':>6} {'SR':>6} {'fps':>6}  challenges")
    for name, (pr, sr) in score.per_sequence.items():
        fps = f"{runs[name].fps:6.1f}" if name in runs else "     -"
        print(f"{name:<10} {pr:6.3f} {sr:6.3f} {fps}  {challenges_of(root, name)}")
    frames = sum(r.frames for r in runs.values())
    seconds = sum(r.init_seconds + r.track_seconds for r in runs.values())
    fps = frames / seconds if seconds > 0 else 0.0
    print(f"{'overall':<10} {score.pr:6.3f} {score.sr:6.3f} {fps:6.1f}  "
          f"({BENCHMARK.upper()} protocol: PR at 20 px, SR = mean success over 21 thresholds)")


def print_failure_flags(sequences, results: dict[str, np.ndarray], runs: dict[str, SequenceRun]) -> None:
    """How often LOST was reported while the box was on the target (IoU > 0.5 with either GT)."""
    frames = false_lost = lost = 0
    for sequence in sequences:
        if sequence.name not in runs or sequence.name not in results:
            continue
        boxes = results[sequence.name]
        flagged = np.zeros(len(boxes), dtype=bool)
        flagged[list(runs[sequence.name].lost)] = True
        overlap = np.maximum(overlap_ratio(boxes, sequence.gt_rgb[:len(boxes)]),
                             overlap_ratio(boxes, sequence.gt_thermal[:len(boxes)]))
        frames += len(boxes) - 1
        lost += int(flagged.sum())
        false_lost += int((flagged & (overlap > 0.5)).sum())
    if frames:
        print(f"LOST on {lost} of {frames} tracked frames; LOST while IoU > 0.5: {false_lost} "
              f"({100 * false_lost / frames:.1f} % of frames)")


def run_demo(args: argparse.Namespace) -> int:
    checkpoint = checkpoint_path(args.checkpoint or None)
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: checkpoint file not found")
    out = Path(args.out)
    start = time.perf_counter()
    print(f"m5l-demo: {args.sequences} synthetic sequences (seed {args.seed}, {args.width}x{args.height}, "
          f"{args.frames} frames, challenges: {args.challenges}) -> {out}")
    data = out / "sequences"
    size = (args.width, args.height)
    names = make_sequences(data, args.sequences, args.frames, args.seed, args.challenges, size)
    sequences = load_benchmark(BENCHMARK, data, names=names, require_images=True)
    results_dir = out / "results"
    shutil.rmtree(results_dir, ignore_errors=True)   # a demo always tracks afresh (fps are printed)
    video_dir = None if args.no_video else out / "videos"
    config = apply_overrides(TrackerConfig(), args.overrides)

    def make_tracker():
        return load_tracker(checkpoint, config, device=args.device, seed=0)

    runs = run_sequences(make_tracker, sequences, results_dir, video_dir=video_dir,
                         preprocess=config.preprocess, run_info={"checkpoint": str(checkpoint)})
    results = read_results_dir(results_dir, names)
    score = evaluate_tracker(BENCHMARK, sequences, results, tracker="M5L (default model)")
    print_table(score, {r.name: r for r in runs}, data)
    print_failure_flags(sequences, results, {r.name: r for r in runs})
    plots = plot_curves([score], out / "plots")
    atomic_write_text(out / "scores.md", markdown_table([score]))
    atomic_write_text(out / "scores.json", json.dumps(json_document([score]), indent=2) + "\n")
    print(f"\nresults: {results_dir}  plots: {', '.join(str(p) for p in plots)}"
          + (f"  videos: {video_dir}" if video_dir else ""))
    print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m5l-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the bundled default model")
    parser.add_argument("--sequences", type=int, default=4, help="synthetic sequences (default 4)")
    parser.add_argument("--frames", type=int, default=120, help="frames per sequence (default 120)")
    parser.add_argument("--width", type=int, default=320, help="frame width (default 320)")
    parser.add_argument("--height", type=int, default=240, help="frame height (default 240)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"sequence seed (default {DEMO_SEED})")
    parser.add_argument("--challenges", choices=("mix", "each", "none"), default="mix",
                        help="challenge per sequence: random mix (default), one each, or none")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--no-video", action="store_true", help="skip the MP4s")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="tracker setting override, e.g. runtime.precision=float32 (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.sequences < 1 or args.frames < 2:
            raise ConfigError("--sequences must be at least 1 and --frames at least 2")
        return run_demo(args)

    return run_cli(body, (ConfigError, DatasetError, CheckpointError, ResultsError, OSError))


if __name__ == "__main__":
    sys.exit(main())
