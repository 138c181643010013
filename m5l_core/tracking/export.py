"""Export an ``m5l-train`` checkpoint as a compact tracking model (float16, no optimizer state).

    python -m m5l_core.tracking.export runs/default_model/checkpoint.pt m5l_core/assets/default_model.pt

The export keeps the model config, the weights (stored as float16, read back as float32) and
the training config (the tracker reads the crop scale the network was trained at from it),
and drops what only resuming training needs (optimizer state). This is how the bundled
default model is made; ``m5l_core/assets/README.md`` has the full recipe.

``--average-with B.pt C.pt`` writes the uniform average of the weights of every source instead (a
"model soup", Wortsman et al., 2022). It is meant for runs that started from one model and
differ only in their seed, as the default recipe's second stage does: averaging takes away part
of one training run's luck. The sources must share their model config and domain count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from m5l_core.cli_errors import run_cli
from m5l_core.models import CheckpointError, load_checkpoint, save_checkpoint

KEPT_EXTRA = ("train_config", "step", "domains")


def export_model(source: str | Path, target: str | Path, note: str = "",
                 average_with: tuple[str | Path, ...] = ()) -> Path:
    """Write the compact copy of ``source`` (or the average of ``source`` and ``average_with``) to
    ``target`` (atomically); returns ``target``."""
    model, config, extra = load_checkpoint(source, device="cpu")
    kept = {key: extra[key] for key in KEPT_EXTRA if key in extra}
    kept["exported_from"] = Path(source).name
    if average_with:
        average_into(model, source, average_with)
        kept["averaged_with"] = [Path(path).name for path in average_with]
    if note:
        kept["note"] = note
    return save_checkpoint(target, model, config, extra=kept, half=True)


def average_into(model: torch.nn.Module, source: str | Path, others: tuple[str | Path, ...]) -> None:
    """Replace ``model``'s floating-point weights by their mean over it and ``others``; integer
    buffers (batch-norm step counts) keep ``model``'s values."""
    states = [model.state_dict()]
    for path in others:
        other, config, _ = load_checkpoint(path, device="cpu")
        if config != model.config or other.num_domains != model.num_domains:
            raise CheckpointError(f"{path}: cannot be averaged with {source}: its model config or domain "
                                  f"count differs ({other.num_domains} domains against {model.num_domains})")
        states.append(other.state_dict())
    mean = {name: torch.stack([state[name] for state in states]).mean(dim=0)
            if tensor.is_floating_point() else tensor for name, tensor in states[0].items()}
    model.load_state_dict(mean)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m5l_core.tracking.export",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="checkpoint written by m5l-train")
    parser.add_argument("target", type=Path, help="compact model to write")
    parser.add_argument("--note", default="", help="free text stored in the model (what it was trained on)")
    parser.add_argument("--average-with", nargs="+", type=Path, default=[], metavar="CHECKPOINT",
                        help="more runs of the same model: write the mean of all their weights")
    args = parser.parse_args(argv)

    def body() -> int:
        path = export_model(args.source, args.target, args.note, tuple(args.average_with))
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0

    return run_cli(body, (CheckpointError, OSError))


if __name__ == "__main__":
    sys.exit(main())
