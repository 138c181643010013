"""``python -m m5l_core.tracking.box_head_train``: learn a model's box head offline, into its checkpoint.

    m5l-mix --config config/train_real.yaml --out runs/head_mix --set paste.rotation_deg=45 ...
    python -m m5l_core.tracking.box_head_train --data runs/head_mix --out model_with_head.pt

Samples are the tracker's own crops: for every ``--every``-th frame of each sequence in ``--data``
(RGBT234 layout, several folders allowed), the crop an ordinary frame would take around the true
box jittered as a tracker errs (centre, size and aspect), its conv maps, and the true box in map
cells; the first frame gives the sequence's template. The head (m5l_core/tracking/box_head.py)
then learns, on the frozen maps, which cells lie in the target's central half (binary
cross-entropy) and the distances from those cells to the true box's edges (GIoU loss). A random
``--validation`` share of the sequences is held out, and the mean IoU there of the jittered boxes,
of the head's size at their centres and of the head's whole box is printed. The checkpoint is
written atomically at the end (about 13 minutes of two CPU cores for the default model's recipe).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from m5l_core.cli_errors import run_cli
from m5l_core.config import ConfigError
from m5l_core.datasets import DatasetError, load_benchmark
from m5l_core.datasets.frames import read_pair
from m5l_core.models import CheckpointError, load_checkpoint, save_checkpoint
from m5l_core.models.checkpoint import read_checkpoint
from m5l_core.tracking.box_head import (
    BoxHead,
    MapGeometry,
    box_near,
    cell_boxes,
    cell_grid,
    stacked,
    template_of,
)
from m5l_core.tracking.loading import checkpoint_path, load_tracker
from m5l_core.tracking.tracker import M5LTracker

MIN_SIDE = 4.0          # true boxes thinner than this (pixels) are skipped
CENTRE_JITTER = 0.1     # of the true sides (normal), the tracker's centre error
LOG_SIZE_JITTER = 0.3   # normal, on log scale and log aspect: sizes off by up to ~2x


class Samples:
    """Maps (half precision), true and jittered boxes in map corners, and one template per sequence."""

    def __init__(self):
        self.maps: list[torch.Tensor] = []
        self.truth: list[torch.Tensor] = []
        self.jittered: list[torch.Tensor] = []
        self.sequence: list[int] = []
        self.templates: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.maps)

    def batch(self, index) -> tuple[torch.Tensor, ...]:
        """Maps zero-padded to the batch's largest, with a mask of the real cells."""
        maps = [self.maps[i] for i in index]
        height, width = max(m.shape[1] for m in maps), max(m.shape[2] for m in maps)
        x = torch.zeros(len(maps), maps[0].shape[0], height, width)
        valid = torch.zeros(len(maps), height, width, dtype=torch.bool)
        for j, m in enumerate(maps):
            x[j, :, :m.shape[1], :m.shape[2]] = m.float()
            valid[j, :m.shape[1], :m.shape[2]] = True
        template = torch.stack([self.templates[self.sequence[i]] for i in index]).float()
        return (x, template, torch.stack([self.truth[i] for i in index]),
                torch.stack([self.jittered[i] for i in index]), valid)


