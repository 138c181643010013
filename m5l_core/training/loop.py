"""Offline multi-domain training: the loop behind ``m5l-train`` (one process or one DDP rank).

Per step each rank trains one domain (sequence); see :mod:`m5l_core.training.data` for the
batch and :mod:`m5l_core.training.distributed` for how ranks share the work. Outputs in
``out_dir`` (rank 0 only):

* ``train_log.jsonl``: one JSON object per logged step, flushed as written;
* ``checkpoint.pt``: full training state every ``checkpoint_every`` steps and at the end,
  written atomically (temporary file + fsync + rename), so a ``kill -9`` at any moment
  leaves the previous complete checkpoint; ``--resume`` continues from it;
* ``model.pt``: final weights without optimizer state (load with ``load_tracker``);
* ``summary.json``: first/last-window means of the losses and statistics, speed, fingerprints;
* ``training_curves.png``: losses, MMSL structure shares, accuracy and modality weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tqdm import tqdm

from m5l_core.config import ConfigError, to_dict
from m5l_core.datasets.sequence import Sequence
from m5l_core.models import M5LNet, ModelConfig, apply_ablation
from m5l_core.training import distributed as ddp
from m5l_core.training.config import TrainConfig
from m5l_core.training.curves import CURVES_NAME, plot_training_curves
from m5l_core.training.data import Domain, FrameBatch, build_batch, domain_for_step, make_domains
from m5l_core.training.log import LOG_NAME, SUMMARY_NAME, JsonLog, window_means, write_summary
from m5l_core.training.sources import load_training_sequences
from m5l_core.training.state import (
    CHECKPOINT_NAME,
    MODEL_NAME,
    build_optimizer,
    freeze_streams_without_lr,
    initialise,
    read_resume_state,
    remove_stale_temporaries,
    write_checkpoint,
)
from m5l_core.training.step import LOG_KEYS, step_seed, train_step


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss diverged); the message says what to do."""


@dataclass
class Run:
    """Everything one rank's loop works with."""

    config: TrainConfig
    out_dir: Path
    context: ddp.DistContext
    device: torch.device
    domains: list[Domain]
    model: M5LNet
    model_config: ModelConfig
    optimizer: torch.optim.SGD
    start_step: int
    log: JsonLog
    records: list[dict] = field(default_factory=list)

    @property
    def domain_names(self) -> list[str]:
        return [d.sequence.name for d in self.domains]


def prefetched(build, steps: range, depth: int) -> Iterator[tuple[FrameBatch, float]]:
    """Batches for ``steps`` in order, built ``depth`` steps ahead in one background thread.

    Yields (batch, seconds the loop waited for it). Batches are pure functions of their step,
    so prefetching changes nothing but speed. cv2 and numpy release the GIL while decoding.
    """
    if depth == 0:
        for step in steps:
            start = time.perf_counter()
            batch = build(step)
            yield batch, time.perf_counter() - start
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="m5l-batches") as pool:
        pending: list[Future] = [pool.submit(build, s) for s in steps[:depth]]
        for offset, _ in enumerate(steps):
            start = time.perf_counter()
            batch = pending.pop(0).result()
            waited = time.perf_counter() - start
            if offset + depth < len(steps):
                pending.append(pool.submit(build, steps[offset + depth]))
            yield batch, waited


def _load_domains(config: TrainConfig, out_dir: Path, context: ddp.DistContext,
                  sequences: list[Sequence] | None) -> list[Domain]:
    if sequences is None:
        # Rank 0 generates synthetic data (if needed) while the others wait, then all read it.
        if context.is_main:
            sequences = load_training_sequences(config.data, out_dir, generate=True, progress=config.progress)
        ddp.barrier(context)
        if not context.is_main:
            sequences = load_training_sequences(config.data, out_dir, generate=False)
    return make_domains(sequences, config.data.min_box_side)


def _prepare(config: TrainConfig, out_dir: Path, resume: bool, context: ddp.DistContext, device: torch.device,
             sequences: list[Sequence] | None) -> Run:
    domains = _load_domains(config, out_dir, context, sequences)
    model_config, loss_config = apply_ablation(config.ablation, config.model, config.loss)
    config = replace(config, model=model_config, loss=loss_config)
    names = [d.sequence.name for d in domains]
    checkpoint = out_dir / CHECKPOINT_NAME
    log = JsonLog(out_dir / LOG_NAME, enabled=context.is_main)
    records: list[dict] = []
    if resume and checkpoint.exists():
        state = read_resume_state(checkpoint, model_config, names, device)
        model, start_step = state.model, state.step
        optimizer = build_optimizer(model, config.optim)
        if state.optimizer_state is not None:
            optimizer.load_state_dict(state.optimizer_state)
        records = log.rewind(start_step)
    else:
        if checkpoint.exists() and not resume:
            raise ConfigError(f"{checkpoint} exists: pass --resume to continue that run, "
                              f"or choose another --out")
        torch.manual_seed(config.seed)
        model = M5LNet(model_config, num_domains=len(domains)).to(device)
        initialise(model, config.init, device)
        optimizer = build_optimizer(model, config.optim)
        start_step = 0
        log.start_fresh()
    freeze_streams_without_lr(model, config.optim)
    if context.is_main:
        remove_stale_temporaries(out_dir)
    return Run(config, out_dir, context, device, domains, model, model_config, optimizer, start_step, log,
               records)


def _log_record(run: Run, step: int, batch: FrameBatch, metrics: dict, waited: float, seconds: float) -> dict:
    record = {"step": step, "domains": _step_domains(run, step),
              "frames": batch.num_frames * run.context.world_size,
              "data_wait_s": round(waited, 4), "step_s": round(seconds, 4)}
    record.update({key: metrics.get(key) for key in LOG_KEYS})
    for key in ("pos_mined", "neg_mined"):
        if key in metrics:
            record[key] = metrics[key]
    return record


