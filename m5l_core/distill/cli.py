"""``m5l-distill``: VGG-M conv1-3 (both M5L streams) learns an ImageNet teacher's stride-8 features.

Examples::

    m5l-distill --config config/distill.yaml --out runs/distill
    m5l-distill --config config/distill.yaml --out runs/distill --resume --steps 4000
    m5l-train --init vggm:runs/distill/distilled_vggm.pt ...

Command-line flags override the config file, which overrides the defaults of
:class:`m5l_core.distill.config.DistillConfig`; ``--set a.b=value`` reaches any field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from m5l_core.cli_errors import RESUME_FROM_CHECKPOINT, run_cli
from m5l_core.config import ConfigError, from_dict
from m5l_core.datasets.sequence import DatasetError
from m5l_core.distill.config import DistillConfig, check_distill_config, load_distill_config
from m5l_core.distill.loop import distill
from m5l_core.distill.state import DistillStateError
from m5l_core.models.effnet import BackboneWeightsError
from m5l_core.preprocess import FrameError
from m5l_core.training.loop import TrainingError

USER_ERRORS = (ConfigError, DatasetError, DistillStateError, BackboneWeightsError, FrameError,
               FileNotFoundError, TrainingError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m5l-distill", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="distillation YAML, e.g. config/distill.yaml (it names the data "
                                          "folders; without it they must come from --set)")
    parser.add_argument("--out", default="runs/distill", help="output folder (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--steps", type=int, help="total optimizer steps (steps)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (device)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set augment.flip=false")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> DistillConfig:
    config = load_distill_config(args.config, args.set)
    flags = {"steps": args.steps, "device": args.device, "progress": False if args.no_progress else None}
    overrides = {key: value for key, value in flags.items() if value is not None}
    config = from_dict(DistillConfig, overrides, "command line", base=config)
    return check_distill_config(config, "command line")


def run(args: argparse.Namespace) -> int:
    summary = distill(config_from_args(args), Path(args.out), resume=args.resume)
    keys = ("steps", "steps_this_run", "steps_per_s", "device", "result")
    print(json.dumps({key: summary[key] for key in keys}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args), USER_ERRORS, RESUME_FROM_CHECKPOINT)


if __name__ == "__main__":
    sys.exit(main())
