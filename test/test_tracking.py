"""The online tracker behind the one tracker API, with a real (tiny, random) network.

test_runner.py and test_bench.py import the helpers defined here (tiny checkpoint, fast
tracker settings, short synthetic sequences).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from m5l_core.config import describe, from_dict
from m5l_core.datasets.synthetic import SyntheticConfig, generate_sequence
from m5l_core.geometry import centers, overlap_ratio
from m5l_core.models import CheckpointError, M5LNet, ModelConfig, save_checkpoint
from m5l_core.sampling import SampleGenerator, inner_boxes
from m5l_core.tracking import M5LTracker, TrackerConfig, TrackerError, TrackResult, TrackState, load_tracker
from m5l_core.tracking.config import OnlineOptimConfig
from m5l_core.tracking.online import OnlineClassifier, drop_modalities
from m5l_core.tracking.runtime import resolve_input_multiple
from m5l_core.tracking.search import top_candidates

# Few samples and iterations, larger steps and a small crop scale: the full procedure, only cheaper.
FAST_SETTINGS = {
    "search": {"n_candidates": 64, "target_size": 48},
    "init": {"n_pos": 50, "n_neg": 200, "n_inner_neg": 20, "iterations": 20, "lr": 1e-3},
    "update": {"n_pos": 20, "n_neg": 50, "n_inner_neg": 5, "iterations": 3, "lr": 1e-3},
    "optim": {"neg_candidates": 128},
    "bbreg": {"n_samples": 100},
}
TINY_MODEL = {"fc_dim": 64, "use_embedding": False}


def fast_config(**sections) -> TrackerConfig:
    data = {key: dict(value) for key, value in FAST_SETTINGS.items()}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return from_dict(TrackerConfig, data)


def tiny_model(seed: int = 0) -> tuple[M5LNet, ModelConfig]:
    torch.manual_seed(seed)
    config = from_dict(ModelConfig, TINY_MODEL)
    return M5LNet(config, 1), config


def write_tiny_checkpoint(path) -> None:
    model, config = tiny_model()
    save_checkpoint(path, model, config)


def synthetic(n_frames: int = 16, seed: int = 3, width: int = 320, height: int = 240, challenges=(), **extra):
    config = SyntheticConfig(width=width, height=height, n_frames=n_frames, **extra)
    return generate_sequence(config, seed=seed, challenges=challenges)


def write_sequences(root, count: int, n_frames: int):
    """``count`` small clean synthetic sequences in the RGBT234 layout under ``root`` (with list.txt)."""
    names = [f"seq{index}" for index in range(count)]
    for index, name in enumerate(names):
        config = SyntheticConfig(width=160, height=120, n_frames=n_frames)
        generate_sequence(config, seed=index, challenges=(), out_dir=root, name=name, layout="rgbt234",
                          keep_frames=False, workers=1)
    (root / "list.txt").write_text("".join(f"{name}\n" for name in names))
    return root


def run(tracker, sequence, thermal=None, frames: int | None = None) -> list[TrackResult]:
    """Initialise on frame 0 and track the next ``frames`` frames (all by default)."""
    thermal = sequence.thermal if thermal is None else thermal
    last = len(sequence) if frames is None else frames + 1
    tracker.initialize(sequence.rgb[0], thermal[0], sequence.gt_rgb[0])
    return [tracker.track(sequence.rgb[i], thermal[i]) for i in range(1, last)]


def centre_errors(results, gt) -> np.ndarray:
    boxes = np.stack([r.box for r in results])
    return np.linalg.norm(centers(boxes) - centers(gt[1:len(results) + 1]), axis=1)


@pytest.fixture(scope="module")
def sequence():
    return synthetic(n_frames=12, speed_range=(3.0, 5.0))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    write_tiny_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def first_run(checkpoint, sequence):
    tracker = load_tracker(checkpoint, fast_config(), device="cpu", seed=0)
    return tracker, run(tracker, sequence)


def test_box_follows_moving_target(first_run, sequence):
    _, results = first_run
    gt = sequence.gt_rgb
    travelled = np.linalg.norm(centers(gt[-1]) - centers(gt[0]))
    errors = centre_errors(results, gt)
    assert travelled > 25, "the synthetic target must actually move for this test to mean anything"
    assert np.median(errors) < 10
    assert overlap_ratio(results[-1].box, gt[-1]) > 0.4
    last = results[-1]
    assert last.box.shape == (4,) and np.all(np.isfinite(last.box))
    assert isinstance(last.score, float) and isinstance(last.success, bool)
    assert 0 < last.rgb_weight <= 1 and 0 < last.thermal_weight <= 1
    assert {"preprocess", "features", "scoring", "bbreg", "collect", "update", "total"} <= set(last.timings)


def test_deterministic_for_a_seed_and_reinitialising_starts_afresh(first_run, sequence):
    tracker, results = first_run
    expected = np.stack([r.box for r in results[:5]])
    again = np.stack([r.box for r in run(tracker, sequence, frames=5)])   # weights changed online since
    np.testing.assert_array_equal(expected, again)
    model, config = tiny_model()
    fresh = M5LTracker(model, config, tracker.config, "cpu", seed=0)
    np.testing.assert_array_equal(expected, np.stack([r.box for r in run(fresh, sequence, frames=5)]))
    other = M5LTracker(model, config, tracker.config, "cpu", seed=1)
    assert not np.array_equal(expected, np.stack([r.box for r in run(other, sequence, frames=5)]))


def test_failure_widens_the_search_and_runs_short_term_updates(checkpoint, sequence, first_run):
    normal, _ = first_run
    # RT-MDNet's plain threshold: every score below 99 is a failure (failure.py calibrates it)
    failing = load_tracker(checkpoint, fast_config(search={"success_threshold": 99.0},
                                                   failure={"calibrated": False}), device="cpu", seed=0)
    results = run(failing, sequence, frames=4)
    assert not any(r.success for r in results)
    assert results[-1].state is TrackState.LOST
    # nothing is collected from failed frames: after the first, an update would repeat the last one
    assert failing.counters["failures"] == 4
    assert failing.counters["short_term_updates"] == 1 and failing.counters["updates_skipped"] == 3
    assert failing.counters["long_term_updates"] == 0
    assert failing.search_spread == failing.config.search.trans_expanded == 1.4
    assert normal.counters["failures"] < normal.counters["frames"]
    rtmdnet = load_tracker(checkpoint, fast_config(search={"success_threshold": 99.0},
                                                   failure={"calibrated": False},
                                                   update={"skip_unchanged": False}), device="cpu", seed=0)
    run(rtmdnet, sequence, frames=4)
    assert rtmdnet.counters["short_term_updates"] == 4 and rtmdnet.counters["updates_skipped"] == 0


def test_inputs_padded_for_cuda_keep_every_box_where_it_was(checkpoint, sequence, first_run):
    """CUDA pads each crop to a multiple of 32 px (cuDNN then plans a few shapes, not one per
    frame); the pad lies below and right of the crop, so pixel coordinates and RoIs stay put."""
    assert resolve_input_multiple(torch.device("cuda"), 0) == 32
    assert resolve_input_multiple(torch.device("cpu"), 0) == 1
    assert resolve_input_multiple(torch.device("cpu"), 16) == 16
    padded = load_tracker(checkpoint, fast_config(runtime={"input_multiple": 32}), device="cpu", seed=0)
    results = run(padded, sequence)
    plain = np.stack([r.box for r in first_run[1]])
    assert overlap_ratio(np.stack([r.box for r in results]), plain).mean() > 0.9
    assert overlap_ratio(np.stack([r.box for r in results]), sequence.gt_rgb[1:]).mean() > 0.5


def test_fused_convs_switch_reaches_the_trunk_and_changes_no_box(sequence):
    """``runtime.fused_convs`` (one oneDNN call per conv + ReLU6 on the CPU) is a speed switch only:
    a Lite0 tracker places the same boxes with it on and off."""
    config = ModelConfig(backbone="effnet_lite0", fc_dim=64, use_embedding=False)
    boxes = {}
    for fused in (True, False):
        torch.manual_seed(0)
        tracker = M5LTracker(M5LNet(config, 1), config, fast_config(runtime={"fused_convs": fused}), seed=0)
        assert tracker.model.rgb_stream.fused is fused and tracker.model.rgb_stream.blocks[-1].fused is fused
        boxes[fused] = np.stack([r.box for r in run(tracker, sequence, frames=4)])
    np.testing.assert_allclose(boxes[True], boxes[False], atol=1e-3)


def test_a_tracker_told_so_starts_its_fc6_from_the_domain_heads(sequence):
    """``init.head_from_domains``: before any online step the new target's fc6 is the mean of the
    checkpoint's domain heads; by default it is MDNet's random one."""
    model, config = tiny_model()
    with torch.no_grad():
        model.domain_heads[0].weight.fill_(0.5)
        model.domain_heads[0].bias.copy_(torch.tensor([-1.0, 1.0]))
    for from_domains in (True, False):
        init = {"iterations": 0, "quick_iterations": 0, "head_from_domains": from_domains}   # no learning
        tracker = M5LTracker(model, config, fast_config(init=init))
        tracker.initialize(sequence.rgb[0], sequence.thermal[0], sequence.gt_rgb[0])
        head = tracker.classifier.head
        assert torch.allclose(head.weight, torch.full_like(head.weight, 0.5)) is from_domains
        assert torch.equal(head.bias, torch.tensor([-1.0, 1.0])) is from_domains


def test_the_top_k_can_be_kept_to_the_best_candidates_neighbourhood():
    """Two look-alikes score high: the plain top-k mixes them (the mean box lies between them),
    with ``top_k_overlap`` it keeps to the best candidate's neighbours."""
    target = np.array([[100.0, 100, 30, 90], [102, 101, 30, 90], [99, 98, 31, 92]])
    passer = np.array([[160.0, 100, 30, 90], [158, 102, 30, 90]])
    candidates = np.concatenate([target, passer])
    scores = torch.tensor([3.0, 1.0, 0.5, 2.0, 1.5])
    plain = top_candidates(scores, candidates, k=3).tolist()
    assert plain == [0, 3, 4]
    near = top_candidates(scores, candidates, k=3, min_overlap=0.5).tolist()
    assert near == [0, 1, 2]
    assert abs(candidates[near].mean(axis=0)[0] - 100.3) < 0.1


