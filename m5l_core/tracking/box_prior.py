"""``python -m m5l_core.tracking.box_prior``: learn a model's box prior offline, store it in its checkpoint.

    m5l-mix --config config/train_real.yaml --out runs/prior_mix --set photo_motion.sequences=80 ...
    python -m m5l_core.tracking.box_prior --data runs/prior_mix --out m5l_core/assets/default_model.pt

The first-frame box regressor (RT-MDNet) sees one view of its target, and on real video its sizes
lean to that view. The prior is the same kind of regressor (ridge, offsets to the true box from
the model's fused RoI features) learnt once on many objects: boxes drawn around the true box of
``--frames`` frames of every sequence in ``--data`` (RGBT234 layout, e.g. a mix of COCO photos and
pasted objects from ``m5l-mix``), cropped as the tracker crops them. The last ``--validation``
sequences are held out and its error there is printed against always predicting the mean offset.
The tracker mixes the prior's size offsets with the first frame's (``bbreg.prior_size_weight``).
The features belong to one model, so the prior is written into a copy of that model's checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from m5l_core.cli_errors import run_cli
from m5l_core.config import ConfigError
from m5l_core.datasets import DatasetError, load_benchmark
from m5l_core.datasets.frames import read_frame
from m5l_core.models import CheckpointError, load_checkpoint, save_checkpoint
from m5l_core.models.checkpoint import read_checkpoint
from m5l_core.preprocess import prepare_pair
from m5l_core.sampling import SampleGenerator
from m5l_core.tracking.bbreg import BoxPrior, offsets
from m5l_core.tracking.first_frame import SAMPLE_ASPECT
from m5l_core.tracking.loading import checkpoint_path, load_tracker
from m5l_core.tracking.tracker import M5LTracker

MIN_SIDE = 8.0      # true boxes smaller than this (pixels) teach nothing about extents


def box_features(tracker: M5LTracker, rgb: np.ndarray, thermal: np.ndarray, around: np.ndarray,
                 boxes: np.ndarray) -> torch.Tensor:
    """``(N, D)`` fused RoI features of ``boxes``, cropped as a frame tracked at ``around`` is
    (what the box regressors see); the tracker's state is left as it was."""
    rgb, thermal = prepare_pair(rgb, thermal, tracker.config.preprocess)
    around = np.asarray(around, dtype=np.float64)
    region = tracker._region(np.concatenate([boxes, around[None]]), target_wh=around[2:])
    feats = tracker.network.frame_features(rgb, thermal, region)
    return tracker.network.pool_chunked(feats, region, boxes).float()


def box_samples(tracker: M5LTracker, sequences, frames: int, boxes: int, min_iou: float,
                rng: np.random.Generator, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and offsets of ``boxes`` boxes around the true box of ``frames`` frames per sequence."""
    bb = tracker.config.bbreg
    features, targets = [], []
    for sequence in tqdm(sequences, desc=desc, unit="seq"):
        for index in np.unique(np.linspace(0, len(sequence.gt_rgb) - 1, frames).astype(int)):
            truth = np.asarray(sequence.gt_rgb[index], dtype=np.float64)
            if min(truth[2:]) < MIN_SIDE:
                continue
            rgb = read_frame(sequence.rgb_frames[index], thermal=False)
            thermal = read_frame(sequence.thermal_frames[index], thermal=True)
            generator = SampleGenerator("uniform", (rgb.shape[1], rgb.shape[0]), bb.trans, bb.scale,
                                        aspect=SAMPLE_ASPECT)
            drawn = generator.sample(truth, boxes, rng, (min_iou, 1.0))
            if len(drawn):
                with torch.no_grad():
                    features.append(box_features(tracker, rgb, thermal, truth, drawn).cpu())
                targets.append(torch.from_numpy(offsets(drawn, truth[None])))
    if not features:
        raise DatasetError(f"no usable frames for the box prior ({desc}): every true box under {MIN_SIDE} px")
    return torch.cat(features), torch.cat(targets)


def learn_box_prior(checkpoint: str | None, data: Path, out: Path, alpha: float, frames: int, boxes: int,
                    min_iou: float, validation: int, seed: int, device: str) -> dict:
    source = checkpoint_path(checkpoint)
    tracker = load_tracker(source, device=device, seed=seed)
    sequences = list(load_benchmark("rgbt234", root=data, require_images=True))
    if len(sequences) <= validation:
        raise DatasetError(f"{data}: {len(sequences)} sequences, need more than --validation {validation}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sequences))
    train = [sequences[i] for i in order[:len(sequences) - validation]]
    held_out = [sequences[i] for i in order[len(sequences) - validation:]]
    x, y = box_samples(tracker, train, frames, boxes, min_iou, rng, "training boxes")
    prior = BoxPrior.fit(x, y, alpha)
    report = {"boxes": len(x), "alpha": alpha}
    if held_out:
        xv, yv = box_samples(tracker, held_out, frames, boxes, min_iou, rng, "held-out boxes")
        error = (prior.offsets(xv.to(prior.weights.device)).cpu() - yv).abs().mean(dim=0)
        baseline = (yv - y.mean(dim=0)).abs().mean(dim=0)
        report.update(validation_boxes=len(xv), error=error.tolist(), mean_offset_error=baseline.tolist())
    model, model_config, extra = load_checkpoint(source)
    half = read_checkpoint(source).get("dtype") == "float16"
    save_checkpoint(out, model, model_config, {**extra, **prior.to_extra()}, half=half)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m5l_core.tracking.box_prior",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--checkpoint", default=None, help="model (default: the bundled default model)")
    parser.add_argument("--data", type=Path, required=True, help="sequences in the RGBT234 layout")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (the model + its prior)")
    parser.add_argument("--alpha", type=float, default=30000.0, help="ridge penalty (default %(default)g)")
    parser.add_argument("--frames", type=int, default=4, help="frames per sequence (default %(default)s)")
    parser.add_argument("--boxes", type=int, default=48, help="boxes per frame (default %(default)s)")
    parser.add_argument("--min-iou", type=float, default=0.5, help="least overlap of a box with the truth")
    parser.add_argument("--validation", type=int, default=20, help="sequences held out (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    args = parser.parse_args(argv)

    def body() -> int:
        report = learn_box_prior(args.checkpoint, args.data, args.out, args.alpha, args.frames, args.boxes,
                                 args.min_iou, args.validation, args.seed, args.device)
        print(f"box prior from {report['boxes']} boxes (alpha {report['alpha']:g}) written into {args.out}")
        if "error" in report:
            print(f"held-out mean |offset error| dx, dy, dw, dh: {np.round(report['error'], 3).tolist()} "
                  f"(always the mean offset: {np.round(report['mean_offset_error'], 3).tolist()})")
        return 0

    return run_cli(body, (CheckpointError, ConfigError, DatasetError, OSError))


if __name__ == "__main__":
    sys.exit(main())
