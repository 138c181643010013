"""m5l-make-bag and m5l-eval-bag, bag reading and its errors: no ROS graph needed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from m5l_core.datasets import load_sequence
from m5l_core.datasets.synthetic import SyntheticConfig, generate_sequence
from m5l_core.evaluation.results_io import read_result_file
from m5l_tracker_ros.bag import conventions as conv
from m5l_tracker_ros.bag import eval_bag, make_bag
from m5l_tracker_ros.bag.bagread import BagReader
from m5l_tracker_ros.bag.bagwrite import bag_writer
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.images import compressed_message, decode_image, image_message, make_header
from m5l_tracker_ros.bag.outputs import Output, frame_boxes, output_from_cdr, with_stamp, write_outputs_bag
from m5l_tracker_ros.bag.source import load_streams, pair_streams, raw_image_payloads
from m5l_tracker_ros.bag.topics import choose_image_topics, choose_output_topic
from m5l_tracker_ros.bag.typestore import COMPRESSED_IMAGE, IMAGE, TRACKED_TARGET, typestore

FRAMES = 8


@pytest.fixture(scope="module")
def sequence_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    config = SyntheticConfig(width=96, height=72, n_frames=FRAMES)
    generate_sequence(config, seed=1, challenges=("misalignment",), out_dir=out, name="seq", layout="gtot",
                      keep_frames=False, workers=1)
    return out / "seq"


@pytest.fixture(scope="module")
def bag(sequence_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "seq_bag"
    assert make_bag.main(["--sequence", str(sequence_dir), "--out", str(out), "--fps", "20",
                          "--jitter-ms", "4", "--quiet"]) == 0
    return out


def tracked_target(stamp: int, box, state: int = 1) -> bytes:
    msg = typestore().types[TRACKED_TARGET](
        header=make_header(stamp, "rgb"), x=box[0], y=box[1], width=box[2], height=box[3], score=1.0,
        state=state, rgb_weight=1.0, thermal_weight=1.0, latency=0.01)
    return bytes(typestore().serialize_cdr(msg, TRACKED_TARGET))


# --- m5l-make-bag --------------------------------------------------------------------------------

def test_make_bag_writes_images_init_metadata_and_ground_truth(bag, sequence_dir):
    sequence = load_sequence(sequence_dir)
    with BagReader(bag) as reader:
        expected_topics = {conv.RGB_TOPIC: IMAGE, conv.THERMAL_TOPIC: IMAGE, conv.INIT_TOPIC: conv.INIT_TYPE}
        assert reader.topics == expected_topics
        streams = load_streams(reader)
        first_rgb = reader.deserialize(streams.rgb[0].raw, IMAGE)
        first_thermal = reader.deserialize(streams.thermal[0].raw, IMAGE)
        init_box = [float(v) for v in reader.custom[conv.META_INIT_BOX].split(",")]
    assert len(streams.rgb) == len(streams.thermal) == FRAMES
    rgb_stamps = np.array(streams.rgb_stamps)
    assert np.all(np.diff(rgb_stamps) == 50_000_000)                     # 20 fps
    jitter = np.array([m.stamp for m in streams.thermal]) - rgb_stamps
    assert np.abs(jitter).max() <= 4_000_000 and np.abs(jitter).max() > 0
    expected_rgb = cv2.cvtColor(cv2.imread(str(sequence.rgb_frames[0])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(decode_image(first_rgb, IMAGE, "rgb", "t"), expected_rgb)
    expected_thermal = cv2.imread(str(sequence.thermal_frames[0]), cv2.IMREAD_UNCHANGED)
    assert first_thermal.encoding == "mono8"
    assert np.array_equal(decode_image(first_thermal, IMAGE, "thermal", "t"), expected_thermal)
    assert np.allclose(init_box, sequence.init_box)
    gt_rgb, gt_thermal = conv.gt_paths(bag)
    assert np.allclose(read_result_file(gt_rgb), sequence.gt_rgb, atol=1e-4)
    assert np.allclose(read_result_file(gt_thermal), sequence.gt_thermal, atol=1e-4)  # misaligned: own file


def test_make_bag_sqlite3_keeps_16_bit_thermal(tmp_path):
    config = SyntheticConfig(width=64, height=48, n_frames=3, thermal_bits=16)
    generate_sequence(config, seed=2, challenges=(), out_dir=tmp_path, name="hot", layout="rgbt234",
                      keep_frames=False, workers=1)
    sequence = load_sequence(tmp_path / "hot")
    out = make_bag.write_sequence_bag(sequence, tmp_path / "hot_bag", make_bag.BagOptions(storage="sqlite3"))
    assert (out / "hot_bag.db3").is_file()
    with BagReader(out) as reader:
        streams = load_streams(reader)
        msg = reader.deserialize(streams.thermal[2].raw, IMAGE)
    assert msg.encoding == "mono16"
    expected = cv2.imread(str(sequence.thermal_frames[2]), cv2.IMREAD_UNCHANGED)
    assert expected.dtype == np.uint16
    assert np.array_equal(decode_image(msg, IMAGE, "thermal", "t"), expected)


def test_make_bag_refuses_existing_output_and_bad_options(bag, sequence_dir, tmp_path, capsys):
    assert make_bag.main(["--sequence", str(sequence_dir), "--out", str(bag), "--quiet"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert make_bag.main(["--sequence", str(sequence_dir), "--out", str(tmp_path / "b"), "--fps", "10",
                          "--jitter-ms", "60", "--quiet"]) == 2
    assert "--jitter-ms" in capsys.readouterr().err
    assert make_bag.main(["--sequence", str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# --- m5l-eval-bag --------------------------------------------------------------------------------

def test_eval_bag_scores_outputs_bag_against_source_frames(bag, tmp_path, capsys):
    gt = read_result_file(conv.gt_paths(bag)[0])
    with BagReader(bag) as reader:
        stamps = load_streams(reader).rgb_stamps
    skipped = 3
    outputs = [output_from_cdr(tracked_target(s, gt[i]), s + 20_000_000)
               for i, s in enumerate(stamps) if i != skipped]
    outputs_bag = write_outputs_bag(tmp_path / "outs", outputs, custom={conv.META_SOURCE_BAG: str(bag)})
    assert eval_bag.main(["--bag", str(outputs_bag), "--out", str(tmp_path / "res"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "PR 1.000" in printed and "outputs 7  dropped 1" in printed
    assert "p50 20.0 ms" in printed
    results = read_result_file(tmp_path / "res" / "seq.txt")
    assert np.allclose(results[skipped], results[skipped - 1])          # no output: previous box kept
    assert np.allclose(np.delete(results, skipped, 0), np.delete(gt, skipped, 0), atol=1e-3)


def test_predicted_boxes_count_as_boxes_and_are_scored_apart(bag, tmp_path, capsys):
    gt = read_result_file(conv.gt_paths(bag)[0])
    with BagReader(bag) as reader:
        stamps = load_streams(reader).rgb_stamps
    predicted = 3
    boxes = [gt[i] + 40 if i == predicted else gt[i] for i in range(len(stamps))]
    states = [3 if i == predicted else 1 for i in range(len(stamps))]
    outputs = [output_from_cdr(tracked_target(s, boxes[i], states[i]), s + 20_000_000)
               for i, s in enumerate(stamps)]
    outputs_bag = write_outputs_bag(tmp_path / "outs", outputs, custom={conv.META_SOURCE_BAG: str(bag)})
    assert eval_bag.main(["--bag", str(outputs_bag), "--out", str(tmp_path / "res"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "outputs 7  dropped 1" in printed, "a predicted box is not a tracked output"
    assert "predicted boxes for dropped pairs 1; tracked outputs alone: PR 1.000" in printed
    assert "PR 0.875" in printed, "the predicted box, 40 px off, is what frame 3 was given"
    results = read_result_file(tmp_path / "res" / "seq.txt")
    assert np.allclose(results[predicted], gt[predicted] + 40, atol=1e-3)


def _robot_bag(path: Path, gt: np.ndarray) -> Path:
    """Camera-named compressed RGB at 20 Hz, raw thermal at 10 Hz, outputs, in one bag."""
    store = typestore()
    rng = np.random.default_rng(0)
    with bag_writer(path) as writer:
        rgb = writer.add_connection("/camera/color/image_raw/compressed", COMPRESSED_IMAGE, typestore=store)
        thermal = writer.add_connection("/flir_boson/image_raw", IMAGE, typestore=store)
        out = writer.add_connection("/m5l/target_bbox", TRACKED_TARGET, typestore=store)
        for i in range(len(gt)):
            stamp = 1_000_000_000 + i * 50_000_000
            pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            packed = compressed_message(pixels, stamp, "c")
            writer.write(rgb, stamp, store.serialize_cdr(packed, COMPRESSED_IMAGE))
            if i % 2 == 0:
                heat = rng.integers(0, 65535, (48, 64), dtype=np.uint16)
                raw = store.serialize_cdr(image_message(heat, stamp, "t"), IMAGE)
                writer.write(thermal, stamp + 1_000_000, raw)
                writer.write(out, stamp + 30_000_000, tracked_target(stamp, gt[i]))
    return path


def test_eval_bag_on_a_robot_recording_finds_topics_and_counts_pairs(tmp_path, capsys):
    gt = np.array([[10.0 + i, 12.0, 20.0, 16.0] for i in range(10)])
    gt_file = tmp_path / "gt.txt"
    gt_file.write_text("".join(",".join(str(v) for v in row) + "\n" for row in gt))
    robot = _robot_bag(tmp_path / "robot", gt)
    assert eval_bag.main(["--bag", str(robot), "--gt", str(gt_file), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "frames 10  pairs 5  outputs 5  dropped 0" in printed
    assert "p50 30.0 ms" in printed


def test_compressed_images_are_replayed_as_raw_images(tmp_path):
    gt = np.array([[10.0, 12.0, 20.0, 16.0]] * 4)
    with BagReader(_robot_bag(tmp_path / "robot", gt)) as reader:
        streams = load_streams(reader)
        rgb_payloads, thermal_payloads = raw_image_payloads(reader, streams, progress=False)
        packed = reader.deserialize(streams.rgb[1].raw, COMPRESSED_IMAGE)
        assert thermal_payloads[0] == streams.thermal[0].raw            # raw images go out untouched
    raw = typestore().deserialize_cdr(rgb_payloads[1], IMAGE)
    assert raw.encoding == "rgb8" and raw.header.stamp == packed.header.stamp
    expected = decode_image(packed, COMPRESSED_IMAGE, "rgb", "t")
    assert np.array_equal(decode_image(raw, IMAGE, "rgb", "t"), expected)


# --- bad bags ------------------------------------------------------------------------------------

def test_eval_bag_errors_name_the_problem(bag, tmp_path, capsys):
    assert eval_bag.main(["--bag", str(bag), "--quiet"]) == 2       # images, but no outputs
    assert "no m5l_tracker_ros/msg/TrackedTarget topic" in capsys.readouterr().err
    assert eval_bag.main(["--bag", str(tmp_path / "nothing")]) == 2
    assert "no such bag" in capsys.readouterr().err


def test_truncated_bag_is_a_clear_error(bag, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text((bag / "metadata.yaml").read_text())
    data = (bag / "seq_bag.mcap").read_bytes()
    (broken / "seq_bag.mcap").write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="truncated or corrupt"), BagReader(broken) as reader:
        load_streams(reader)


def test_missing_topic_and_unknown_encoding_are_clear_errors(tmp_path):
    store = typestore()
    with bag_writer(tmp_path / "yuv") as writer:
        rgb = writer.add_connection("/rgb/image_raw", IMAGE, typestore=store)
        thermal = writer.add_connection("/thermal/image_raw", IMAGE, typestore=store)
        msg = image_message(np.zeros((8, 8, 3), np.uint8), 5, "x")
        msg.encoding = "yuv422"
        writer.write(rgb, 5, store.serialize_cdr(msg, IMAGE))
        heat = image_message(np.zeros((8, 8), np.uint8), 5, "t")
        writer.write(thermal, 5, store.serialize_cdr(heat, IMAGE))
    with BagReader(tmp_path / "yuv") as reader:
        with pytest.raises(BagError, match="'/nope' is not in the bag"):
            load_streams(reader, rgb_topic="/nope")
        with pytest.raises(BagError, match="yuv422"):
            load_streams(reader)


# --- topic choice, frame matching, stamps ---------------------------------------------------------

def test_topics_found_by_type_and_name():
    topics = {"/cam/color/image_raw": IMAGE, "/cam/color/image_raw/compressed": COMPRESSED_IMAGE,
              "/lwir/image": COMPRESSED_IMAGE, "/imu": "sensor_msgs/msg/Imu", "/out": TRACKED_TARGET}
    chosen = choose_image_topics(topics)
    assert (chosen.rgb, chosen.thermal) == ("/cam/color/image_raw", "/lwir/image")
    assert choose_output_topic(topics) == "/out"
    with pytest.raises(BagError, match="several thermal"):
        choose_image_topics({**topics, "/thermal/image_raw": IMAGE})
    with pytest.raises(BagError, match="--rgb-topic"):
        choose_image_topics({"/a": IMAGE, "/ir/b": IMAGE})
    assert choose_image_topics({"/a": IMAGE, "/ir/b": IMAGE}, rgb="/a").rgb == "/a"
    with pytest.raises(BagError, match="has type sensor_msgs/msg/Imu"):
        choose_image_topics(topics, thermal="/imu")


def test_frames_without_output_keep_the_previous_box():
    outputs = [Output(10, 11, (1, 1, 5, 5), 1, 1.0, 0.0), Output(30, 31, (0, 0, 0, 0), 0, 0.0, 0.0),
               Output(40, 41, (3, 3, 5, 5), 1, 1.0, 0.0)]
    placed = frame_boxes([0, 10, 20, 30, 40], outputs, np.array([9.0, 9, 9, 9]))
    assert placed.boxes[:, 0].tolist() == [9, 1, 1, 1, 3]
    assert placed.output_of.tolist() == [-1, 0, -1, 1, 2]


def test_header_stamp_rewritten_in_place():
    raw = tracked_target(1_700_000_000_123_456_789, (1, 2, 3, 4))
    moved = output_from_cdr(with_stamp(raw, 42_000_000_007), 0)
    assert moved.stamp == 42_000_000_007 and moved.box == (1, 2, 3, 4)


def test_pairing_follows_the_node_rules():
    class Stub:
        def __init__(self, stamps):
            self.rgb = [Output(s, 0, (0, 0, 0, 0), 0, 0, 0) for s in stamps[0]]
            self.thermal = [Output(s, 0, (0, 0, 0, 0), 0, 0, 0) for s in stamps[1]]

    pairs = pair_streams(Stub(([0, 50, 100, 150], [2, 101])), slop_s=0.01, queue_size=10)
    assert pairs == [(0, 0), (2, 1)]