def test_mono16_thermal_of_another_size_is_registered(checkpoint):
    sequence = synthetic(n_frames=8, seed=5, thermal_bits=16)
    assert sequence.thermal[0].dtype == np.uint16
    # A half-resolution single-channel thermal camera: the default rule fits it to the RGB frame.
    small = [t[::2, ::2, None] for t in sequence.thermal]
    tracker = load_tracker(checkpoint, fast_config(), device="cpu", seed=0)
    results = run(tracker, sequence, thermal=small)
    assert np.median(centre_errors(results, sequence.gt_rgb)) < 10
    # Boxes are in RGB pixels whatever the thermal size.
    assert all(r.box[0] + r.box[2] / 2 < 320 and r.box[1] + r.box[3] / 2 < 240 for r in results)


def test_explicit_thermal_registration_is_used(checkpoint):
    sequence = synthetic(n_frames=3, seed=5)
    shifted = [np.roll(t, (0, -20), axis=(0, 1)) for t in sequence.thermal]
    config = fast_config(preprocess={"thermal_offset": (20.0, 0.0)})
    tracker = load_tracker(checkpoint, config, device="cpu", seed=0)
    results = run(tracker, sequence, thermal=shifted)
    assert len(results) == 2 and np.all(np.isfinite(results[-1].box))


