"""``m5l-replay-eval``: replay a bag through the tracking node and score what it published.

    m5l-replay-eval --bag bags/seq000 [--gt bags/seq000.gt.txt] [--mode lockstep|realtime]
                    [--rate 1.0] [--out replay/] [--connect] [--checkpoint CKPT] [--seed 0]
                    [--config tracker.yaml] [--set search.n_candidates=128 ...]

The node is started from the colcon build in ``install/`` (or, with ``--connect``, an
already running one is used), initialised with the bag's first-frame box through its
``initial_bbox`` parameter, fed the bag's image pairs, and its ``/m5l/target_bbox`` outputs
are recorded and scored with the benchmark evaluator. ``lockstep`` sends a pair only after
the previous output arrived, so it reproduces ``m5l-track`` run with the same checkpoint,
seed, device and tracker config; ``realtime`` keeps the recorded rate (times ``--rate``) and
reports what a robot would see: latency from image stamp to output, dropped pairs, outputs/s.

Written to ``--out``: ``<sequence>.txt`` (one box per frame; frames without an output keep
the previous box), ``<sequence>.report.json``, ``<sequence>_outputs/`` (a bag with the outputs,
stamped with the bag's image stamps) and ``node.log``.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m5l_tracker_ros.bag import conventions as conv
from m5l_tracker_ros.bag.bagread import BagReader
from m5l_tracker_ros.bag.cli_common import add_input_args, add_output_args, publish_run, run_main
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.node_settings import load_tracker_config, named_settings, node_parameters
from m5l_tracker_ros.bag.nodeproc import NodeProcess, with_large_image_profile
from m5l_tracker_ros.bag.outputs import STATE_NOT_INITIALISED, Output, write_outputs_bag
from m5l_tracker_ros.bag.replay import ReplayRun, run_lockstep, run_realtime
from m5l_tracker_ros.bag.report import RunReport, choose_benchmark, run_report, score_outputs
from m5l_tracker_ros.bag.source import (
    GroundTruth,
    ImageStreams,
    Payloads,
    check_gt_length,
    default_gt_path,
    initial_box,
    load_ground_truth,
    load_streams,
    pair_streams,
    raw_image_payloads,
)
from m5l_tracker_ros.params import NodeConfig
from m5l_tracker_ros.workspace import WorkspaceError, load_built_messages

MODES = ("lockstep", "realtime")


@dataclass(frozen=True)
class BagInput:
    streams: ImageStreams
    gt: GroundTruth
    init_box: np.ndarray
    payloads: Payloads
    custom: dict[str, str]


def load_bag_input(args) -> BagInput:
    """Everything a replay needs from the bag, read and checked before the node is started."""
    with BagReader(args.bag) as reader:
        streams = load_streams(reader, args.rgb_topic, args.thermal_topic, progress=not args.quiet)
        gt = load_ground_truth(args.gt or default_gt_path(args.bag), args.gt_thermal)
        check_gt_length(gt, len(streams.rgb), str(args.bag))
        return BagInput(streams, gt, initial_box(reader, gt),
                        raw_image_payloads(reader, streams, progress=not args.quiet), dict(reader.custom))


def _output_type():
    """The rclpy TrackedTarget class from the colcon build (or a sourced workspace)."""
    try:
        from m5l_tracker_ros.msg import TrackedTarget
        return TrackedTarget
    except ImportError:
        pass
    try:
        load_built_messages()
        from m5l_tracker_ros.msg import TrackedTarget
    except (WorkspaceError, ImportError) as err:
        raise BagError(f"cannot import m5l_tracker_ros.msg.TrackedTarget ({err}); build the package "
                       "(make setup or scripts/build_ros.sh) or source a workspace that has it") from None
    return TrackedTarget


def _node(args, out: Path):
    if args.connect:
        return nullcontext(None)
    tracker_config = load_tracker_config(args.config, args.set)
    # Settings named by --config and --set go to the node even at their default values, over a
    # params file's. Lockstep is the deterministic replay (m5l-track box by box): a params file's
    # learner thread (config/track.yaml has one) would make it depend on timing, so its schedule is
    # always the tracker config's (steps unless --set or --config says otherwise).
    named = named_settings(args.config, args.set) | ({"budget.mode"} if args.mode == "lockstep" else set())
    params = node_parameters(tracker_config, args.checkpoint, args.seed, args.device, args.slop,
                             args.queue_size, args.timeout if args.mode == "lockstep" else None, named)
    return NodeProcess(out / "node.log", args.params_file, params)


def _replay(args, out: Path, bag: BagInput,
            pairs: list[tuple[int, int]]) -> tuple[ReplayRun, dict[str, float], dict[str, int]]:
    """The run, the tracker's mean ms per stage and its counters at the end, as the node's
    /diagnostics reported them."""
    from m5l_tracker_ros.bag.player import NodeEndpoints, ReplayClient

    output_type = _output_type()
    with_large_image_profile(os.environ)  # read by Fast DDS when this process creates its participant
    endpoints = NodeEndpoints(args.node_name, args.node_rgb_topic, args.node_thermal_topic, args.output_topic)
    with _node(args, out) as node:
        alive = node.check_alive if node is not None else (lambda: None)
        client = ReplayClient(endpoints, output_type)
        try:
            client.wait_for_node(args.startup_timeout, alive)
            client.set_initial_box(bag.init_box)
            progress = not args.quiet
            if args.mode == "lockstep":
                run = run_lockstep(client, bag.streams, bag.payloads, pairs, args.timeout, progress, alive)
            else:
                run = run_realtime(client, bag.streams, bag.payloads, pairs, args.rate, args.timeout,
                                   progress, alive)
            return run, client.node_stages_ms(), client.node_counters()
        finally:
            client.close()


def replay_eval(args) -> tuple[RunReport, np.ndarray, Path]:
    if args.rate <= 0:
        raise BagError(f"--rate must be positive, got {args.rate}")
    bag = load_bag_input(args)
    pairs = pair_streams(bag.streams, args.slop, args.queue_size)
    if not pairs:
        raise BagError(f"{args.bag}: no RGB and thermal images pair within {args.slop} s "
                       f"({bag.streams.topics.rgb}, {bag.streams.topics.thermal}); raise --slop")
    name = bag.custom.get(conv.META_SEQUENCE) or Path(args.bag).name
    out = args.out or Path(f"{args.bag}.replay-{args.mode}")
    run, stages_ms, counters = _replay(args, out, bag, pairs)
    benchmark = choose_benchmark(args.benchmark, bag.custom.get(conv.META_BENCHMARK))
    scores = score_outputs(benchmark, name, bag.gt, bag.init_box, bag.streams.rgb_stamps, run.outputs)
    report = run_report(scores, len(pairs), sequence=name, benchmark=benchmark, frames=len(bag.streams.rgb),
                        outputs_per_s=run.tracked_per_s,
                        mode=args.mode if args.mode == "lockstep" else f"realtime x{args.rate:g}",
                        first_output_ms=None if args.mode == "lockstep" else first_output_ms(
                            scores.tracked, bag.streams.rgb[pairs[0][0]].stamp, args.rate),
                        node_stages_ms=stages_ms or None, node_counters=counters or None)
    custom = {conv.META_SOURCE_BAG: str(Path(args.bag).resolve()), conv.META_SEQUENCE: name,
              conv.META_BENCHMARK: benchmark}
    write_outputs_bag(out / f"{name}_outputs", scores.matched, args.storage,
                      overwrite=True, custom=custom)
    return report, scores.boxes, out


def first_output_ms(outputs: list[Output], first_stamp: int, rate: float) -> float | None:
    """Wall-clock ms from publishing the first frame (it carries the initial box) to the first
    tracked box (an output for a later frame), in a realtime replay (bag time runs at ``rate``)."""
    # an output's frame went out (stamp - first) / rate after the first, and came back latency later
    tracked = [(o.stamp - first_stamp) / rate + (o.received - o.stamp) for o in outputs
               if o.stamp > first_stamp and o.state != STATE_NOT_INITIALISED]
    return min(tracked) / 1e6 if tracked else None


def build_parser() -> argparse.ArgumentParser:
    node = NodeConfig()
    parser = argparse.ArgumentParser(prog="m5l-replay-eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    add_input_args(parser)
    parser.add_argument("--mode", choices=MODES, default="lockstep",
                        help="lockstep: each pair waits for the node's output, learning on the "
                             "deterministic budget (budget.mode steps, whatever a params file says, "
                             "unless --set budget.mode=...), so it equals m5l-track box by box; "
                             "realtime: the bag's own timing")
    parser.add_argument("--rate", type=float, default=1.0, help="realtime playback speed factor")
    add_output_args(parser, default="<bag>.replay-<mode>")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="outputs bag storage")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds to wait for one output (lockstep) or for the last one (realtime)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for the node")
    group = parser.add_argument_group("the node (started here unless --connect)")
    group.add_argument("--connect", action="store_true", help="use an already running node")
    group.add_argument("--node-name", default=f"/{conv.NODE_NAME}", help="its fully qualified name")
    group.add_argument("--node-rgb-topic", default=conv.RGB_TOPIC, help="its RGB input topic")
    group.add_argument("--node-thermal-topic", default=conv.THERMAL_TOPIC, help="its thermal input topic")
    group.add_argument("--output-topic", default=node.output_topic, help="its TrackedTarget topic")
    group.add_argument("--params-file", type=Path, help="node parameter YAML (e.g. config/track.yaml)")
    group.add_argument("--checkpoint", type=Path, help="tracker checkpoint (default: the bundled model)")
    group.add_argument("--seed", type=int, default=node.seed, help="tracker seed (as m5l-track --seed)")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the node's (auto)")
    group.add_argument("--config", type=Path, help="TrackerConfig YAML, as given to m5l-track; the "
                                                   "settings it names override --params-file's")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="TrackerConfig override, as given to m5l-track (repeatable); overrides "
                            "--params-file, also at the default value")
    group.add_argument("--slop", type=float, default=node.sync_slop, help="pairing slop in seconds")
    group.add_argument("--queue-size", type=int, default=node.sync_queue_size, help="pairing queue size")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        report, boxes, out = replay_eval(args)
        print(f"wrote {out / (report.sequence + '_outputs')}")
        publish_run(out, report, boxes)
        return 0

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
