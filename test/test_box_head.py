"""The box head: map geometry, what it reads near the tracked centre, that training on maps whose
target extent is visible lowers its loss and beats the jittered boxes, and the tool that stores
it with its model and the tracker that uses it for the reported box alone (its size and centre,
never the next frame's search)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_tracking import fast_config, run, synthetic, write_sequences, write_tiny_checkpoint

from m5l_core.models import load_checkpoint
from m5l_core.tracking import load_tracker
from m5l_core.tracking.box_head import BoxHead, BoxRefiner, MapGeometry, box_near, template_of
from m5l_core.tracking.box_head_train import Samples, main, train_head
from m5l_core.tracking.search import SearchRegion


def region() -> SearchRegion:
    return SearchRegion(box=np.array([10.0, 20.0, 200.0, 150.0]), out_size=(160, 120), context=1.2,
                        feature_offset=4.0)


def test_map_coordinates_go_back_to_the_same_frame_boxes():
    geometry = MapGeometry(region(), spatial_scale=1 / 8)
    boxes = np.array([[50.0, 60.0, 40.0, 30.0], [15.0, 25.0, 180.0, 140.0]])
    corners = geometry.to_map(boxes)
    np.testing.assert_allclose(geometry.to_frame(corners), boxes, atol=1e-9)
    # the crop is 0.8 crop pixels per frame pixel and a cell is 8 crop pixels: 40 px -> 4 cells
    np.testing.assert_allclose(corners[0, 2] - corners[0, 0], 4.0)


def test_the_head_round_trips_through_a_checkpoint_and_gives_positive_edges():
    head = BoxHead(16, width=8).eval()
    maps = torch.randn(1, 16, 20, 24)
    template = template_of(maps, MapGeometry(region(), 1 / 8), np.array([50.0, 60.0, 40.0, 30.0]))
    assert template.shape == (1, 16, 5, 5)
    logits, edges = head(maps, template)
    assert logits.shape == (1, 20, 24) and edges.shape == (1, 4, 20, 24) and bool((edges > 0).all())
    again = BoxHead.from_extra(head.to_extra())
    torch.testing.assert_close(again(maps, template)[1], edges)
    assert BoxHead.from_extra({}) is None


def test_the_box_is_read_near_the_tracked_centre_not_at_a_better_cell_far_away():
    logits = torch.full((1, 30, 30), -10.0)
    logits[0, 5, 25] = 10.0          # a look-alike, far from the tracked box
    logits[0, 15, 15] = 2.0          # the tracked target
    boxes = torch.zeros(1, 30, 30, 4)
    boxes[0, 5, 25] = torch.tensor([20.0, 0.0, 30.0, 10.0])
    boxes[0, 15, 15] = torch.tensor([12.0, 10.0, 18.0, 20.0])
    tracked = torch.tensor([[13.0, 12.0, 17.0, 18.0]])
    torch.testing.assert_close(box_near(logits, boxes, tracked), torch.tensor([[12.0, 10.0, 18.0, 20.0]]),
                               atol=0.05, rtol=0)


def test_a_frame_that_reads_as_the_first_did_keeps_its_box_and_the_weight_scales_the_move():
    torch.manual_seed(0)
    head = BoxHead(16, width=8).eval()
    with torch.no_grad():
        head.edges.bias.copy_(torch.log(torch.tensor([6.0, 2.0, 6.0, 2.0])))   # reads 12 x 4 cells
    maps, place = (torch.randn(1, 8, 20, 24), torch.randn(1, 8, 20, 24)), region()
    box = np.array([80.0, 80.0, 50.0, 40.0])
    refiner = BoxRefiner(head, weight=0.5, spatial_scale=1 / 8)
    refiner.start(maps, place, box)
    raw = refiner._read(torch.cat(maps, 1), MapGeometry(place, 1 / 8), box)
    assert not np.allclose(raw[2:], box[2:], rtol=0.1)      # the head alone reads another size here
    np.testing.assert_allclose(refiner.refine(maps, place, box), box, atol=1e-6)
    # a box half as wide as the first one, where the head reads what it read then: half the way back
    narrow = np.array([92.5, 80.0, 25.0, 40.0])
    moved = refiner.refine(maps, place, narrow)
    np.testing.assert_allclose(moved[2], 25.0 * np.sqrt(2.0), rtol=1e-4)
    np.testing.assert_allclose(moved[:2] + moved[2:] / 2, narrow[:2] + narrow[2:] / 2)
    assert not BoxRefiner(head, weight=0.0, spatial_scale=1 / 8).active
    assert BoxRefiner(head, weight=0.0, spatial_scale=1 / 8, centre_weight=0.5).active


class FixedReading(BoxRefiner):
    """A head that reads the target at one place whatever the tracked box: ``truth`` shifted by
    ``bias`` of its sides, as a head that sees part of the target as background would."""

    def __init__(self, truth: np.ndarray, bias: np.ndarray, centre_weight: float, centre_max: float = np.inf):
        super().__init__(BoxHead(4, width=8), weight=0.0, spatial_scale=1 / 8, centre_weight=centre_weight,
                         centre_max=centre_max)
        self.reading = np.concatenate([truth[:2] + bias * truth[2:], truth[2:]])

    def _read(self, maps, geometry, box):
        return self.reading.copy()


def test_the_centre_moves_its_weight_of_the_way_to_the_head_less_the_first_frames_shift():
    truth, bias = np.array([100.0, 90.0, 40.0, 80.0]), np.array([0.1, -0.2])
    maps, place = (torch.randn(1, 2, 20, 24), torch.randn(1, 2, 20, 24)), region()
    refiner = FixedReading(truth, bias, centre_weight=0.5)
    refiner.start(maps, place, truth)
    np.testing.assert_allclose(refiner.refine(maps, place, truth), truth, atol=1e-9)
    # the tracked box 12 px left and 20 px below the target: half the way back, size kept
    off = truth + np.array([-12.0, 20.0, 0.0, 0.0])
    np.testing.assert_allclose(refiner.refine(maps, place, off), truth + np.array([-6.0, 10.0, 0.0, 0.0]),
                               atol=1e-9)
    # a reading 1.5 box widths away (a look-alike beside the target) is held at 0.2 widths: 4 px
    held = FixedReading(truth, bias, centre_weight=0.5, centre_max=0.2)
    held.start(maps, place, truth)
    far = truth + np.array([60.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(held.refine(maps, place, far), far - np.array([4.0, 0.0, 0.0, 0.0]), atol=1e-9)
    still = FixedReading(truth, bias, centre_weight=0.0)
    still.start(maps, place, truth)
    np.testing.assert_allclose(still.refine(maps, place, off), off, atol=1e-9)


def visible_extent_samples(n_sequences: int, per_sequence: int, seed: int) -> Samples:
    """Maps whose first channels are 1 inside the true box (the rest noise), so the extent can be read."""
    rng = np.random.default_rng(seed)
    samples = Samples()
    for index in range(n_sequences):
        marker = torch.zeros(8, 5, 5)
        marker[:4] = 1.0
        samples.templates.append(marker)
        for _ in range(per_sequence):
            centre = rng.uniform(9, 15, 2)
            half = rng.uniform(2.0, 6.0, 2)
            truth = np.concatenate([centre - half, centre + half])
            maps = torch.from_numpy(rng.normal(0.0, 0.3, (8, 24, 24))).float()
            ys, xs = np.mgrid[0:24, 0:24]
            inside = (xs >= truth[0]) & (xs <= truth[2]) & (ys >= truth[1]) & (ys <= truth[3])
            maps[:4, torch.from_numpy(inside)] += 1.0
            # the tracker's box: the right centre, a wrong size
            shrunk = half * rng.uniform(0.5, 0.8, 2)
            wrong = np.concatenate([centre - shrunk, centre + shrunk])
            samples.maps.append(maps.half())
            samples.truth.append(torch.from_numpy(truth).float())
            samples.jittered.append(torch.from_numpy(wrong).float())
            samples.sequence.append(index)
    return samples


def test_training_on_maps_with_a_visible_extent_beats_the_jittered_boxes():
    torch.manual_seed(0)
    head, report = train_head(visible_extent_samples(10, 12, seed=0), steps=150, batch=8, validation=0.3,
                              width=16, seed=0)
    assert report["last_loss"] < report["first_loss"]
    iou = report["held_out_iou"]
    assert iou["head_size_at_its_centre"] > iou["jittered_box"] + 0.1, iou


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    return write_sequences(tmp_path_factory.mktemp("head_data"), count=3, n_frames=5)


def test_the_tool_writes_the_model_with_its_head_and_the_tracker_moves_only_the_reported_box(
        sequences, tmp_path, capsys):
    source, out = tmp_path / "tiny.pt", tmp_path / "with_head.pt"
    write_tiny_checkpoint(source)
    assert main(["--checkpoint", str(source), "--data", str(sequences), "--out", str(out), "--every", "1",
                 "--steps", "3", "--batch", "2", "--width", "8", "--validation", "0.34"]) == 0
    assert "held-out mean IoU" in capsys.readouterr().out
    original, _, _ = load_checkpoint(source)
    model, _, extra = load_checkpoint(out)
    for name, tensor in original.state_dict().items():           # the model itself is unchanged
        torch.testing.assert_close(model.state_dict()[name], tensor)
    # one device for all three: on a GPU machine "auto" is CUDA, whose float sums differ from the CPU's
    on_cpu = lambda path, config: load_tracker(path, config, device="cpu", seed=0)  # noqa: E731
    with_head = on_cpu(out, fast_config())
    assert with_head.box_head is not None and on_cpu(source, fast_config()).box_head is None
    sequence = synthetic(n_frames=6)
    boxes = lambda results: np.stack([r.box for r in results])  # noqa: E731
    moved = run(with_head, sequence)
    sized = boxes(run(on_cpu(out, fast_config(bbreg={"head_centre_weight": 0.0})), sequence))
    head_off = fast_config(bbreg={"head_weight": 0.0, "head_centre_weight": 0.0})
    off = boxes(run(on_cpu(out, head_off), sequence))
    plain = run(on_cpu(source, fast_config()), sequence)
    np.testing.assert_array_equal(off, boxes(plain))
    centre = lambda b: b[:, :2] + b[:, 2:] / 2  # noqa: E731
    np.testing.assert_allclose(centre(sized), centre(boxes(plain)), atol=1e-6)
    assert not np.allclose(sized[:, 2:], boxes(plain)[:, 2:])
    assert not np.allclose(centre(boxes(moved)), centre(sized))
    np.testing.assert_allclose(boxes(moved)[:, 2:], sized[:, 2:], rtol=1e-6)
    # the next frame's candidates never moved: every frame scored as without the head
    np.testing.assert_array_equal([r.score for r in moved], [r.score for r in plain])


def test_missing_data_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    source = tmp_path / "tiny.pt"
    write_tiny_checkpoint(source)
    assert main(["--checkpoint", str(source), "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "out.pt")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()
