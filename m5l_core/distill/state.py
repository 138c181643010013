"""The distillation checkpoint: everything ``--resume`` needs, as a plain dict written atomically.

Layout::

    {"format": "m5l-distill-checkpoint", "version": 1, "config": to_dict(DistillConfig), "step": int,
     "students": {"rgb": state_dict, "thermal": state_dict},       # VGG-M stream + 1x1 adapter
     "teacher_stats": {"rgb": {"mean", "std"}, "thermal": {...}},   # the targets' standardisation
     "optimizer": optimizer.state_dict()}

Random streams need no saving: every batch is a pure function of (seed, stream, step). The
teacher is not saved either; it is rebuilt from its (fixed, ImageNet) weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from m5l_core.atomic import atomic_write_bytes
from m5l_core.config import ConfigError, to_dict
from m5l_core.distill.config import RESUMABLE_FIELDS, STREAMS, DistillConfig
from m5l_core.distill.objective import FeatureStats, StudentStream
from m5l_core.distill.result import torch_bytes

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "m5l-distill-checkpoint"
VERSION = 1


class DistillStateError(ValueError):
    """A distillation checkpoint is unreadable, of another format, or from a different run."""


@dataclass
class DistillState:
    students: dict[str, StudentStream]
    stats: dict[str, FeatureStats]
    step: int
    optimizer_state: dict | None = None


def build_optimizer(students: dict[str, StudentStream], config: DistillConfig) -> torch.optim.Optimizer:
    params = [p for name in STREAMS for p in students[name].parameters()]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}


def save_state(path: Path, state: DistillState, config: DistillConfig,
               optimizer: torch.optim.Optimizer) -> None:
    payload = {"format": FORMAT, "version": VERSION, "config": to_dict(config), "step": int(state.step),
               "students": {name: cpu_state_dict(state.students[name]) for name in STREAMS},
               "teacher_stats": {name: state.stats[name].to_dict() for name in STREAMS},
               "optimizer": optimizer.state_dict()}
    atomic_write_bytes(path, torch_bytes(payload))


def load_state(path: Path, config: DistillConfig, device: torch.device) -> DistillState:
    """Rebuild the students, statistics and step of ``path``; it must be this run's checkpoint."""
    raw = _read(path)
    _check_same_run(path, raw["config"], config)
    students = {}
    for name in STREAMS:
        student = StudentStream()
        try:
            student.load_state_dict(raw["students"][name], strict=True)
        except (KeyError, RuntimeError) as err:
            raise DistillStateError(f"{path}: student {name!r} does not fit this code: {err}") from None
        students[name] = student.to(device)
    stats = {name: FeatureStats(raw["teacher_stats"][name]["mean"].to(device),
                                raw["teacher_stats"][name]["std"].to(device)) for name in STREAMS}
    return DistillState(students, stats, int(raw["step"]), raw.get("optimizer"))


def _read(path: Path) -> dict:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise DistillStateError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DistillStateError(f"{path}: not an m5l-distill checkpoint (format {FORMAT!r} expected)")
    if raw.get("version") != VERSION:
        raise DistillStateError(f"{path}: checkpoint version {raw.get('version')!r} is not supported "
                                f"(this code reads version {VERSION})")
    missing = [key for key in ("config", "step", "students", "teacher_stats") if key not in raw]
    if missing:
        raise DistillStateError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return raw


def _check_same_run(path: Path, saved: dict, config: DistillConfig) -> None:
    """Only the fields that steer the run (steps, logging, device ...) may change on resume."""
    current = to_dict(config)
    changed = sorted(key for key in current if key not in RESUMABLE_FIELDS and saved.get(key) != current[key])
    if changed:
        raise ConfigError(f"{path}: this run's config differs from the checkpoint's in {', '.join(changed)}; "
                          f"resume with the same config (only {', '.join(sorted(RESUMABLE_FIELDS))} may "
                          "change) or choose another --out")
