"""``m5l-train``: offline multi-domain training of the M5L network.

Examples::

    m5l-train --config config/train_synthetic.yaml --out runs/synthetic
    m5l-train --config config/train_gtot.yaml --dataset-root /data/GTOT --out runs/gtot --device cuda
    m5l-train --config config/train_gtot.yaml --dataset-root /data/GTOT --out runs/gtot --resume
    torchrun --nproc_per_node 4 -m m5l_core.training.cli --config config/train_lasher.yaml \\
        --dataset-root /data/LasHeR --out runs/lasher

Command-line flags override the config file, which overrides the defaults of
:class:`m5l_core.training.config.TrainConfig`; ``--set a.b=value`` reaches any field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from m5l_core.cli_errors import RESUME_FROM_CHECKPOINT, run_cli
from m5l_core.config import ConfigError, from_dict
from m5l_core.datasets.sequence import DatasetError
from m5l_core.models import ABLATIONS, CheckpointError, VggmInitError
from m5l_core.preprocess import FrameError
from m5l_core.training.config import DATASET_KINDS, TrainConfig, check_train_config, load_train_config
from m5l_core.training.distributed import context_from_env, leave_without_teardown
from m5l_core.training.loop import TrainingError, train

USER_ERRORS = (ConfigError, DatasetError, CheckpointError, VggmInitError, FrameError, FileNotFoundError,
               TrainingError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m5l-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="training YAML (config/train_*.yaml); default: built-in defaults")
    parser.add_argument("--dataset", choices=DATASET_KINDS, help="dataset layout to train on (data.dataset)")
    parser.add_argument("--dataset-root", help="dataset folder (data.root)")
    parser.add_argument("--split", help="dataset split, e.g. train for LasHeR (data.split)")
    parser.add_argument("--iterations", type=int, help="total training steps (iterations)")
    parser.add_argument("--out", default="runs/train", help="output folder (default: %(default)s)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (device)")
    parser.add_argument("--ablation", choices=sorted(ABLATIONS), help="model/loss ablation (ablation)")
    parser.add_argument("--init", help="random | imagenet[:PATH] | vggm:PATH | checkpoint:PATH (init)")
    parser.add_argument("--seed", type=int, help="seed (seed)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config field, e.g. --set sampling.frames_per_step=8")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    config = load_train_config(args.config, args.set)
    flags = {"iterations": args.iterations, "device": args.device, "ablation": args.ablation,
             "init": args.init, "seed": args.seed}
    overrides: dict = {key: value for key, value in flags.items() if value is not None}
    data = {"dataset": args.dataset, "root": args.dataset_root, "split": args.split}
    data = {key: value for key, value in data.items() if value is not None}
    if data:
        overrides["data"] = data
    if args.no_progress:
        overrides["progress"] = False
    config = from_dict(TrainConfig, overrides, "command line", base=config)
    return check_train_config(config, "command line")


def run(args: argparse.Namespace) -> int:
    summary = train(config_from_args(args), Path(args.out), resume=args.resume)
    if context_from_env().is_main:
        keys = ("iterations", "steps_this_run", "steps_per_s", "frames_per_s", "device", "world_size")
        print(json.dumps({key: summary[key] for key in keys}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status = run_cli(lambda: run(args), USER_ERRORS, RESUME_FROM_CHECKPOINT)
    if context_from_env().enabled:
        leave_without_teardown(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