def jittered_box(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale, aspect = np.exp(rng.normal(0.0, LOG_SIZE_JITTER, 2))
    size = truth[2:] * scale * np.array([np.sqrt(aspect), 1.0 / np.sqrt(aspect)])
    centre = truth[:2] + truth[2:] / 2 + rng.normal(0.0, CENTRE_JITTER, 2) * truth[2:]
    return np.concatenate([centre - size / 2, size])


def frame_maps(tracker: M5LTracker, sequence, index: int, around: np.ndarray
               ) -> tuple[torch.Tensor, MapGeometry]:
    """The maps of the crop an ordinary frame tracked at ``around`` takes in frame ``index``
    (tracker state untouched)."""
    rgb, thermal = read_pair(sequence, index, tracker.config.preprocess)
    region = tracker._ordinary_region(around)
    feats = tracker.network.frame_features(rgb, thermal, region)
    return stacked(feats), MapGeometry(region, tracker.model.geometry.spatial_scale)


def collect(tracker: M5LTracker, sequences, every: int, rng: np.random.Generator, samples: Samples) -> None:
    for sequence in tqdm(sequences, desc="box head samples", unit="seq"):
        first = np.asarray(sequence.gt_rgb[0], dtype=np.float64)
        maps, geometry = frame_maps(tracker, sequence, 0, first)
        with torch.no_grad():
            samples.templates.append(template_of(maps, geometry, first)[0].half().cpu())
        for index in range(1 + int(rng.integers(every)), len(sequence.gt_rgb), every):
            truth = np.asarray(sequence.gt_rgb[index], dtype=np.float64)
            if min(truth[2:]) < MIN_SIDE:
                continue
            around = jittered_box(truth, rng)
            maps, geometry = frame_maps(tracker, sequence, index, around)
            samples.maps.append(maps[0].half().cpu())
            samples.truth.append(torch.from_numpy(geometry.to_map(truth)[0]).float())
            samples.jittered.append(torch.from_numpy(geometry.to_map(around)[0]).float())
            samples.sequence.append(len(samples.templates) - 1)


def iou_and_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 4) corners."""
    inter = ((torch.min(a[..., 2], b[..., 2]) - torch.max(a[..., 0], b[..., 0])).clamp(min=0)
             * (torch.min(a[..., 3], b[..., 3]) - torch.max(a[..., 1], b[..., 1])).clamp(min=0))

    def area(z):
        return (z[..., 2] - z[..., 0]).clamp(min=0) * (z[..., 3] - z[..., 1]).clamp(min=0)

    union = area(a) + area(b) - inter + 1e-6
    hull = ((torch.max(a[..., 2], b[..., 2]) - torch.min(a[..., 0], b[..., 0]))
            * (torch.max(a[..., 3], b[..., 3]) - torch.min(a[..., 1], b[..., 1])) + 1e-6)
    iou = inter / union
    return iou, iou - (hull - union) / hull


def head_losses(head: BoxHead, maps, template, truth, valid) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary cross-entropy of "in the target's central half" over the real cells, and the GIoU loss
    of the boxes read at those cells."""
    logits, edges = head(maps, template)
    xs, ys = cell_grid(logits.shape[1], logits.shape[2], logits.device)
    centre = (truth[:, :2] + truth[:, 2:]) / 2
    reach = ((truth[:, 2:] - truth[:, :2]) / 4).clamp(min=0.6)     # half of a half side, >= 1 cell
    inside = (((xs[None] - centre[:, 0, None, None]).abs() <= reach[:, 0, None, None])
              & ((ys[None] - centre[:, 1, None, None]).abs() <= reach[:, 1, None, None]) & valid)
    classification = F.binary_cross_entropy_with_logits(logits[valid], inside[valid].float())
    boxes = cell_boxes(edges)
    _, giou = iou_and_giou(boxes, truth[:, None, None, :].expand_as(boxes))
    regression = (1 - giou[inside]).mean() if inside.any() else logits.sum() * 0
    return classification, regression


