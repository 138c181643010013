"""Export an ``m5l-train`` checkpoint as a compact tracking model (float16, no optimizer state).

    python -m m5l_core.tracking.export runs/default_model/checkpoint.pt m5l_core/assets/default_model.pt

The export keeps the model config, the weights (stored as float16, read back as float32) and
the training config (the tracker reads the crop scale the network was trained at from it),
and drops what only resuming training needs (optimizer state). This is how the bundled
default model is made; ``m5l_core/assets/README.md`` has the full recipe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from m5l_core.cli_errors import run_cli
from m5l_core.models import CheckpointError, load_checkpoint, save_checkpoint

KEPT_EXTRA = ("train_config", "step", "domains")


def export_model(source: str | Path, target: str | Path, note: str = "") -> Path:
    """Write the compact copy of ``source`` to ``target`` (atomically); returns ``target``."""
    model, config, extra = load_checkpoint(source, device="cpu")
    kept = {key: extra[key] for key in KEPT_EXTRA if key in extra}
    kept["exported_from"] = Path(source).name
    if note:
        kept["note"] = note
    return save_checkpoint(target, model, config, extra=kept, half=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m5l_core.tracking.export",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="checkpoint written by m5l-train")
    parser.add_argument("target", type=Path, help="compact model to write")
    parser.add_argument("--note", default="", help="free text stored in the model (what it was trained on)")
    args = parser.parse_args(argv)

    def body() -> int:
        path = export_model(args.source, args.target, args.note)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0

    return run_cli(body, (CheckpointError, OSError))


if __name__ == "__main__":
    sys.exit(main())
