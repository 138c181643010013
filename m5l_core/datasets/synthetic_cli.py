"""``m5l-synth``: write seeded synthetic RGB-T sequences in the GTOT or RGBT234 layout.

Examples::

    m5l-synth --out data/synth --layout gtot --sequences 8 --frames 300 --seed 0
    m5l-synth --out data/synth234 --layout rgbt234 --sequences 2 --frames 100 --seed 1 \\
        --challenges occlusion thermal_crossover misalignment
    m5l-synth --out data/tiny --layout gtot --sequences 2 --frames 5 --width 160 --height 120 \\
        --set low_light_gain=0.1 --thermal-bits 16

Without ``--challenges`` every sequence gets a random mix of all challenges; ``--challenges
none`` gives clean sequences. Rerunning the same command skips the finished sequences.
16-bit thermal is written as PNG uint16 in both layouts (``infrared/00001i.png`` in the
RGBT234 layout, since JPEG cannot hold 16 bits).
"""

from __future__ import annotations

import argparse
import sys

import yaml

from m5l_core.cli_errors import RERUN_TO_CONTINUE, run_cli
from m5l_core.config import ConfigError, apply_overrides, from_dict
from m5l_core.datasets.sequence import DatasetError
from m5l_core.datasets.synthetic import CHALLENGES, LAYOUTS, SyntheticConfig, write_dataset


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m5l-synth",
        description="Write seeded synthetic RGB-T tracking sequences in a benchmark layout.",
        epilog=f"challenges: {', '.join(CHALLENGES)}")
    parser.add_argument("--out", required=True, help="output dataset directory")
    parser.add_argument("--layout", choices=LAYOUTS, default="gtot", help="file layout (default: gtot)")
    parser.add_argument("--sequences", type=_positive_int, default=4,
                        help="number of sequences (default: 4)")
    parser.add_argument("--frames", type=_positive_int, default=300,
                        help="frames per sequence, at least 2 (default: 300)")
    parser.add_argument("--seed", type=_seed, default=0, help="dataset seed (default: 0)")
    parser.add_argument("--challenges", nargs="+", metavar="NAME", choices=(*CHALLENGES, "all", "none"),
                        help="challenges on in every sequence: names, 'all' or 'none' "
                             "(default: a random mix per sequence)")
    parser.add_argument("--width", type=_positive_int, help="frame width (default: 640)")
    parser.add_argument("--height", type=_positive_int, help="frame height (default: 480)")
    parser.add_argument("--thermal-bits", type=int, choices=(8, 16), help="thermal bit depth (default: 8)")
    parser.add_argument("--config",
                        help="YAML file of SyntheticConfig fields (top level or under 'synthetic:')")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one SyntheticConfig field, e.g. --set low_light_gain=0.1")
    parser.add_argument("--workers", type=_positive_int, help="threads encoding images (default: up to 4)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _read_yaml_overrides(path: str) -> SyntheticConfig:
    """A YAML file with SyntheticConfig fields at the top level or under ``synthetic:``."""
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "synthetic" in data:
        data = data["synthetic"]
    return from_dict(SyntheticConfig, data, path)


def _load_config(args: argparse.Namespace) -> SyntheticConfig:
    config = _read_yaml_overrides(args.config) if args.config else SyntheticConfig()
    config = apply_overrides(config, args.set)
    flags = {"width": args.width, "height": args.height, "thermal_bits": args.thermal_bits}
    changes = [f"{key}={value}" for key, value in flags.items() if value is not None]
    return apply_overrides(config, changes, "command line")


def _challenges(names: list[str] | None) -> tuple[str, ...] | None:
    if names is None:
        return None
    if ("all" in names or "none" in names) and len(names) > 1:
        raise ConfigError("--challenges: 'all' and 'none' cannot be combined with other names")
    if names == ["all"]:
        return CHALLENGES
    if names == ["none"]:
        return ()
    return tuple(names)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames: a sequence needs at least 2 frames")
    return run_cli(lambda: _write(args), (ConfigError, DatasetError, OSError), RERUN_TO_CONTINUE)


def _write(args: argparse.Namespace) -> int:
    paths = write_dataset(args.out, args.layout, args.sequences, args.frames, args.seed,
                          challenges=_challenges(args.challenges), config=_load_config(args),
                          progress=not args.no_progress, workers=args.workers)
    print(f"wrote {len(paths)} {args.layout} sequences to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
