"""The loop behind ``m5l-distill``: both VGG-M streams learn the teacher's features, one batch each per step.

Outputs in ``out_dir``:

* ``distill_log.jsonl``: one JSON object per logged step (both streams' loss and cosine);
* ``checkpoint.pt``: the full state every ``checkpoint_every`` steps and at the end, written
  atomically, so ``--resume`` continues from the last one after any interruption;
* ``distilled_vggm.pt``: the result (:mod:`m5l_core.distill.result`), for ``m5l-train --init vggm:PATH``;
* ``summary.json`` (first/last-window means, speed, the config) and ``distill_curves.png``.

The two streams share no parameters, so one step with both losses equals two independent
trainings run in lockstep; it keeps one step counter, one checkpoint and one log for both.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from m5l_core.config import ConfigError, to_dict
from m5l_core.distill.config import STREAMS, DistillConfig, check_distill_config
from m5l_core.distill.data import CropBatch, CropSource
from m5l_core.distill.objective import (
    FeatureStats,
    StudentStream,
    build_teacher,
    distill_loss,
    freeze,
    teacher_at_cells,
)
from m5l_core.distill.result import RESULT_NAME, write_distilled_vggm
from m5l_core.distill.state import CHECKPOINT_NAME, DistillState, build_optimizer, load_state, save_state
from m5l_core.models.vggm import conv3_size
from m5l_core.preprocess import to_network_input
from m5l_core.training.curves import plot_training_curves
from m5l_core.training.distributed import resolve_device
from m5l_core.training.log import SUMMARY_NAME, JsonLog, window_means, write_summary
from m5l_core.training.loop import TrainingError, prefetched

LOG_NAME = "distill_log.jsonl"
CURVES_NAME = "distill_curves.png"
LOG_KEYS = tuple(f"{metric}_{name}" for metric in ("loss", "eval_loss", "cos") for name in STREAMS)
PANELS = (
    ("Distillation loss (share of the standardised teacher variance left unexplained)", "MSE",
     ("loss_rgb", "loss_thermal", "eval_loss_rgb", "eval_loss_thermal"), None),
    ("Student vs teacher features per cell", "cosine", ("cos_rgb", "cos_thermal"), (0.0, 1.0)),
)


@dataclass
class Run:
    config: DistillConfig
    out_dir: Path
    device: torch.device
    sources: dict[str, CropSource]
    teacher: nn.Module
    state: DistillState
    optimizer: torch.optim.Optimizer
    log: JsonLog
    start_step: int
    records: list[dict] = field(default_factory=list)

    @property
    def cells(self) -> tuple[int, int]:
        side = conv3_size(self.config.crop_size)
        return side, side


def measure_stats(teacher: nn.Module, source: CropSource, config: DistillConfig, device: torch.device
                  ) -> FeatureStats:
    """Per-channel statistics of the teacher's targets on ``stats_batches`` batches of ``source``."""
    side = conv3_size(config.crop_size)
    maps = [teacher_at_cells(teacher, to_network_input(source.batch(index, "stats").teacher, device),
                             (side, side), config.teacher)
            for index in range(config.stats_batches)]
    return FeatureStats.from_maps(maps)


def _fresh_state(config: DistillConfig, sources: dict[str, CropSource], teacher: nn.Module,
                 device: torch.device) -> DistillState:
    torch.manual_seed(config.seed)
    students = {name: StudentStream().to(device) for name in STREAMS}
    stats = {name: measure_stats(teacher, sources[name], config, device) for name in STREAMS}
    return DistillState(students, stats, step=0)


def _prepare(config: DistillConfig, out_dir: Path, resume: bool, teacher: nn.Module | None) -> Run:
    device = resolve_device(config.device)
    sources = {name: CropSource(name, config) for name in STREAMS}   # bad folders fail before anything runs
    teacher = freeze(teacher if teacher is not None else build_teacher(config)).to(device)
    checkpoint = out_dir / CHECKPOINT_NAME
    log = JsonLog(out_dir / LOG_NAME)
    if resume and checkpoint.exists():
        state = load_state(checkpoint, config, device)
        optimizer = build_optimizer(state.students, config)
        if state.optimizer_state is not None:
            optimizer.load_state_dict(state.optimizer_state)
        records = log.rewind(state.step)
    else:
        if checkpoint.exists():
            raise ConfigError(f"{checkpoint} exists: pass --resume to continue that run, "
                              "or choose another --out")
        state = _fresh_state(config, sources, teacher, device)
        optimizer = build_optimizer(state.students, config)
        log.start_fresh()
        records = []
    run = Run(config, out_dir, device, sources, teacher, state, optimizer, log, state.step, records)
    if state.step == 0:   # a fresh run: the eval curve starts from the untrained students
        _append(run, {"step": 0, **fixed_batch_losses(run)})
    for name in (CHECKPOINT_NAME, RESULT_NAME, LOG_NAME, SUMMARY_NAME, CURVES_NAME):
        for stale in out_dir.glob(f".{name}.*.tmp"):   # left by an atomic write killed mid-way
            stale.unlink(missing_ok=True)
    return run


