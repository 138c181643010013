"""Lockstep and realtime replay of a bag's image pairs through a running node.

Both modes rebase the recorded stamps to the wall clock (ROS time without a simulated clock),
so the node's outputs can be timed against the image stamps, and map them back to the bag's
stamps afterwards, so outputs line up with the bag's frames and ground truth.

* lockstep: pair ``i`` is published, then the output stamped like its RGB image is awaited
  before pair ``i + 1`` goes out. The node never has two pairs pending, drops nothing and its
  tracker sees exactly the offline runner's frame sequence. Stamps keep the bag's spacing
  (started + bag offset), so the tracker's time-aware search sees the recorded frame gaps, not
  how long each output took; latency is then measured from the moment a pair was sent.
* realtime: every image of both streams goes out at its recorded time (scaled by ``rate``);
  the node pairs them and tracks the newest pair, as on a robot.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tqdm import tqdm

from m5l_tracker_ros.bag.outputs import Output, tracked_only, with_stamp
from m5l_tracker_ros.bag.source import ImageStreams, Payloads

if TYPE_CHECKING:  # rclpy is imported only where a replay really runs
    from m5l_tracker_ros.bag.player import ReplayClient

RGB, THERMAL = 0, 1
Pairs = list[tuple[int, int]]  # (RGB index, thermal index) of every pair, in order
START_LEAD_NS = 200_000_000   # time to schedule the first message in realtime mode


@dataclass(frozen=True)
class ReplayRun:
    outputs: list[Output]   # stamps are the bag's; received = bag stamp + measured latency
    pairs: int              # pairs the node should have tracked
    started_ns: int         # wall clock of the first image published
    finished_ns: int        # wall clock of the last output received (or of the end of playback)

    @property
    def tracked_per_s(self) -> float | None:
        """Outputs of tracked pairs per second (the node's predicted boxes for dropped ones left out)."""
        tracked = tracked_only(self.outputs)
        span = (self.finished_ns - self.started_ns) / 1e9
        return len(tracked) / span if tracked and span > 0 else None


def _back_to_bag_time(output: Output, original: int, sent: int) -> Output:
    return replace(output, stamp=original, received=original + (output.received - sent),
                   raw=with_stamp(output.raw, original))


def _map_outputs(outputs: list[Output], rebased: dict[int, int],
                 sent: dict[int, int] | None = None) -> list[Output]:
    """Outputs for published RGB stamps, mapped back; anything else (a stale output) is ignored.

    ``sent``: when each stamp was published, where that is not the stamp itself (lockstep).
    """
    sent = sent or {}
    return [_back_to_bag_time(o, rebased[o.stamp], sent.get(o.stamp, o.stamp)) for o in outputs
            if o.stamp in rebased]


def run_lockstep(client: ReplayClient, streams: ImageStreams, payloads: Payloads,
                 pairs: Pairs, timeout_s: float, progress: bool,
                 alive: Callable[[], None]) -> ReplayRun:
    rebased: dict[int, int] = {}
    sent: dict[int, int] = {}
    started = time.time_ns()
    first = streams.rgb[pairs[0][0]].stamp
    for number, (i, j) in enumerate(tqdm(pairs, desc="lockstep", unit="pair", disable=not progress)):
        rgb_stamp = streams.rgb[i].stamp
        stamp = started + rgb_stamp - first
        rebased[stamp] = rgb_stamp
        sent[stamp] = time.time_ns()
        client.publish(RGB, with_stamp(payloads[RGB][i], stamp))
        thermal_stamp = stamp + streams.thermal[j].stamp - rgb_stamp
        client.publish(THERMAL, with_stamp(payloads[THERMAL][j], thermal_stamp))
        if client.wait_for_stamp(stamp, timeout_s, alive) is None:
            print(f"warning: no output for pair {number} (RGB frame {i}) after {timeout_s:g} s; going on",
                  file=sys.stderr)
    outputs = client.outputs()
    finished = max((o.received for o in outputs), default=time.time_ns())
    return ReplayRun(_map_outputs(outputs, rebased, sent), len(pairs), started, finished)


def run_realtime(client: ReplayClient, streams: ImageStreams, payloads: Payloads, pairs: Pairs,
                 rate: float, timeout_s: float, progress: bool, alive: Callable[[], None]) -> ReplayRun:
    events = sorted([(m.stamp, RGB, i) for i, m in enumerate(streams.rgb)]
                    + [(m.stamp, THERMAL, i) for i, m in enumerate(streams.thermal)])
    first = events[0][0]
    rebased: dict[int, int] = {}
    sent_as: dict[int, int] = {}   # RGB index -> its rebased stamp
    started = time.time_ns() + START_LEAD_NS
    for stamp, stream, index in tqdm(events, desc=f"realtime x{rate:g}", unit="img", disable=not progress):
        target = started + int(round((stamp - first) / rate))
        delay = (target - time.time_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        if stream == RGB:
            rebased[target] = stamp
            sent_as[index] = target
        client.publish(stream, with_stamp(payloads[stream][index], target))
        alive()
    # The node always ends with the newest pair (older pending ones are dropped), and tracks
    # one pair at a time: once the last pair's output is in, nothing else is coming.
    last = pairs[-1][0]
    if client.wait_for_stamp(sent_as[last], timeout_s, alive) is None:
        print(f"warning: no output for the last pair (RGB frame {last}) after {timeout_s:g} s",
              file=sys.stderr)
    outputs = client.outputs()
    finished = max((o.received for o in outputs), default=time.time_ns())
    return ReplayRun(_map_outputs(outputs, rebased), len(pairs), started, finished)
