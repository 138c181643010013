"""A bag as the input of an evaluation: its image streams, initial box, ground truth and pairs.

Frame ``i`` of a bag is its ``i``-th RGB image (by header stamp); ground-truth row ``i``
belongs to it. Bags from real cameras may run the two modalities at different rates: the
pairs are then formed as the node forms them (:class:`m5l_tracker_ros.pairing.ApproximatePairer`,
same slop and queue size), and RGB frames left without a partner simply get no output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from m5l_core.evaluation.metrics import ResultsError
from m5l_core.evaluation.results_io import read_result_file
from m5l_tracker_ros.bag import conventions as conv
from m5l_tracker_ros.bag.bagread import BagReader, RawMessage
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.images import decode_image, image_message
from m5l_tracker_ros.bag.topics import ImageTopics, choose_image_topics
from m5l_tracker_ros.bag.typestore import COMPRESSED_IMAGE, IMAGE, typestore
from m5l_tracker_ros.pairing import ApproximatePairer


@dataclass(frozen=True)
class ImageStreams:
    topics: ImageTopics
    rgb: list[RawMessage]
    thermal: list[RawMessage]

    @property
    def rgb_stamps(self) -> list[int]:
        return [m.stamp for m in self.rgb]


@dataclass(frozen=True)
class GroundTruth:
    rgb: np.ndarray
    thermal: np.ndarray
    files: tuple[Path, ...]


def load_streams(reader: BagReader, rgb_topic: str | None = None, thermal_topic: str | None = None,
                 progress: bool = False) -> ImageStreams:
    """Both image streams, checked to be non-empty and decodable (first message of each)."""
    try:
        topics = choose_image_topics(reader.topics, rgb_topic, thermal_topic)
    except BagError as err:
        raise BagError(f"{reader.path}: {err}") from None
    streams = ImageStreams(topics, reader.read_topic(topics.rgb, progress),
                           reader.read_topic(topics.thermal, progress))
    checks = (("rgb", topics.rgb, streams.rgb), ("thermal", topics.thermal, streams.thermal))
    for role, topic, messages in checks:
        if not messages:
            raise BagError(f"{reader.path}: topic {topic} holds no messages")
        first = messages[0]
        msg = reader.deserialize(first.raw, first.msgtype)
        decode_image(msg, first.msgtype, role, f"{reader.path} {topic}")
    return streams


def _box_from_metadata(reader: BagReader) -> np.ndarray | None:
    text = reader.custom.get(conv.META_INIT_BOX)
    if text is None:
        return None
    try:
        box = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        box = np.zeros(0)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise BagError(f"{reader.path}: metadata {conv.META_INIT_BOX}={text!r} is not 4 numbers x,y,w,h")
    return box


def _box_from_init_topic(reader: BagReader) -> np.ndarray | None:
    if reader.topics.get(conv.INIT_TOPIC) != conv.INIT_TYPE:
        return None
    messages = reader.read_raw(conv.INIT_TOPIC)
    if not messages:
        return None
    roi = reader.deserialize(messages[0], conv.INIT_TYPE)
    return np.array([roi.x_offset, roi.y_offset, roi.width, roi.height], dtype=np.float64)


def initial_box(reader: BagReader, gt: GroundTruth | None) -> np.ndarray:
    """The first-frame box: exact metadata, else the recorded ``~/init``, else the first GT row."""
    for box in (_box_from_metadata(reader), _box_from_init_topic(reader)):
        if box is not None:
            return box
    if gt is not None:
        return gt.rgb[0].astype(np.float64)
    raise BagError(f"{reader.path}: no initial box (no {conv.META_INIT_BOX} metadata, no {conv.INIT_TOPIC} "
                   "message) and no ground truth to take it from")


def default_gt_path(bag: str | Path) -> Path:
    return conv.gt_paths(bag)[0]


def load_ground_truth(gt_file: str | Path, gt_thermal: str | Path | None = None) -> GroundTruth:
    """GT rows (x,y,w,h); the thermal GT is ``gt_thermal``, or ``<bag>.gt_thermal.txt`` beside
    a ``<bag>.gt.txt``, or the RGB one."""
    gt_file = Path(gt_file)
    if gt_thermal is None and gt_file.name.endswith(".gt.txt"):
        beside = gt_file.with_name(gt_file.name[: -len(".gt.txt")] + ".gt_thermal.txt")
        gt_thermal = beside if beside.is_file() else None
    try:
        rgb = read_result_file(gt_file, allow_nonfinite=False)
        thermal = read_result_file(gt_thermal) if gt_thermal is not None else rgb
    except ResultsError as err:
        raise BagError(f"ground truth: {err}") from None
    if len(thermal) != len(rgb):
        raise BagError(f"ground truth files differ in length: {gt_file} has {len(rgb)} rows, "
                       f"{gt_thermal} has {len(thermal)}")
    files = (gt_file,) + ((Path(gt_thermal),) if gt_thermal is not None else ())
    return GroundTruth(rgb, thermal, files)


def check_gt_length(gt: GroundTruth, frames: int, where: str) -> None:
    """The evaluator accepts results one row short of the GT; anything else is a mismatch."""
    if frames not in (len(gt.rgb), len(gt.rgb) - 1):
        raise BagError(f"{where}: {frames} frames but the ground truth {gt.files[0]} has {len(gt.rgb)} rows")


def pair_streams(streams: ImageStreams, slop_s: float, queue_size: int) -> list[tuple[int, int]]:
    """(rgb index, thermal index) pairs, formed as the node would form them on arrival.

    Messages are fed in header-stamp order (what a player publishing at the recorded rate
    delivers); each message is used at most once, as in message_filters.
    """
    pairs: list[tuple[int, int]] = []
    pairer = ApproximatePairer(2, queue_size, slop_s, lambda rgb, thermal: pairs.append((rgb, thermal)))
    arrivals = sorted([(m.stamp, 0, i) for i, m in enumerate(streams.rgb)]
                      + [(m.stamp, 1, i) for i, m in enumerate(streams.thermal)])
    for stamp, index, position in arrivals:
        pairer.add(index, stamp, position)
    return pairs


Payloads = tuple[list[bytes], list[bytes]]  # CDR bytes of the RGB and thermal images, by index


def raw_image_payloads(reader: BagReader, streams: ImageStreams, progress: bool) -> Payloads:
    """CDR ``sensor_msgs/Image`` bytes for every message; CompressedImage is decoded once here
    because the node subscribes raw images."""
    store = typestore()
    payloads = ([], [])
    for stream, (role, messages) in enumerate((("rgb", streams.rgb), ("thermal", streams.thermal))):
        compressed = messages[0].msgtype == COMPRESSED_IMAGE
        bar = tqdm(messages, desc=f"decode {role}", unit="img", leave=False,
                   disable=not (progress and compressed))
        for message in bar:
            if not compressed:
                payloads[stream].append(message.raw)
                continue
            msg = reader.deserialize(message.raw, message.msgtype)
            pixels = decode_image(msg, message.msgtype, role, f"{reader.path} {role}")
            raw_msg = image_message(pixels, message.stamp, msg.header.frame_id)
            payloads[stream].append(bytes(store.serialize_cdr(raw_msg, IMAGE)))
    return payloads
