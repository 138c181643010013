"""Training speed: ``python -m m5l_core.training.bench [--device D] [--config FILE] [--json]``.

Generates a few small synthetic sequences in a temporary folder (not timed), then runs the
real training step (same batches, prefetch thread, model, loss and optimizer as ``m5l-train``)
for ``--warmup`` untimed and ``--steps`` timed steps. Reports steps/s, frames/s, the time the
loop waited for data, and the time to build one batch alone. Without ``--config`` the
:class:`~m5l_core.training.config.TrainConfig` defaults are measured (321 px crops, 4 frames
per step); ``--config config/train_synthetic.yaml`` measures the fast CPU recipe.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from m5l_core.cli_errors import run_cli
from m5l_core.config import ConfigError
from m5l_core.datasets.sequence import DatasetError
from m5l_core.models import M5LNet, apply_ablation
from m5l_core.training.config import TrainConfig, load_train_config
from m5l_core.training.data import build_batch, make_domains
from m5l_core.training.distributed import resolve_device
from m5l_core.training.loop import prefetched
from m5l_core.training.sources import ensure_synthetic
from m5l_core.training.state import build_optimizer
from m5l_core.training.step import step_seed, train_step


def _synthetic_domains(config: TrainConfig, folder: Path):
    from dataclasses import replace

    from m5l_core.datasets import load_benchmark

    data = replace(config.data, synthetic_sequences=2, synthetic=replace(config.data.synthetic, n_frames=8))
    ensure_synthetic(data, folder)
    sequences = load_benchmark(data.synthetic_layout, root=folder, require_images=True)
    return make_domains(sequences, config.data.min_box_side)


def _timed_steps(config: TrainConfig, domains, device: torch.device, steps: int, warmup: int) -> dict:
    model_config, loss_config = apply_ablation(config.ablation, config.model, config.loss)
    torch.manual_seed(config.seed)
    model = M5LNet(model_config, num_domains=len(domains)).to(device).train()
    optimizer = build_optimizer(model, config.optim)

    def build(step: int):
        return build_batch(domains, step, 0, 1, config.seed, config.sampling, config.data.preprocess)

    waited = 0.0
    started = 0.0
    for batch, wait in prefetched(build, range(1, warmup + steps + 1), config.data.prefetch):
        if batch.step == warmup + 1:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
        if batch.step > warmup:
            waited += wait
        torch.manual_seed(step_seed(config.seed, batch.step, 0))
        train_step(model, optimizer, batch, loss_config, config.optim.grad_clip, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    tic = time.perf_counter()
    build(10_000)
    build_seconds = time.perf_counter() - tic
    return {"seconds": elapsed, "data_wait_s_per_step": waited / steps, "batch_build_s": build_seconds}


def run_benchmark(config: TrainConfig, device: str = "cpu", steps: int = 20, warmup: int = 3) -> dict:
    """Measure training steps on ``device``; returns the report dict."""
    torch_device = resolve_device(device)
    with tempfile.TemporaryDirectory(prefix="m5l-train-bench-") as folder:
        domains = _synthetic_domains(config, Path(folder) / "synthetic")
        timing = _timed_steps(config, domains, torch_device, steps, warmup)
    frames = config.sampling.frames_per_step
    if torch_device.type == "cuda":
        device_name = torch.cuda.get_device_name(torch_device)
    else:
        device_name = platform.processor() or platform.machine()
    rois = frames * (1 + config.sampling.pos_per_frame + config.sampling.neg_per_frame)
    return {
        "device": str(torch_device),
        "device_name": device_name,
        "torch_threads": torch.get_num_threads(),
        "steps": steps,
        "warmup": warmup,
        "frames_per_step": frames,
        "rois_per_step": rois,
        "crop_size": config.sampling.crop_size,
        "steps_per_s": round(steps / timing["seconds"], 3),
        "frames_per_s": round(steps * frames / timing["seconds"], 3),
        "s_per_step": round(timing["seconds"] / steps, 4),
        "data_wait_s_per_step": round(timing["data_wait_s_per_step"], 4),
        "batch_build_s": round(timing["batch_build_s"], 4),
        "ablation": config.ablation,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m5l_core.training.bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="training YAML to measure (default: TrainConfig defaults)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.steps < 1 or args.warmup < 0:
            raise ConfigError("--steps must be >= 1 and --warmup >= 0")
        report = run_benchmark(load_train_config(args.config, args.set), args.device, args.steps, args.warmup)
        if args.json:
            print(json.dumps(report))
        else:
            for key, value in report.items():
                print(f"{key:>22}: {value}")
        return 0

    return run_cli(body, (ConfigError, DatasetError))


if __name__ == "__main__":
    sys.exit(main())
