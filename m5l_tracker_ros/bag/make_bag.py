"""``m5l-make-bag``: a benchmark or synthetic sequence -> a rosbag2 with RGB, thermal and init.

    m5l-make-bag --sequence data/synth/seq000 --out bags/seq000 [--storage mcap|sqlite3]
                 [--fps 25] [--jitter-ms 0] [--seed 0]

Every frame becomes one RGB ``Image`` (``rgb8``) and one thermal ``Image`` (``mono8``,
``mono16`` or ``rgb8``: the pixels exactly as read from disk) stamped ``start + i / fps``; the
thermal stamp is moved by a uniform random ``[-J, J]`` ms when ``--jitter-ms J`` is given, as
two free-running cameras would be. The first-frame box goes to ``/m5l_tracker/init`` and to the
bag's metadata (``m5l.init_box``, exact floats); the ground truth goes beside the bag
(``<out>.gt.txt``, and ``<out>.gt_thermal.txt`` when the thermal one differs).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Writer, WriterError
from tqdm import tqdm

from m5l_core.cli_errors import run_cli
from m5l_core.datasets import DatasetError, Sequence, load_sequence
from m5l_core.datasets.frames import read_frame
from m5l_core.evaluation.metrics import ResultsError
from m5l_core.evaluation.results_io import write_result_file
from m5l_tracker_ros.bag import conventions as conv
from m5l_tracker_ros.bag.bagwrite import STORAGES, bag_writer
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.images import image_message
from m5l_tracker_ros.bag.typestore import IMAGE, typestore

NS_PER_S = 1_000_000_000
DEFAULT_START_NS = 1_700_000_000 * NS_PER_S  # fixed, so one sequence always gives the same bag


@dataclass(frozen=True)
class BagOptions:
    storage: str = "mcap"
    fps: float = 25.0
    jitter_ms: float = 0.0
    seed: int = 0
    start_ns: int = DEFAULT_START_NS


def frame_stamps(frames: int, options: BagOptions) -> tuple[np.ndarray, np.ndarray]:
    """RGB and thermal header stamps (int ns) of every frame."""
    if options.fps <= 0:
        raise BagError(f"--fps must be positive, got {options.fps}")
    period_ms = 1000.0 / options.fps
    if not 0 <= options.jitter_ms < period_ms / 2:
        # beyond half a period a thermal frame is nearer to the neighbouring RGB frame
        raise BagError(f"--jitter-ms must be in [0, {period_ms / 2:g}) at {options.fps:g} fps, "
                       f"got {options.jitter_ms:g}")
    rgb = options.start_ns + np.round(np.arange(frames) * NS_PER_S / options.fps).astype(np.int64)
    rng = np.random.default_rng(options.seed)
    jitter = np.round(rng.uniform(-options.jitter_ms, options.jitter_ms, frames) * 1e6).astype(np.int64)
    return rgb, rgb + jitter


def init_message(box: np.ndarray):
    """``~/init`` takes integer pixels; the exact float box travels in the metadata."""
    x, y, w, h = (max(0, round(float(v))) for v in box)
    return typestore().types[conv.INIT_TYPE](x_offset=x, y_offset=y, height=h, width=w, do_rectify=False)


def _write_messages(writer: Writer, sequence: Sequence, options: BagOptions, progress: bool) -> None:
    store = typestore()
    rgb_conn = writer.add_connection(conv.RGB_TOPIC, IMAGE, typestore=store)
    thermal_conn = writer.add_connection(conv.THERMAL_TOPIC, IMAGE, typestore=store)
    init_conn = writer.add_connection(conv.INIT_TOPIC, conv.INIT_TYPE, typestore=store)
    rgb_stamps, thermal_stamps = frame_stamps(len(sequence.rgb_frames), options)
    # the init box is recorded just before the first frame, so a plain `ros2 bag play` sends it first
    writer.write(init_conn, int(min(rgb_stamps[0], thermal_stamps[0])) - 1_000_000,
                 store.serialize_cdr(init_message(sequence.init_box), conv.INIT_TYPE))
    frames = zip(sequence.rgb_frames, sequence.thermal_frames, rgb_stamps, thermal_stamps, strict=True)
    for rgb_path, thermal_path, rgb_stamp, thermal_stamp in tqdm(
            frames, total=len(sequence.rgb_frames), desc=f"bag {sequence.name}", unit="frame",
            disable=not progress):
        # the offline runner's reader: the bag carries exactly the arrays m5l-track gives the tracker
        messages = [(int(rgb_stamp), rgb_conn, read_frame(rgb_path, thermal=False), "rgb"),
                    (int(thermal_stamp), thermal_conn, read_frame(thermal_path, thermal=True), "thermal")]
        for stamp, conn, pixels, role in sorted(messages, key=lambda m: m[0]):
            msg = image_message(pixels, stamp, role)
            writer.write(conn, stamp, store.serialize_cdr(msg, IMAGE))


def _metadata(sequence: Sequence) -> dict[str, str]:
    return {conv.META_INIT_BOX: ",".join(repr(float(v)) for v in sequence.init_box),
            conv.META_SEQUENCE: sequence.name,
            conv.META_BENCHMARK: sequence.benchmark,
            conv.META_FRAMES: str(len(sequence.rgb_frames))}


def write_sequence_bag(sequence: Sequence, out: str | Path, options: BagOptions = BagOptions(),
                       progress: bool = False, overwrite: bool = False) -> Path:
    """Write ``sequence`` as a bag at ``out`` (a directory) plus the ground truth beside it."""
    if not sequence.has_images:
        raise BagError(f"sequence {sequence.name!r} has no images to put in a bag")
    frame_stamps(len(sequence.rgb_frames), options)  # option errors before anything is written
    with bag_writer(out, options.storage, _metadata(sequence), overwrite) as writer:
        _write_messages(writer, sequence, options, progress)
    write_ground_truth(sequence, Path(out))
    return Path(out)


def write_ground_truth(sequence: Sequence, bag: Path) -> list[Path]:
    rgb_path, thermal_path = conv.gt_paths(bag)
    written = [write_result_file(rgb_path, sequence.gt_rgb)]
    if not np.array_equal(sequence.gt_rgb, sequence.gt_thermal, equal_nan=True):
        written.append(write_result_file(thermal_path, sequence.gt_thermal))
    else:
        thermal_path.unlink(missing_ok=True)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m5l-make-bag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequence", required=True, type=Path,
                        help="sequence directory in any layout the loaders read (GTOT, RGBT234...)")
    parser.add_argument("--out", required=True, type=Path, help="bag directory to create")
    parser.add_argument("--storage", choices=sorted(STORAGES), default=BagOptions.storage)
    parser.add_argument("--fps", type=float, default=BagOptions.fps, help="frame rate of both cameras")
    parser.add_argument("--jitter-ms", type=float, default=BagOptions.jitter_ms,
                        help="thermal stamps move by a uniform random offset in [-J, J] ms "
                        "(keep it below the node's sync_slop, 50 ms by default)")
    parser.add_argument("--seed", type=int, default=BagOptions.seed, help="seed of the jitter")
    parser.add_argument("--force", action="store_true", help="replace an existing bag")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = BagOptions(storage=args.storage, fps=args.fps, jitter_ms=args.jitter_ms, seed=args.seed)

    def body() -> int:
        sequence = load_sequence(args.sequence)
        bag = write_sequence_bag(sequence, args.out, options, progress=not args.quiet, overwrite=args.force)
        rgb_gt, thermal_gt = conv.gt_paths(bag)
        gt = f"{rgb_gt}" + (f" and {thermal_gt}" if thermal_gt.exists() else "")
        print(f"wrote {bag} ({len(sequence)} frames, {args.storage}) and ground truth {gt}")
        return 0

    return run_cli(body, (BagError, DatasetError, ResultsError, WriterError, OSError))


if __name__ == "__main__":
    sys.exit(main())
