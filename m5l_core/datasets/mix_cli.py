"""``m5l-mix``: generate (or preview) the training mix of real and synthetic RGB-T sequences.

Examples::

    m5l-mix --config config/train_real.yaml --out data/mix                 # what m5l-train generates
    m5l-mix --config config/train_real.yaml --out /tmp/mix_peek --set photo_motion.sequences=4 \\
        --set paste.sequences=4 --set aligned_pairs.sequences=4 --set synthetic.sequences=2 --preview peek.png

``--config`` takes a training recipe (its ``data.mix`` section), a file with a top-level
``mix:`` section, or a file of :class:`MixConfig` fields. ``--set`` overrides a field of the
mix (``paste.occluder_probability=0.5``). Rerunning the same command resumes; the folder is the
same one ``m5l-train`` makes as ``<out>/mix``, so a generated mix can be passed to training as
``data.root``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

from m5l_core.cli_errors import RERUN_TO_CONTINUE, run_cli
from m5l_core.config import ConfigError, apply_overrides, from_dict
from m5l_core.datasets.mix import generate_mix
from m5l_core.datasets.mix_config import MixConfig
from m5l_core.datasets.sequence import DatasetError


def read_mix_config(path: str | None) -> MixConfig:
    """``data.mix`` of a training recipe, a top-level ``mix:`` section, or the whole file."""
    if path is None:
        return MixConfig()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"].get("mix", {})
    elif isinstance(data, dict) and "mix" in data:
        data = data["mix"]
    return from_dict(MixConfig, data, path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m5l-mix", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="training recipe or mix YAML (default: built-in MixConfig)")
    parser.add_argument("--out", required=True, help="output folder of the mix")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a mix field, e.g. --set paste.sequences=20 (repeatable)")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads encoding images (default: up to 4)")
    parser.add_argument("--preview", metavar="PNG", help="also write a contact sheet of a few sequences")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run(args: argparse.Namespace) -> int:
    config = apply_overrides(read_mix_config(args.config), args.set)
    start = time.perf_counter()
    paths = generate_mix(config, args.out, progress=not args.no_progress, workers=args.workers)
    seconds = time.perf_counter() - start
    if args.preview:
        from m5l_core.datasets.mix_preview import write_contact_sheet

        write_contact_sheet(Path(args.out), Path(args.preview))
    print(f"{len(paths)} sequences in {args.out} ({seconds:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args), (ConfigError, DatasetError, OSError), RERUN_TO_CONTINUE)


if __name__ == "__main__":
    sys.exit(main())
