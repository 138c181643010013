"""Track every sequence of a benchmark and write the files ``m5l-eval`` and the toolkits read.

Output layout (``out``)::

    <sequence>.txt          one ``x,y,w,h`` row per frame, the first frame's being the initial box
    meta/<sequence>.json    frames, seconds, fps, failures, device, checkpoint of that run

Each sequence's files are written atomically once it is fully tracked, so a rerun skips the
sequences already done (resume), and shards run on other machines merge by copying their
``out`` folders together: no file is shared between sequences.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m5l_core.atomic import atomic_write_text, remove_leftovers
from m5l_core.config import ConfigError
from m5l_core.datasets import DatasetError, Sequence
from m5l_core.datasets.frames import read_frame
from m5l_core.evaluation import write_result_file
from m5l_core.preprocess import PreprocessConfig, prepare_pair
from m5l_core.tracking.api import RGBTTracker, TrackResult
from m5l_core.tracking.propagate import FlowPropagator


@dataclass(frozen=True)
class SequenceRun:
    name: str
    frames: int
    init_seconds: float
    track_seconds: float
    failures: int
    fps: float                  # tracked frames over all time, initialisation included (RT-MDNet's figure)
    track_fps: float            # tracked frames after the first over their time
    lost: tuple[int, ...] = ()  # frames the tracker reported as failures (LOST)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` (1 <= i <= N) -> (i, N)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like i/N (e.g. 2/4), got {text!r}") from None
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"--shard {text}: need 1 <= i <= N")
    return index, count


def shard_names(names: Iterable[str], shard: tuple[int, int] | None) -> list[str]:
    """Shard ``i/N`` gets every N-th sequence of the sorted names, starting at the i-th."""
    ordered = sorted(names)
    if shard is None:
        return ordered
    index, count = shard
    return ordered[index - 1::count]


@dataclass(frozen=True)
class FrameSchedule:
    """Which frames the tracker sees: all of them (offline benchmarks), or those a tracker that
    keeps up with every ``every``-th camera frame would see live, starting ``first`` frames after
    the initial box (a slow start misses more). The boxes of the frames in between are the last
    result, as a robot would have it (and as ``m5l-replay-eval`` scores a realtime replay), or with
    ``predict`` the last result moved by optical flow, as the node's ``predict_dropped`` publishes
    them (propagate.py); skipped frames show in the stamps (``index / camera_fps``), so the
    time-aware search sees the gaps. Deterministic: a host-independent stand-in for a realtime
    replay at ``camera_fps / every`` outputs per second."""

    every: int = 1
    first: int | None = None        # the first tracked frame after frame 0 (default: ``every``)
    camera_fps: float = 30.0
    predict: bool = False

    def __post_init__(self):
        if self.every < 1 or (self.first is not None and self.first < 1) or self.camera_fps <= 0:
            raise ConfigError(f"frame schedule needs every >= 1, first >= 1 and camera_fps > 0, got "
                              f"every={self.every}, first={self.first}, camera_fps={self.camera_fps}")

    @property
    def skips(self) -> bool:
        return self.every > 1 or (self.first or 1) > 1

    def tracked(self, index: int) -> bool:
        first = self.first or self.every
        return index == 0 or (index >= first and (index - first) % self.every == 0)

    def stamp(self, index: int) -> float | None:
        """The frame's stamp in seconds when frames are skipped; None for an ordinary run (unstamped,
        exactly as before schedules existed)."""
        return index / self.camera_fps if self.skips else None


def track_sequence(tracker: RGBTTracker, sequence: Sequence, on_frame: Callable | None = None,
                   progress: bool = False, schedule: FrameSchedule = FrameSchedule()
                   ) -> tuple[np.ndarray, SequenceRun]:
    """Run ``tracker`` over a sequence (the frames of ``schedule``); ``on_frame(index, rgb, thermal,
    result)`` sees every frame the tracker sees."""
    if not sequence.has_images:
        raise DatasetError(f"sequence {sequence.name!r} has no image files to track")
    n = len(sequence.rgb_frames)
    boxes = np.zeros((n, 4))
    boxes[0] = sequence.init_box
    lost: list[int] = []
    init_seconds, track_seconds, tracked = 0.0, 0.0, 0
    propagator = None
    if schedule.predict and schedule.skips:
        propagator = FlowPropagator.for_tracker(getattr(tracker, "config", None))
    bar = tqdm(range(n), desc=sequence.name, unit="frame", leave=False, disable=not progress or None)
    for index in bar:
        if not schedule.tracked(index):
            boxes[index] = boxes[index - 1]
            if propagator is not None:
                skipped = read_frame(sequence.rgb_frames[index], thermal=False)
                propagator.dropped(schedule.stamp(index), skipped)
                boxes[index] = next((p.box for p in propagator.predictions()), boxes[index])
            continue
        rgb = read_frame(sequence.rgb_frames[index], thermal=False)
        thermal = read_frame(sequence.thermal_frames[index], thermal=True)
        stamp = schedule.stamp(index)
        # an ordinary schedule passes no stamp, so trackers that take none still run it
        stamped = {} if stamp is None else {"stamp": stamp}
        start = time.perf_counter()
        result: TrackResult | None = None
        if index == 0:
            tracker.initialize(rgb, thermal, sequence.init_box, **stamped)
            init_seconds = time.perf_counter() - start
        else:
            result = tracker.track(rgb, thermal, **stamped)
            track_seconds += time.perf_counter() - start
            tracked += 1
            boxes[index] = result.box
            if not result.success:
                lost.append(index)
        if propagator is not None:
            propagator.result(stamp, rgb, boxes[index] if result is None or result.success else None)
        if on_frame is not None:
            on_frame(index, rgb, thermal, result)
    total = init_seconds + track_seconds
    run = SequenceRun(name=sequence.name, frames=n, init_seconds=init_seconds, track_seconds=track_seconds,
                      failures=len(lost), fps=(tracked + 1) / total if total > 0 else 0.0,
                      track_fps=tracked / track_seconds if track_seconds > 0 else 0.0, lost=tuple(lost))
    return boxes, run


def is_done(out_dir: Path, name: str) -> bool:
    return (out_dir / f"{name}.txt").is_file() and (out_dir / "meta" / f"{name}.json").is_file()


def run_sequences(make_tracker: Callable[[], RGBTTracker], sequences: list[Sequence], out_dir: Path, *,
                  video_dir: Path | None = None, preprocess: PreprocessConfig = PreprocessConfig(),
                  run_info: dict | None = None, progress: bool = True,
                  schedule: FrameSchedule = FrameSchedule()) -> list[SequenceRun]:
    """Track every sequence not already done in ``out_dir``; returns the runs made now."""
    out_dir = Path(out_dir)
    todo = [s for s in sequences if not is_done(out_dir, s.name)]
    if progress and len(todo) < len(sequences):
        tqdm.write(f"resuming: {len(sequences) - len(todo)} of {len(sequences)} sequences already done")
    runs: list[SequenceRun] = []
    tracker = make_tracker() if todo else None
    bar = tqdm(todo, desc="sequences", unit="seq", disable=not progress or None)
    for sequence in bar:
        result_path, meta_path = out_dir / f"{sequence.name}.txt", out_dir / "meta" / f"{sequence.name}.json"
        for path in (result_path, meta_path):   # a sequence is this run's alone, also among shards
            remove_leftovers(path)
        boxes, run = _track_one(tracker, sequence, video_dir, preprocess, progress, schedule)
        write_result_file(result_path, boxes)
        meta = {**asdict(run), **(run_info or {})}
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
        runs.append(run)
        bar.set_postfix_str(f"{sequence.name}: {run.fps:.1f} fps")
        if progress:
            tqdm.write(f"{sequence.name}: {run.frames} frames, {run.fps:.1f} fps "
                       f"({run.track_fps:.1f} after init), {run.failures} failures")
    return runs


def _track_one(tracker, sequence: Sequence, video_dir: Path | None, preprocess, progress: bool,
               schedule: FrameSchedule):
    if video_dir is None:
        return track_sequence(tracker, sequence, progress=progress, schedule=schedule)
    from m5l_core.tracking.video import OverlayVideoWriter

    def draw(index, rgb, thermal, result):
        shown_rgb, shown_thermal = prepare_pair(rgb, thermal, preprocess)
        writer.write(shown_rgb, shown_thermal, index, gt=sequence.gt_rgb[index], result=result,
                     init_box=sequence.init_box)

    with OverlayVideoWriter(Path(video_dir) / f"{sequence.name}.mp4") as writer:
        return track_sequence(tracker, sequence, on_frame=draw, progress=progress, schedule=schedule)
