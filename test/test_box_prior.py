"""The box prior: a box regressor learnt offline on many objects, stored with its model, and the
tracker's box size mixing it with the first-frame regressor's; and what the first-frame
regressor's penalty may change (the reported box only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_tracking import fast_config, run, synthetic, write_sequences, write_tiny_checkpoint

from m5l_core.models import load_checkpoint
from m5l_core.tracking import load_tracker
from m5l_core.tracking.bbreg import BoxPrior, BoxRegressor, offsets
from m5l_core.tracking.box_prior import main


def test_fit_recovers_a_linear_map_and_survives_the_checkpoint_round_trip():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 6, generator=generator)
    truth = torch.randn(6, 4, generator=generator)
    y = x @ truth + torch.tensor([0.1, -0.2, 0.3, 0.0])
    prior = BoxPrior.fit(x, y, alpha=1e-3)
    torch.testing.assert_close(prior.offsets(x), y, atol=1e-3, rtol=1e-3)
    again = BoxPrior.from_extra(prior.to_extra())
    torch.testing.assert_close(again.offsets(x), prior.offsets(x))
    assert BoxPrior.from_extra({}) is None


def test_the_prior_moves_the_size_by_its_weight_and_leaves_the_centre_to_the_first_frame():
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.normal(size=(200, 5))).float()
    truth = np.array([50.0, 40.0, 20.0, 30.0])
    boxes = truth + rng.normal(scale=3.0, size=(200, 4))
    # a prior that always says: twice as wide, same height
    constant = BoxPrior(torch.zeros(5), torch.zeros(5, 4), torch.tensor([0.0, 0.0, np.log(2.0), 0.0]))
    plain, mixed = BoxRegressor(10.0), BoxRegressor(10.0, constant, prior_size_weight=0.25)
    for regressor in (plain, mixed):
        regressor.fit(features, boxes, truth)
    first, both = plain.predict(features[:4], boxes[:4]), mixed.predict(features[:4], boxes[:4])
    centre = lambda b: b[:, :2] + b[:, 2:] / 2  # noqa: E731
    np.testing.assert_allclose(centre(both), centre(first), atol=1e-4)
    expected = 0.75 * offsets(boxes[:4], first)[:, 2:] + 0.25 * np.array([np.log(2.0), 0.0])
    np.testing.assert_allclose(np.log(both[:, 2:] / boxes[:4, 2:]), expected, atol=1e-4)
    assert BoxRegressor(10.0, constant, prior_size_weight=0.0).prior is None


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    return write_sequences(tmp_path_factory.mktemp("prior_data"), count=3, n_frames=4)


def test_the_tool_writes_the_model_with_its_prior_and_the_tracker_uses_it(sequences, tmp_path, capsys):
    source, out = tmp_path / "tiny.pt", tmp_path / "with_prior.pt"
    write_tiny_checkpoint(source)
    assert main(["--checkpoint", str(source), "--data", str(sequences), "--out", str(out), "--frames", "2",
                 "--boxes", "8", "--validation", "1", "--alpha", "10", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "held-out mean |offset error|" in printed
    original, _, _ = load_checkpoint(source)
    model, _, extra = load_checkpoint(out)
    for name, tensor in original.state_dict().items():           # the model itself is unchanged
        torch.testing.assert_close(model.state_dict()[name], tensor)
    stored = extra["box_prior"]
    assert stored["weights"].shape == (stored["feature_mean"].shape[0], 4)
    with_prior = load_tracker(out, fast_config(), device="cpu", seed=0)
    without = load_tracker(source, fast_config(), device="cpu", seed=0)
    assert with_prior.box_prior is not None and without.box_prior is None
    sequence = synthetic(n_frames=4)
    assert len(run(with_prior, sequence)) == 3
    off = load_tracker(out, fast_config(bbreg={"prior_size_weight": 0.0}), device="cpu", seed=0)
    np.testing.assert_array_equal(np.stack([r.box for r in run(off, sequence)]),
                                  np.stack([r.box for r in run(without, sequence)]))


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    source = tmp_path / "tiny.pt"
    write_tiny_checkpoint(source)
    assert main(["--checkpoint", str(source), "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "out.pt"), "--device", "cpu"]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


def test_the_regressed_box_is_only_reported_so_the_penalty_never_moves_the_search(tmp_path):
    """The next frame searches around the unregressed top-k mean (RT-MDNet), so two penalties give
    the same crops frame by frame and differ only in the boxes they report (README, "The box
    regressor's penalty": one tracking run scores every penalty)."""
    source = tmp_path / "tiny.pt"
    write_tiny_checkpoint(source)
    sequence = synthetic(n_frames=8)
    crops, reported = {}, {}
    for alpha in (1000.0, 30000.0):
        tracker = load_tracker(source, fast_config(bbreg={"alpha": alpha}), device="cpu", seed=0)
        tracker.initialize(sequence.rgb[0], sequence.thermal[0], sequence.gt_rgb[0])
        crops[alpha], reported[alpha] = [], []
        for index in range(1, len(sequence)):
            result = tracker.track(sequence.rgb[index], sequence.thermal[index])
            crops[alpha].append(tracker.last_region.box.copy())
            reported[alpha].append(result.box if result.success else None)
    np.testing.assert_array_equal(np.stack(crops[1000.0]), np.stack(crops[30000.0]))
    regressed = [i for i, box in enumerate(reported[1000.0]) if box is not None]
    assert regressed, "no successful frame: nothing was regressed"
    assert all(reported[30000.0][i] is not None for i in regressed)
    assert not np.allclose(np.stack([reported[1000.0][i] for i in regressed]),
                           np.stack([reported[30000.0][i] for i in regressed]))
