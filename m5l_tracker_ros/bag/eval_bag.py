"""``m5l-eval-bag``: score a bag that already holds the node's outputs.

    m5l-eval-bag --bag robot_run [--gt robot_run.gt.txt] [--out results/]

The bag holds ``m5l_tracker_ros/msg/TrackedTarget`` messages (say, recorded on a robot with
``ros2 bag record``) and normally the image topics too: each output is matched to the RGB frame
whose stamp it carries, and ground-truth row ``i`` belongs to RGB frame ``i``. A bag written by
``m5l-replay-eval`` holds only outputs and names its source bag in its metadata, whose images are
used. Without any images, output ``i`` is frame ``i``.

Latency here is record time minus image stamp (the recorder's view, one clock), dropped pairs
are the pairs the node would form from the recorded images minus the frames with an output.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m5l_tracker_ros.bag import conventions as conv
from m5l_tracker_ros.bag.bagread import BagReader
from m5l_tracker_ros.bag.cli_common import add_input_args, add_output_args, publish_run, run_main
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.outputs import Output, read_outputs
from m5l_tracker_ros.bag.report import RunReport, choose_benchmark, run_report, score_outputs
from m5l_tracker_ros.bag.source import (
    GroundTruth,
    check_gt_length,
    default_gt_path,
    initial_box,
    load_ground_truth,
    load_streams,
    pair_streams,
)
from m5l_tracker_ros.bag.topics import IMAGE_TYPES, choose_output_topic
from m5l_tracker_ros.params import NodeConfig


def _frames_bag(reader: BagReader, requested: Path | None) -> Path:
    """The bag whose RGB stamps define the frames: this one if it has images, else its source."""
    if requested is not None:
        return requested
    if any(m in IMAGE_TYPES for m in reader.topics.values()):
        return reader.path
    source = reader.custom.get(conv.META_SOURCE_BAG)
    return Path(source) if source else reader.path


@dataclass(frozen=True)
class Frames:
    """What the bag with the images says about the frames to score."""

    stamps: list[int]          # RGB header stamp of every frame
    pairs: int                 # pairs the node could form from them
    init_box: np.ndarray
    gt: GroundTruth
    custom: dict[str, str]     # that bag's metadata


def read_frames(args, frames_bag: Path, outputs: list[Output]) -> Frames:
    with BagReader(frames_bag) as reader:
        gt = load_ground_truth(args.gt or default_gt_path(frames_bag), args.gt_thermal)
        init = initial_box(reader, gt)
        if not any(m in IMAGE_TYPES for m in reader.topics.values()):
            stamps = sorted({o.stamp for o in outputs})   # no images anywhere: output i is frame i
            return Frames(stamps, len(stamps), init, gt, dict(reader.custom))
        streams = load_streams(reader, args.rgb_topic, args.thermal_topic, progress=not args.quiet)
        pairs = pair_streams(streams, args.slop, args.queue_size)
        return Frames(streams.rgb_stamps, len(pairs), init, gt, dict(reader.custom))


def evaluate(args) -> tuple[RunReport, np.ndarray]:
    with BagReader(args.bag) as reader:
        try:
            topic = choose_output_topic(reader.topics, args.output_topic)
        except BagError as err:
            raise BagError(f"{args.bag}: {err}") from None
        outputs = read_outputs(reader, topic, progress=not args.quiet)
        frames_bag = _frames_bag(reader, args.frames_bag)
        custom = dict(reader.custom)
    if not outputs:
        raise BagError(f"{args.bag}: topic {topic} holds no messages")
    frames = read_frames(args, frames_bag, outputs)
    check_gt_length(frames.gt, len(frames.stamps), str(frames_bag))
    recorded = {**frames.custom, **custom}
    benchmark = choose_benchmark(args.benchmark, recorded.get(conv.META_BENCHMARK))
    name = recorded.get(conv.META_SEQUENCE) or Path(args.bag).name
    scores = score_outputs(benchmark, name, frames.gt, frames.init_box, frames.stamps, outputs)
    report = run_report(scores, frames.pairs, sequence=name, benchmark=benchmark,
                        frames=len(frames.stamps), outputs_per_s=None, mode="recorded")
    return report, scores.boxes


def build_parser() -> argparse.ArgumentParser:
    defaults = NodeConfig()
    parser = argparse.ArgumentParser(prog="m5l-eval-bag", description=__doc__.split("\n\n")[0],
                                     epilog="See the module documentation for how frames are matched.")
    add_input_args(parser)
    parser.add_argument("--output-topic", help="TrackedTarget topic (default: the one of that type)")
    parser.add_argument("--frames-bag", type=Path, help="take the image stamps from this bag instead")
    parser.add_argument("--slop", type=float, default=defaults.sync_slop,
                        help="pairing slop in seconds used to count the pairs (the node's sync_slop)")
    parser.add_argument("--queue-size", type=int, default=defaults.sync_queue_size,
                        help="pairing queue size (the node's sync_queue_size)")
    add_output_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        report, boxes = evaluate(args)
        publish_run(args.out, report, boxes)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
