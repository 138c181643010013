"""``m5l-track``: run the M5L tracker over a benchmark and write toolkit-readable result files.

Examples::

    m5l-track --dataset gtot --dataset-root data/GTOT --checkpoint runs/m5l/final.pt --out results/M5L
    m5l-track --dataset rgbt234 --dataset-root data/RGBT234 --checkpoint m.pt --out results/M5L --shard 2/4
    m5l-track --dataset gtot --dataset-root synth/ --out results/synth --save-video videos/
    m5l-track --dataset rgbt234 --dataset-root data/RGBT234 --tracker csrt --out results/CSRT
    m5l-track --dataset rgbt234 --dataset-root RGBT234 --every 3 --first-tracked 12 --out results/M5L_10fps

A rerun with the same ``--out`` resumes: sequences with a result file are skipped. Shards
(``--shard i/N``) split the sorted sequence list; their ``--out`` folders merge by copying.
Tracker settings come from ``--config`` (the ``tracker`` section of a YAML file, or the whole
file) and ``--set search.n_candidates=128``-style overrides. ``--tracker csrt|kcf`` runs
OpenCV's classic tracker on the RGB frames instead, through the same runner and result files,
so ``m5l-eval`` compares it with M5L as it is. ``--every N`` tracks only every N-th frame (from
frame ``--first-tracked``), holding the last box in between and stamping frames at
``--camera-fps``: what a tracker that keeps up with camera_fps / N frames per second publishes
live, reproducible on any machine (runner.FrameSchedule); with ``--predict-skipped`` the frames in
between get that box moved by optical flow, as the ROS node's dropped pairs do (propagate.py).
Exit status 2 on bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import cv2
import yaml

from m5l_core.cli_errors import RERUN_TO_CONTINUE, run_cli
from m5l_core.config import ConfigError, apply_overrides, from_dict, to_dict
from m5l_core.datasets import BENCHMARKS, SPLITS, DatasetError, benchmark_sequence_names, load_benchmark
from m5l_core.evaluation import ResultsError
from m5l_core.models import CheckpointError
from m5l_core.preprocess import FrameError
from m5l_core.tracking.api import TrackerError
from m5l_core.tracking.classic import CLASSIC_TRACKERS, OpenCVTracker
from m5l_core.tracking.config import TrackerConfig
from m5l_core.tracking.loading import checkpoint_path, load_tracker
from m5l_core.tracking.runner import FrameSchedule, parse_shard, run_sequences, shard_names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m5l-track", description="Track every sequence of an RGB-T benchmark with the online M5L "
                                      "tracker and write one result file per sequence.")
    parser.add_argument("--dataset", required=True, choices=sorted(BENCHMARKS),
                        help="benchmark layout and protocol")
    parser.add_argument("--dataset-root", required=True, type=Path, help="dataset directory with the images")
    parser.add_argument("--split", choices=SPLITS, default=None, help="LasHeR split (default: test)")
    parser.add_argument("--tracker", choices=("m5l", *CLASSIC_TRACKERS), default="m5l",
                        help="m5l (default) or OpenCV's csrt / kcf on the RGB frames, for comparison")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="m5l-train checkpoint (default: the bundled default model)")
    parser.add_argument("--out", required=True, type=Path, help="results directory (<sequence>.txt files)")
    parser.add_argument("--sequences", nargs="+", default=None, metavar="NAME", help="track only these")
    parser.add_argument("--shard", default=None, metavar="i/N", help="track the i-th of N shards (1-based)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    parser.add_argument("--seed", type=int, default=0, help="tracker seed (default 0)")
    parser.add_argument("--save-video", type=Path, default=None, metavar="DIR",
                        help="write <sequence>.mp4 here")
    parser.add_argument("--config", type=Path, default=None, help="YAML with tracker settings")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a tracker setting, e.g. search.n_candidates=128 (repeatable)")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="track every N-th frame only, holding the last box in between, with image "
                             "stamps: a live tracker at camera-fps/N outputs per second (default 1: all)")
    parser.add_argument("--first-tracked", type=int, default=None, metavar="K",
                        help="with --every: the first frame tracked after the initial one (default N; "
                             "larger = a slower start)")
    parser.add_argument("--predict-skipped", action="store_true",
                        help="with --every: give skipped frames the last result moved by optical flow "
                             "instead of holding it, as the node's predict_dropped does")
    parser.add_argument("--camera-fps", type=float, default=30.0,
                        help="frame rate the stamps of --every assume (default 30)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def tracker_config(path: Path | None, overrides: list[str]) -> TrackerConfig:
    """Tracker settings from the ``tracker`` section of ``path`` (or the whole file) and overrides."""
    config = TrackerConfig() if path is None else from_dict(TrackerConfig, tracker_file(path), str(path))
    return apply_overrides(config, overrides)


def tracker_file(path: Path) -> dict:
    """The tracker settings a YAML file gives: its ``tracker`` section, or the whole file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read tracker config: {err}") from None
    return data["tracker"] if isinstance(data, dict) and "tracker" in data else data


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def m5l_factory(args: argparse.Namespace, config: TrackerConfig):
    """The M5L tracker's maker and what its result folder records about it."""
    checkpoint = checkpoint_path(args.checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: checkpoint file not found")
    info = {"tracker": "m5l", "checkpoint": str(checkpoint), "checkpoint_sha256": file_digest(checkpoint),
            "device": args.device, "seed": args.seed, "tracker_config": to_dict(config)}
    return (lambda: load_tracker(checkpoint, config, args.device, args.seed)), info


def classic_factory(args: argparse.Namespace):
    """OpenCV's tracker: no checkpoint, device or seed (it is deterministic on the CPU)."""
    if args.checkpoint is not None:
        raise ConfigError(f"--checkpoint applies to --tracker m5l, not {args.tracker}")
    OpenCVTracker(args.tracker)   # fails now, with the install hint, if OpenCV lacks it
    info = {"tracker": args.tracker, "opencv": cv2.__version__, "modality": "rgb"}
    return (lambda: OpenCVTracker(args.tracker)), info


def run(args: argparse.Namespace) -> int:
    config = tracker_config(args.config, args.overrides)
    schedule = FrameSchedule(args.every, args.first_tracked, args.camera_fps, args.predict_skipped)
    shard = parse_shard(args.shard) if args.shard else None
    if not args.dataset_root.is_dir():
        raise DatasetError(f"{args.dataset_root}: dataset root not found")
    if args.tracker == "m5l":
        make_tracker, info = m5l_factory(args, config)
    else:
        make_tracker, info = classic_factory(args)
    if schedule.skips:
        info = {**info, "schedule": {"every": schedule.every, "first": schedule.first or schedule.every,
                                     "camera_fps": schedule.camera_fps, "predict_skipped": schedule.predict}}
    names = args.sequences or benchmark_sequence_names(args.dataset, args.dataset_root, args.split)
    selected = shard_names(names, shard)
    sequences = load_benchmark(args.dataset, args.dataset_root, args.split, names=selected,
                               require_images=True, progress=not args.quiet)
    runs = run_sequences(make_tracker, sequences, args.out, video_dir=args.save_video,
                         preprocess=config.preprocess, run_info=info, progress=not args.quiet,
                         schedule=schedule)
    if runs:
        frames = sum(r.frames for r in runs)
        seconds = sum(r.init_seconds + r.track_seconds for r in runs)
        print(f"tracked {len(runs)} sequences, {frames} frames, "
              f"{frames / max(seconds, 1e-9):.1f} fps overall; results in {args.out}")
    else:
        print(f"nothing to do: all {len(sequences)} sequences already have results in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args), (ConfigError, DatasetError, CheckpointError, ResultsError, FrameError,
                                       TrackerError, OSError), RERUN_TO_CONTINUE)


if __name__ == "__main__":
    sys.exit(main())