def test_corrupt_and_mismatched_checkpoints_name_the_file(tmp_path, checkpoint):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(checkpoint.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt.pt"):
        load_tracker(corrupt, device="cpu")
    model, config = tiny_model()
    mismatched = tmp_path / "mismatched.pt"
    wrong = from_dict(ModelConfig, {**TINY_MODEL, "fc_dim": 32})
    save_checkpoint(mismatched, model, wrong)
    with pytest.raises(CheckpointError, match="mismatched.pt"):
        load_tracker(mismatched, device="cpu")
    with pytest.raises(CheckpointError, match="not found"):
        load_tracker(tmp_path / "absent.pt", device="cpu")


def test_misuse_is_a_clear_error(checkpoint, sequence):
    tracker = load_tracker(checkpoint, fast_config(), device="cpu")
    with pytest.raises(TrackerError, match="before initialize"):
        tracker.track(sequence.rgb[0], sequence.thermal[0])
    for bad in ([0, 0, 0, 10], [1, 2, 3], [5000, 5000, 10, 10], [np.nan, 0, 5, 5]):
        with pytest.raises(TrackerError):
            tracker.initialize(sequence.rgb[0], sequence.thermal[0], bad)



def test_inner_negatives_lie_inside_the_target_below_the_negative_overlap():
    target = np.array([40.0, 30.0, 60.0, 20.0])
    boxes = inner_boxes(target, 500, np.random.default_rng(0), (0.3, 0.5))
    assert np.all(boxes[:, :2] >= target[:2])
    assert np.all(boxes[:, :2] + boxes[:, 2:] <= target[:2] + target[2:])
    np.testing.assert_allclose(boxes[:, 2] / boxes[:, 3], 3.0)   # the target's aspect
    np.testing.assert_allclose(overlap_ratio(boxes, target), (boxes[:, 2] / 60.0) ** 2)
    assert overlap_ratio(boxes, target).min() >= 0.09 and overlap_ratio(boxes, target).max() <= 0.25
    with pytest.raises(ValueError, match="inner box scales"):
        inner_boxes(target, 1, np.random.default_rng(0), (0.5, 1.2))


@pytest.mark.parametrize("kind, trans, scale", [("gaussian", 0.1, 1.2), ("uniform", 0.3, 1.5)])
def test_a_target_thinner_than_rt_mdnets_10_px_floor_still_gets_positive_samples(kind, trans, scale):
    """A 6 x 25 px target: every sample clipped to 10 px wide would overlap it by 0.6 at most."""
    rng = np.random.default_rng(0)
    thin = np.array([300.0, 200.0, 6.0, 25.0])
    positives = SampleGenerator(kind, (640, 480), trans, scale).sample(thin, 200, rng, (0.7, 1.0))
    assert len(positives) == 200 and positives[:, 2].min() >= 3.0
    wide = np.array([300.0, 200.0, 20.0, 60.0])         # sides of 20 px and more keep RT-MDNet's floor
    assert SampleGenerator(kind, (640, 480), trans, 3.0).draw(wide, 500, rng)[:, 2].min() == 10.0


def test_inner_negatives_join_the_first_frame_and_every_frames_negatives(checkpoint, sequence, monkeypatch):
    import m5l_core.tracking.tracker as tracker_module

    drawn = []

    def recording(box, n, rng, scale_range):
        boxes = inner_boxes(box, n, rng, scale_range)
        drawn.append(boxes)
        return boxes

    monkeypatch.setattr(tracker_module, "inner_boxes", recording)
    every_frame = {"search": {"success_threshold": -100.0}, "failure": {"calibrated": False}}   # learn all
    config = fast_config(init={"n_inner_neg": 40, "neg_iou_max": 0.2}, update={"n_inner_neg": 7},
                         **every_frame)
    tracker = load_tracker(checkpoint, config, device="cpu", seed=0)
    run(tracker, sequence, frames=3)
    assert [len(boxes) for boxes in drawn] == [40, 7, 7, 7]
    # first-frame sides capped so that the IoU stays below its neg_iou_max (0.2 here)
    assert drawn[0][:, 2].max() / sequence.gt_rgb[0][2] <= np.sqrt(0.2) + 1e-9
    per_frame = [len(f) for f in tracker._neg_memory._frames]
    assert len(per_frame) == 4 and min(per_frame[1:]) >= 7


def test_an_sgd_step_trains_with_dropout_and_leaves_every_module_in_evaluation_mode():
    model, _ = tiny_model()
    model.eval()
    classifier = OnlineClassifier(model, model.new_head(), OnlineOptimConfig(batch_neg=4))
    modes = []
    model.dropout.register_forward_hook(lambda module, *_: modes.append(module.training))
    fused = torch.randn(12, model.fc4.in_features)
    classifier.sgd_step(classifier.optimizer(1e-3), fused[:4], fused[4:])
    # dropout follows fc4 and fc5: twice while mining the hard negatives (off), twice in the step (on)
    assert modes == [False, False, True, True]
    assert not any(module.training for module in model.modules())
    before = classifier.scores(fused)
    torch.testing.assert_close(classifier.scores(fused), before)   # scoring is deterministic


def test_modality_dropout_zeroes_one_half_of_the_dropped_rows():
    torch.manual_seed(0)
    fused = torch.rand(4000, 10) + 1.0
    out = drop_modalities(fused, 0.5).view(-1, 2, 5)
    zeroed = (out == 0).all(dim=2)                     # (rows, modality)
    assert not zeroed.all(dim=1).any()                 # never both modalities
    rgb_only, thermal_only = zeroed[:, 1].float().mean(), zeroed[:, 0].float().mean()
    assert 0.2 < rgb_only < 0.3 and 0.2 < thermal_only < 0.3
    kept = ~zeroed
    assert torch.equal(out[kept], fused.view(-1, 2, 5)[kept])


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_with_modality_dropout_the_weaker_modality_alone_separates_target_from_background(share):
    model, _ = tiny_model()
    model.eval()
    classifier = OnlineClassifier(model, model.new_head(),
                                  OnlineOptimConfig(batch_pos=16, batch_neg=16, modality_dropout=share))
    half = model.fc4.in_features // 2
    pattern = torch.randn(2, half)

    def samples(n: int, label: int) -> torch.Tensor:
        """RGB half barely apart, thermal half far apart (a classifier can lean on thermal alone)."""
        sign = 1.0 if label else -1.0
        return torch.cat([sign * 0.2 * pattern[0] + 0.5 * torch.randn(n, half),
                          sign * 2.0 * pattern[1] + 0.5 * torch.randn(n, half)], dim=1)

    classifier.train(classifier.optimizer(1e-3), samples(64, 1), samples(64, 0), 30, np.random.default_rng(0))

    def rgb_alone(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :half], torch.zeros_like(x[:, half:])], dim=1)

    pos, neg = samples(200, 1), samples(200, 0)
    assert (classifier.scores(pos) > 0).all() and (classifier.scores(neg) < 0).all()
    pos_rgb_alone = (classifier.scores(rgb_alone(pos)) > 0).float().mean()
    if share:
        assert pos_rgb_alone > 0.95 and (classifier.scores(rgb_alone(neg)) < 0).float().mean() > 0.95
    else:   # the reason for modality dropout: without it, thermal carries the decision
        assert pos_rgb_alone < 0.5