def _step_domains(run: Run, step: int) -> list[str]:
    world = run.context.world_size
    indices = [domain_for_step(step, r, world, len(run.domains), run.config.seed) for r in range(world)]
    return [run.domains[i].sequence.name for i in indices]


def _average_over_ranks(metrics: dict[str, float], context: ddp.DistContext, device: torch.device) -> dict:
    """Mean of each numeric metric over ranks, so rank 0's log describes the whole step."""
    if not context.enabled:
        return metrics
    keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(values)
    return {**metrics, **dict(zip(keys, (values / context.world_size).tolist(), strict=True))}


def _save(run: Run, step: int, name: str = CHECKPOINT_NAME) -> None:
    """Rank 0 writes; ``model.pt`` leaves out the optimizer state (half the size)."""
    if run.context.is_main:
        optimizer = run.optimizer if name == CHECKPOINT_NAME else None
        write_checkpoint(run.out_dir / name, run.model, run.model_config, run.config, step,
                         run.domain_names, optimizer)


def _loop(run: Run, net: torch.nn.Module) -> tuple[int, float]:
    config = run.config
    steps = range(run.start_step + 1, config.iterations + 1)

    def build(step: int) -> FrameBatch:
        return build_batch(run.domains, step, run.context.rank, run.context.world_size, config.seed,
                           config.sampling, config.data.preprocess)

    bar = tqdm(total=config.iterations, initial=run.start_step, unit="step", dynamic_ncols=True,
               disable=not (config.progress and run.context.is_main), desc="m5l-train")
    started = time.perf_counter()
    net.train()
    last_saved = run.start_step
    for batch, waited in prefetched(build, steps, config.data.prefetch):
        tic = time.perf_counter()
        torch.manual_seed(step_seed(config.seed, batch.step, run.context.rank))
        metrics = train_step(net, run.optimizer, batch, config.loss, config.optim.grad_clip, run.device)
        metrics = _average_over_ranks(metrics, run.context, run.device)
        if not math.isfinite(metrics["loss"]):
            # Checked after averaging, so every rank stops together; nothing is saved past here.
            raise TrainingError(f"the loss is {metrics['loss']} at step {batch.step}; the last good "
                                f"checkpoint is step {last_saved} in {run.out_dir} (lower the lr?)")
        if batch.step % config.log_every == 0 or batch.step == config.iterations:
            record = _log_record(run, batch.step, batch, metrics, waited, time.perf_counter() - tic + waited)
            run.log.append(record)
            run.records.append(record)
        bar.update(1)
        bar.set_postfix(ce=f"{metrics['ce']:.3f}", mmsl=_short(metrics.get("mmsl")),
                        acc=f"{metrics['accuracy']:.2f}")
        if batch.step % config.checkpoint_every == 0:
            ddp.sync_buffers(run.model, run.context)
            _save(run, batch.step)
            last_saved = batch.step
    bar.close()
    elapsed = time.perf_counter() - started
    ddp.sync_buffers(run.model, run.context)
    if len(steps):
        if last_saved != steps[-1]:
            _save(run, steps[-1])
        _save(run, steps[-1], MODEL_NAME)
    return len(steps), elapsed


def _short(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _summary(run: Run, steps_run: int, elapsed: float, fingerprints: list[str]) -> dict:
    frames = run.config.sampling.frames_per_step * run.context.world_size
    return {
        "iterations": run.config.iterations,
        "resumed_from_step": run.start_step,
        "steps_this_run": steps_run,
        "seconds_this_run": round(elapsed, 3),
        "steps_per_s": round(steps_run / elapsed, 4) if elapsed > 0 and steps_run else None,
        "frames_per_s": round(steps_run * frames / elapsed, 4) if elapsed > 0 and steps_run else None,
        "world_size": run.context.world_size,
        "device": str(run.device),
        "domains": len(run.domains),
        "ablation": run.config.ablation,
        "trend": window_means(run.records, run.config.summary_window, LOG_KEYS),
        "rank_fingerprints": fingerprints,
        "config": to_dict(run.config),
    }


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False,
          sequences: list[Sequence] | None = None, context: ddp.DistContext | None = None) -> dict:
    """Train (or continue) ``config.iterations`` steps into ``out_dir``; return the summary dict.

    ``sequences`` bypasses the dataset section (tests, notebooks). Under torchrun the
    context comes from the environment and every rank must call this.
    """
    context = context or ddp.context_from_env()
    device = ddp.resolve_device(config.device, context)
    out_dir = Path(out_dir)
    ddp.init_distributed(context, device)
    try:
        run = _prepare(config, out_dir, resume, context, device, sequences)
        net = ddp.wrap_model(run.model, context, device)
        steps_run, elapsed = _loop(run, net)
        fingerprints = ddp.gather_strings(ddp.state_fingerprint(run.model), context)
    finally:
        # Every rank leaves the group right after the last collective, not after rank 0's own
        # writing: the ranks then tear gloo down together. (What torch keeps of the group after
        # this goes down with the interpreter; m5l-train's ranks skip that: leave_without_teardown.)
        ddp.shutdown_distributed(context)
    summary = _summary(run, steps_run, elapsed, fingerprints)
    if context.is_main:
        write_summary(out_dir / SUMMARY_NAME, summary)
        if run.records:
            plot_training_curves(run.records, out_dir / CURVES_NAME, run.config.summary_window,
                                 title=f"m5l-train {out_dir}")
    run.log.close()
    return summary