def _prediction_and_target(run: Run, name: str, batch: CropBatch) -> tuple[torch.Tensor, torch.Tensor]:
    teacher_input = to_network_input(batch.teacher, run.device)
    same_image = batch.student is batch.teacher
    student_input = teacher_input if same_image else to_network_input(batch.student, run.device)
    target = run.state.stats[name].standardise(
        teacher_at_cells(run.teacher, teacher_input, run.cells, run.config.teacher))
    return run.state.students[name](student_input), target


def distill_step(run: Run, batches: dict[str, CropBatch]) -> dict[str, float]:
    """One optimizer step on one batch per stream; returns each stream's loss and cosine."""
    run.optimizer.zero_grad(set_to_none=True)
    metrics = {}
    for name in STREAMS:
        loss, cosine = distill_loss(*_prediction_and_target(run, name, batches[name]))
        loss.backward()   # per stream: the first graph is freed before the second is built
        metrics[f"loss_{name}"], metrics[f"cos_{name}"] = loss.item(), cosine
    run.optimizer.step()
    return metrics


@torch.no_grad()
def fixed_batch_losses(run: Run) -> dict[str, float]:
    """Each stream's loss on its ``stats`` batches: crops never trained on, the same at every call,
    so this curve shows progress without the batch-to-batch noise of the training loss."""
    losses = {}
    for name in STREAMS:
        values = [distill_loss(*_prediction_and_target(run, name, run.sources[name].batch(index, "stats")))[0]
                  for index in range(run.config.stats_batches)]
        losses[f"eval_loss_{name}"] = round(float(torch.stack(values).mean()), 6)
    return losses


def _save(run: Run, step: int) -> None:
    run.state.step = step
    save_state(run.out_dir / CHECKPOINT_NAME, run.state, run.config, run.optimizer)


def _loop(run: Run) -> tuple[int, float]:
    config = run.config
    steps = range(run.start_step + 1, config.steps + 1)

    def build(step: int) -> dict[str, CropBatch]:
        return {name: run.sources[name].batch(step) for name in STREAMS}

    bar = tqdm(total=config.steps, initial=run.start_step, unit="step", dynamic_ncols=True,
               disable=not config.progress, desc="m5l-distill")
    started = time.perf_counter()
    last_saved = run.start_step
    for step, (batches, waited) in zip(steps, prefetched(build, steps, config.prefetch), strict=True):
        tic = time.perf_counter()
        metrics = distill_step(run, batches)
        if not all(math.isfinite(value) for value in metrics.values()):
            raise TrainingError(f"the loss is not finite at step {step} ({metrics}); the last good "
                                f"checkpoint is step {last_saved} in {run.out_dir} (lower the lr?)")
        seconds = time.perf_counter() - tic + waited
        checkpoint_due = step % config.checkpoint_every == 0 or step == config.steps
        if step % config.log_every == 0 or checkpoint_due:
            record = {"step": step, **{k: round(v, 6) for k, v in metrics.items()},
                      "data_wait_s": round(waited, 4), "step_s": round(seconds, 4)}
            if checkpoint_due:
                record.update(fixed_batch_losses(run))
            _append(run, record)
        bar.update(1)
        bar.set_postfix(rgb=f"{metrics['loss_rgb']:.3f}", thermal=f"{metrics['loss_thermal']:.3f}")
        if checkpoint_due:
            _save(run, step)
            last_saved = step
    bar.close()
    return len(steps), time.perf_counter() - started


def _append(run: Run, record: dict) -> None:
    run.log.append(record)
    run.records.append(record)


def _summary(run: Run, steps_run: int, elapsed: float, result: Path) -> dict:
    return {
        "steps": run.config.steps,
        "resumed_from_step": run.start_step,
        "steps_this_run": steps_run,
        "seconds_this_run": round(elapsed, 3),
        "steps_per_s": round(steps_run / elapsed, 4) if elapsed > 0 and steps_run else None,
        "device": str(run.device),
        "photos": len(run.sources["rgb"]),
        "pairs": len(run.sources["thermal"]),
        "trend": window_means(run.records, run.config.summary_window, LOG_KEYS),
        "result": str(result),
        "config": to_dict(run.config),
    }


def distill(config: DistillConfig, out_dir: str | Path, *, resume: bool = False,
            teacher: nn.Module | None = None) -> dict:
    """Distil (or continue) ``config.steps`` steps into ``out_dir``; return the summary dict.

    ``teacher`` replaces the ImageNet teacher (tests: a random-weight EfficientNet-Lite0 trunk).
    """
    config = check_distill_config(config)
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or threads)
    try:
        return _distill(config, Path(out_dir), resume, teacher)
    finally:
        torch.set_num_threads(threads)   # a library call leaves the process as it found it


def _distill(config: DistillConfig, out_dir: Path, resume: bool, teacher: nn.Module | None) -> dict:
    run = _prepare(config, out_dir, resume, teacher)
    try:
        steps_run, elapsed = _loop(run)
    finally:
        run.log.close()
    streams = {name: run.state.students[name].stream for name in STREAMS}
    result = write_distilled_vggm(out_dir / RESULT_NAME, streams, config, run.state.step)
    summary = _summary(run, steps_run, elapsed, result)
    write_summary(out_dir / SUMMARY_NAME, summary)
    if run.records:
        plot_training_curves(run.records, out_dir / CURVES_NAME, config.summary_window,
                             title=f"m5l-distill {out_dir}", panels=PANELS)
    return summary