def centred(corners: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
    """``corners``' sizes about ``on``'s centres."""
    centre, half = (on[:, :2] + on[:, 2:]) / 2, (corners[:, 2:] - corners[:, :2]) / 2
    return torch.cat([centre - half, centre + half], dim=1)


def held_out_iou(head: BoxHead, samples: Samples, index: np.ndarray) -> dict[str, float]:
    head.eval()
    rows = []
    with torch.no_grad():
        for start in range(0, len(index), 32):
            maps, template, truth, jittered, _ = samples.batch(index[start:start + 32])
            logits, edges = head(maps, template)
            read = box_near(logits, cell_boxes(edges), jittered)
            ious = [iou_and_giou(box, truth)[0] for box in (jittered, centred(read, jittered), read)]
            rows.append(torch.stack(ious, dim=1))
    head.train()
    mean = torch.cat(rows).mean(dim=0).tolist()
    return {"jittered_box": mean[0], "head_size_at_its_centre": mean[1], "head_box": mean[2]}


def train_head(samples: Samples, steps: int, batch: int, validation: float, width: int, seed: int
               ) -> tuple[BoxHead, dict]:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    held = set(rng.permutation(len(samples.templates))[:int(len(samples.templates) * validation)].tolist())
    is_held = np.array([s in held for s in samples.sequence])
    train, test = np.nonzero(~is_held)[0], np.nonzero(is_held)[0]
    if len(train) == 0:
        raise DatasetError("no training samples for the box head (every sequence held out or too small)")
    head = BoxHead(samples.maps[0].shape[0], width)
    some = torch.cat([samples.maps[i].float().flatten(1) for i in train[::max(1, len(train) // 200)]], dim=1)
    head.mean.copy_(some.mean(dim=1).view(1, -1, 1, 1))
    head.std.copy_(some.std(dim=1).view(1, -1, 1, 1) + 1e-3)
    optimizer = torch.optim.AdamW(head.parameters(), 2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps, pct_start=0.1)
    progress = tqdm(range(steps), desc="box head", unit="step")
    first = last = None
    for _ in progress:
        maps, template, truth, _, valid = samples.batch(rng.choice(train, batch))
        classification, regression = head_losses(head, maps, template, truth, valid)
        loss = classification + regression
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        last = float(loss.detach())
        first = last if first is None else first
        progress.set_postfix(loss=f"{last:.3f}")
    report = {"samples": len(train), "first_loss": first, "last_loss": last}
    if len(test):
        report["held_out_iou"] = held_out_iou(head, samples, test)
    return head.eval(), report


def learn_box_head(checkpoint: str | None, data: list[Path], out: Path, every: int, steps: int, batch: int,
                   validation: float, width: int, seed: int) -> dict:
    source = checkpoint_path(checkpoint)
    tracker = load_tracker(source, device="cpu", seed=seed)
    samples, rng = Samples(), np.random.default_rng(seed)
    for folder in data:
        sequences = list(load_benchmark("rgbt234", root=folder, require_images=True))
        collect(tracker, sequences, every, rng, samples)
    if not len(samples):
        raise DatasetError(f"no usable frames for the box head in {', '.join(map(str, data))}")
    head, report = train_head(samples, steps, batch, validation, width, seed)
    model, model_config, extra = load_checkpoint(source)
    half = read_checkpoint(source).get("dtype") == "float16"
    save_checkpoint(out, model, model_config, {**extra, **head.to_extra()}, half=half)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m5l_core.tracking.box_head_train",
                                     description=__doc__.split("\n\n")[0].replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--checkpoint", default=None, help="model (default: the bundled default model)")
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="sequences in the RGBT234 layout (repeat for several folders)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (the model + its head)")
    parser.add_argument("--every", type=int, default=2, help="one frame in this many (default %(default)s)")
    parser.add_argument("--steps", type=int, default=1500, help="training steps (default %(default)s)")
    parser.add_argument("--batch", type=int, default=16, help="samples per step (default %(default)s)")
    parser.add_argument("--width", type=int, default=64, help="channels of the head (default %(default)s)")
    parser.add_argument("--validation", type=float, default=0.15,
                        help="share of sequences held out (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def body() -> int:
        if args.every < 1 or args.steps < 1 or args.batch < 1 or not 0 <= args.validation < 1:
            raise ConfigError("--every, --steps and --batch must be >= 1, --validation in [0, 1)")
        report = learn_box_head(args.checkpoint, args.data, args.out, args.every, args.steps, args.batch,
                                args.validation, args.width, args.seed)
        print(f"box head from {report['samples']} samples (loss {report['first_loss']:.3f} -> "
              f"{report['last_loss']:.3f}) written into {args.out}")
        if "held_out_iou" in report:
            iou = report["held_out_iou"]
            print(f"held-out mean IoU: jittered boxes {iou['jittered_box']:.3f}, the head's size at their "
                  f"centres {iou['head_size_at_its_centre']:.3f}, the head's box {iou['head_box']:.3f}")
        return 0

    return run_cli(body, (CheckpointError, ConfigError, DatasetError, OSError))


if __name__ == "__main__":
    sys.exit(main())
