"""``m5l-bench``: speed of the full online tracker (updates included), M5L against RT-MDNet+RGBT.

Both trackers run the same settings on the same synthetic 640x480 sequence, frame by frame in
alternation (so background load hits both alike). The baseline is the RT-MDNet+RGBT network
(ablation ``rtmdnet_rgbt``: the same crop and conv streams, concatenated features, no fusion
module) carrying the M5L checkpoint's weights wherever the two share a layer, so both take
the same decisions and run the same number of updates. Reported: fps of each, the M5L/baseline
time-per-frame ratio, and a per-stage breakdown in ms per frame (preprocess, conv features,
candidate scoring, box regression, collecting update samples, online learning steps,
re-detection). ``--background-threads N`` runs it twice back to back, quiet and beside a process
keeping N torch threads busy (bench_load.py), and reports the share of the quiet fps that is
left. A benchmark that reports; no pass/fail exit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from m5l_core.cli_errors import run_cli
from m5l_core.config import ConfigError, apply_overrides
from m5l_core.losses import LossConfig
from m5l_core.models import CheckpointError, M5LNet, ModelConfig, apply_ablation, load_checkpoint
from m5l_core.tracking.bbreg import BoxPrior
from m5l_core.tracking.bench_load import busy_process
from m5l_core.tracking.bench_report import PAPER_FPS, TARGET_FPS, TARGET_RATIO, conv_gflop, explain
from m5l_core.tracking.box_head import BoxHead
from m5l_core.tracking.config import TrackerConfig
from m5l_core.tracking.loading import checkpoint_path, config_for_checkpoint, default_model_path
from m5l_core.tracking.runtime import resolve_device
from m5l_core.tracking.tracker import M5LTracker

# collect = pooling this frame's update samples; update = the short/long-term fc training.
STAGES = ("preprocess", "features", "scoring", "bbreg", "collect", "update", "redetect")


@dataclass
class Timing:
    name: str
    init_seconds: float = 0.0
    frames: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    crop_pixels: float = 0.0

    def add(self, seconds: float, timings: dict[str, float], crop_pixels: int) -> None:
        self.frames += 1
        self.seconds += seconds
        self.crop_pixels += crop_pixels
        for stage in STAGES:
            self.stages[stage] += timings.get(stage, 0.0)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self, counters: dict[str, int], stream: torch.nn.Module) -> dict:
        per_frame = {k: round(1000 * v / max(self.frames, 1), 2) for k, v in self.stages.items()}
        side = (self.crop_pixels / max(self.frames, 1)) ** 0.5
        ms_per_frame = 1000 * self.seconds / max(self.frames, 1)
        return {"fps": round(self.fps, 2), "ms_per_frame": round(ms_per_frame, 2),
                "init_seconds": round(self.init_seconds, 3), "stages_ms": per_frame,
                "mean_crop_side": round(side, 1),
                "conv_gflop_per_frame": round(conv_gflop(stream, side, side), 2),
                **counters}


def build_models(checkpoint: Path | None, device: torch.device) -> tuple[M5LNet, M5LNet, str, dict]:
    """(M5L, RT-MDNet+RGBT baseline, where the weights came from, the checkpoint's extra fields)."""
    if checkpoint is not None or default_model_path().is_file():
        checkpoint = checkpoint_path(checkpoint)
    # else a source tree without the bundled model: random weights time the same
    extra: dict = {}
    if checkpoint is not None:
        m5l, config, extra = load_checkpoint(checkpoint, device)
        source = str(checkpoint)
    else:
        torch.manual_seed(0)
        config = ModelConfig()
        m5l, source = M5LNet(config, 1), "random initialisation (no checkpoint; timings only)"
    baseline_config, _ = apply_ablation("rtmdnet_rgbt", config, LossConfig())
    baseline = M5LNet(baseline_config, m5l.num_domains)
    shared = {k: v for k, v in m5l.state_dict().items() if k in baseline.state_dict()}
    baseline.load_state_dict(shared, strict=False)
    return m5l.to(device).eval(), baseline.to(device).eval(), source, extra


def bench_sequence(frames: int, seed: int):
    """A clean synthetic 640x480 sequence (fixed seed: every run times the same frames)."""
    from m5l_core.datasets.synthetic import SyntheticConfig, generate_sequence

    config = SyntheticConfig(width=640, height=480, n_frames=frames + 1)
    return generate_sequence(config, seed=seed, challenges=())


def run_bench(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    m5l_net, baseline_net, source, extra = build_models(args.checkpoint, device)
    overrides = [*args.overrides, *([f"runtime.threads={args.threads}"] if args.threads else [])]
    config = config_for_checkpoint(apply_overrides(TrackerConfig(), overrides), extra)
    sequence = bench_sequence(args.frames, args.seed)
    # the baseline's fused features are another network's: the M5L model's box prior is not for them; its
    # conv maps are the M5L model's (shared trunk), so both carry the same box head and the ratio times fusion
    head = BoxHead.from_extra(extra)
    trackers = {"m5l": M5LTracker(m5l_net, None, config, device, args.seed, BoxPrior.from_extra(extra), head),
                "baseline": M5LTracker(baseline_net, None, config, device, args.seed, box_head=head)}
    if args.compare is not None:
        # Another model (e.g. a previous default) timed in the same alternation, at its own scale.
        compare_net, _, compare_extra = load_checkpoint(checkpoint_path(args.compare), device)
        compare_config = config_for_checkpoint(apply_overrides(TrackerConfig(), overrides), compare_extra)
        trackers["compare"] = M5LTracker(compare_net, None, compare_config, device, args.seed,
                                         BoxPrior.from_extra(compare_extra),
                                         BoxHead.from_extra(compare_extra))
    timings = {name: Timing(name) for name in trackers}
    for name, tracker in trackers.items():
        start = time.perf_counter()
        tracker.initialize(sequence.rgb[0], sequence.thermal[0], sequence.gt_rgb[0])
        timings[name].init_seconds = time.perf_counter() - start
    for index in range(1, len(sequence)):
        for name, tracker in trackers.items():
            start = time.perf_counter()
            result = tracker.track(sequence.rgb[index], sequence.thermal[index])
            elapsed = time.perf_counter() - start
            region = tracker.last_region
            if index > args.warmup:
                timings[name].add(elapsed, result.timings, region.out_size[0] * region.out_size[1])
    return report(timings, trackers, config, device, source, args)


def report(timings: dict[str, Timing], trackers: dict[str, M5LTracker], config: TrackerConfig,
           device: torch.device, source: str, args: argparse.Namespace) -> dict:
    summaries = {k: timings[k].summary(trackers[k].counters, trackers[k].model.rgb_stream) for k in trackers}
    m5l, baseline = summaries["m5l"], summaries["baseline"]
    ratio = (m5l["ms_per_frame"] / baseline["ms_per_frame"]) if baseline["ms_per_frame"] else float("nan")
    out = {"m5l_fps": m5l["fps"], "baseline_fps": baseline["fps"], "ratio": round(ratio, 3),
           "stages": {"m5l": m5l["stages_ms"], "baseline": baseline["stages_ms"]},
           "m5l": m5l, "baseline": baseline, "device": str(device), "threads": torch.get_num_threads(),
           "precision": trackers["m5l"].precision, "target_size": trackers["m5l"].target_size,
           "frames_timed": timings["m5l"].frames,
           "frame_size": [640, 480], "weights": source,
           "targets": {"m5l_fps": TARGET_FPS, "ratio_max": TARGET_RATIO, "paper_gtx1080ti_fps": PAPER_FPS}}
    out["targets"]["met"] = bool(out["m5l_fps"] >= TARGET_FPS and ratio <= TARGET_RATIO)
    out["note"] = explain(out)
    if "compare" in summaries:
        other = summaries["compare"]
        speedup = other["ms_per_frame"] / m5l["ms_per_frame"] if m5l["ms_per_frame"] else float("nan")
        out["compare"] = {**other, "weights": str(args.compare), "speedup": round(speedup, 3),
                          "target_size": trackers["compare"].target_size}
    return out


def print_human(result: dict) -> None:
    print(f"device {result['device']} ({result['threads']} threads), precision {result['precision']}, "
          f"{result['frames_timed']} frames of 640x480; weights: {result['weights']}")
    print(f"{'stage (ms/frame)':<18}{'M5L':>10}{'baseline':>10}")
    for stage in STAGES:
        print(f"{stage:<18}{result['stages']['m5l'][stage]:>10.1f}{result['stages']['baseline'][stage]:>10.1f}")
    print(f"{'total':<18}{result['m5l']['ms_per_frame']:>10.1f}{result['baseline']['ms_per_frame']:>10.1f}")
    print(f"M5L {result['m5l_fps']:.1f} fps, baseline {result['baseline_fps']:.1f} fps, "
          f"time ratio M5L/baseline {result['ratio']:.3f}")
    print(result["note"])
    if "compare" in result:
        other = result["compare"]
        print(f"compared model {other['weights']} (target {other['target_size']} px): "
              f"{other['fps']:.1f} fps, {other['ms_per_frame']:.1f} ms/frame; M5L is {other['speedup']:.2f}x "
              "its speed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m5l-bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="M5L checkpoint (default: the bundled default model, else random weights)")
    parser.add_argument("--frames", type=int, default=60, help="frames timed after the first (default 60)")
    parser.add_argument("--warmup", type=int, default=3, help="first frames not timed (default 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: the tracker's runtime.threads)")
    parser.add_argument("--seed", type=int, default=0, help="sequence and tracker seed")
    parser.add_argument("--compare", type=Path, default=None, metavar="CHECKPOINT",
                        help="also time this model in the same run (e.g. a previous default model)")
    parser.add_argument("--background-threads", type=int, default=0, metavar="N",
                        help="also time it beside a process keeping N torch threads busy (quiet run first)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="tracker setting override, e.g. runtime.precision=bfloat16 (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: bench_and_print(args), (ConfigError, CheckpointError, OSError))


def bench_and_print(args: argparse.Namespace) -> int:
    if args.frames <= args.warmup:
        raise ConfigError(f"--frames ({args.frames}) must exceed --warmup ({args.warmup})")
    if args.background_threads < 0:
        raise ConfigError(f"--background-threads must be 0 or more, got {args.background_threads}")
    result = run_bench(args)
    loaded = None
    if args.background_threads:
        with busy_process(args.background_threads):
            loaded = run_bench(args)
    if loaded is not None:
        share = loaded["m5l_fps"] / result["m5l_fps"] if result["m5l_fps"] else float("nan")
        result = {**result, "background_threads": args.background_threads, "loaded": loaded,
                  "loaded_share": round(share, 3)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_human(result)
        if loaded is not None:
            print(f"beside a busy process of {args.background_threads} torch threads: M5L "
                  f"{loaded['m5l_fps']:.1f} fps = {100 * result['loaded_share']:.0f} % of the quiet "
                  f"{result['m5l_fps']:.1f} fps ({result['threads']} tracker threads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
