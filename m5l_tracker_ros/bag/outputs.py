"""The node's ``TrackedTarget`` outputs: reading them from a bag, matching them to frames,
writing them to a bag.

An output belongs to the frame whose RGB header stamp it carries (the node copies the RGB
header). A frame without an output keeps the previous frame's box, which is what a robot
acting on the latest estimate would use; the first frame falls back to the initial box.
``NOT_INITIALISED`` outputs count as outputs but carry no box. ``PREDICTED`` outputs (the node's
optical-flow boxes for pairs it dropped) are boxes like any other; :func:`tracked_only` leaves
them out, to score what the tracker alone gave.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m5l_tracker_ros.bag import conventions as conv
from m5l_tracker_ros.bag.bagread import BagReader
from m5l_tracker_ros.bag.bagwrite import bag_writer
from m5l_tracker_ros.bag.images import stamp_ns
from m5l_tracker_ros.bag.typestore import TRACKED_TARGET, typestore

STATE_NOT_INITIALISED = 0
STATE_PREDICTED = 3


@dataclass(frozen=True)
class Output:
    stamp: int            # header stamp (ns): the RGB image's
    received: int         # ns: reception time (replay) or record time (bag)
    box: tuple[float, float, float, float]
    state: int
    score: float
    node_latency: float   # seconds, as the node reports it (pair complete -> publish)
    raw: bytes = b""      # CDR as received, for writing it back to a bag

    @property
    def latency_s(self) -> float:
        """Image stamp to reception: what a consumer of the output sees."""
        return (self.received - self.stamp) / 1e9


def output_from_cdr(raw: bytes, received: int) -> Output:
    msg = typestore().deserialize_cdr(raw, TRACKED_TARGET)
    return Output(stamp_ns(msg.header), received, (float(msg.x), float(msg.y), float(msg.width),
                  float(msg.height)), int(msg.state), float(msg.score), float(msg.latency), bytes(raw))


def read_outputs(reader: BagReader, topic: str, progress: bool = False) -> list[Output]:
    """Outputs recorded in a bag; the record time stands for the reception time."""
    return [output_from_cdr(m.raw, m.log_time) for m in reader.read_topic(topic, progress)]


@dataclass(frozen=True)
class FrameBoxes:
    boxes: np.ndarray          # (N, 4) one box per frame, gaps filled as described above
    output_of: np.ndarray      # (N,) index into the outputs list, -1 where the frame got none

    @property
    def frames_with_output(self) -> int:
        return int((self.output_of >= 0).sum())


def tracked_only(outputs: list[Output]) -> list[Output]:
    """The outputs of tracked pairs: without the node's predicted boxes for dropped ones."""
    return [o for o in outputs if o.state != STATE_PREDICTED]


def frame_boxes(frame_stamps: list[int], outputs: list[Output], init_box: np.ndarray) -> FrameBoxes:
    """One box per frame from the outputs stamped like the frames (first output per stamp wins)."""
    by_stamp: dict[int, int] = {}
    for index, output in enumerate(outputs):
        by_stamp.setdefault(output.stamp, index)
    boxes = np.empty((len(frame_stamps), 4), dtype=np.float64)
    output_of = np.full(len(frame_stamps), -1, dtype=np.int64)
    previous = np.asarray(init_box, dtype=np.float64)
    for frame, stamp in enumerate(frame_stamps):
        index = by_stamp.get(stamp, -1)
        output_of[frame] = index
        if index >= 0 and outputs[index].state != STATE_NOT_INITIALISED:
            previous = np.asarray(outputs[index].box, dtype=np.float64)
        boxes[frame] = previous
    return FrameBoxes(boxes, output_of)


def with_stamp(raw: bytes, stamp: int) -> bytes:
    """CDR bytes of a message that starts with a ``std_msgs/Header``, with a new header stamp.

    Header.stamp is the first field: int32 sec and uint32 nanosec right after the 4-byte CDR
    encapsulation header, in the byte order the encapsulation names (patched in place: no
    deserialisation of a multi-megabyte image per message).
    """
    little = raw[1] & 1 == 1
    order = "little" if little else "big"
    sec, nanosec = divmod(int(stamp), 1_000_000_000)
    return (raw[:4] + sec.to_bytes(4, order, signed=True) + nanosec.to_bytes(4, order) + raw[12:])


def write_outputs_bag(path: str | Path, outputs: list[Output], storage: str = "mcap",
                      custom: dict[str, str] | None = None, overwrite: bool = False) -> Path:
    """A bag holding the outputs on ``/m5l/target_bbox``, record time = ``received``."""
    with bag_writer(path, storage, custom, overwrite) as writer:
        conn = writer.add_connection(conv.OUTPUT_TOPIC, TRACKED_TARGET, typestore=typestore())
        for output in sorted(outputs, key=lambda o: o.received):
            writer.write(conn, output.received, output.raw)
    return Path(path)
