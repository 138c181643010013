"""Options and error handling shared by ``m5l-eval-bag`` and ``m5l-replay-eval``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rosbags.rosbag2 import WriterError

from m5l_core.cli_errors import run_cli
from m5l_core.config import ConfigError
from m5l_core.datasets import DatasetError
from m5l_core.evaluation.metrics import ResultsError
from m5l_core.evaluation.results_io import write_result_file
from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.report import RunReport, write_report

# Everything a bad bag, file or option can raise below main(); printed as one "error:" line.
USER_ERRORS = (BagError, DatasetError, ResultsError, ConfigError, WriterError, OSError)


def add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bag", required=True, type=Path, help="rosbag2 directory (or a .mcap / .db3 file)")
    parser.add_argument("--gt", type=Path, help="ground truth, x,y,w,h per RGB frame (default: <bag>.gt.txt)")
    parser.add_argument("--gt-thermal", type=Path,
                        help="thermal ground truth if it differs (default: <bag>.gt_thermal.txt)")
    parser.add_argument("--benchmark", help="protocol for PR/SR: gtot, rgbt234, rgbt210, lasher "
                        "(default: the bag's m5l.benchmark, else rgbt234)")
    parser.add_argument("--rgb-topic", help="RGB image topic (default: found by type and name)")
    parser.add_argument("--thermal-topic", help="thermal image topic (default: found by type and name)")


def add_output_args(parser: argparse.ArgumentParser, default: str = "none: print only") -> None:
    parser.add_argument("--out", type=Path, help="directory for <sequence>.txt (results) and "
                        f"<sequence>.report.json (default: {default})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def write_outputs(out: Path | None, report: RunReport, boxes) -> list[Path]:
    if out is None:
        return []
    return [write_result_file(out / f"{report.sequence}.txt", boxes),
            write_report(out / f"{report.sequence}.report.json", report)]


def publish_run(out: Path | None, report: RunReport, boxes) -> None:
    """Write the result and report files (when ``out`` is given) and print the scores."""
    for path in write_outputs(out, report, boxes):
        print(f"wrote {path}")
    print("\n".join(report.lines()))


def run_main(body: Callable[[], int]) -> int:
    """Run a CLI body; the project's errors become ``error: ...`` on stderr and exit status 2."""
    return run_cli(body, USER_ERRORS)