def test_every_setting_is_described_for_ros_parameters():
    rows = dict(describe(TrackerConfig))
    assert rows["search.n_candidates"]["default"] == 256
    assert rows["update.long_term_interval"]["default"] == 10
    for name, meta in rows.items():
        assert meta["help"], name
        if meta["type"] in (int, float):
            assert meta["low"] is not None and meta["high"] is not None, name


def test_tracking_scale_follows_the_checkpoints_training_crops(tmp_path):
    from m5l_core.tracking.loading import config_for_checkpoint

    trained = {"train_config": {"sampling": {"target_size": 48.0}}}
    assert config_for_checkpoint(TrackerConfig(), trained).search.target_size == 48
    explicit = fast_config(search={"target_size": 64})
    assert config_for_checkpoint(explicit, trained).search.target_size == 64
    model, config = tiny_model()
    untold = M5LTracker(model, config, config_for_checkpoint(None, {}), "cpu")
    assert untold.target_size == 107   # RT-MDNet's scale when nothing says otherwise


@pytest.mark.parametrize("stretch", [1.0, 0.5, 0.0])
def test_search_crop_stretches_a_thin_target_as_far_as_crop_stretch_says(checkpoint, sequence, stretch):
    tracker = load_tracker(checkpoint, fast_config(search={"crop_stretch": stretch}), device="cpu", seed=0)
    thin = np.array([140.0, 60.0, 12.0, 108.0])                       # 1 : 9
    tracker.initialize(sequence.rgb[0], sequence.thermal[0], thin)
    tracker.track(sequence.rgb[1], sequence.thermal[1])
    region = tracker.last_region
    per_pixel = np.array(region.out_size) / region.box[2:]             # crop pixels per frame pixel
    # The target's side ratio in the crop is 9 ** (1 - stretch): square when stretched fully.
    target_in_crop = per_pixel * thin[2:]
    np.testing.assert_allclose(target_in_crop[1] / target_in_crop[0], 9.0 ** (1.0 - stretch), rtol=0.05)
    np.testing.assert_allclose(np.sqrt(np.prod(target_in_crop)), tracker.target_size, rtol=0.05)

