"""Training curves (PNG) from ``train_log.jsonl``: losses, MMSL structure shares, accuracy.

``m5l-train`` writes ``training_curves.png`` beside its log when a run ends; this module also
re-plots any log, including one of a run still going:

    m5l-train-curves runs/synthetic [--out curves.png] [--window 30]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from m5l_core.atomic import atomic_write_bytes
from m5l_core.training.log import LOG_NAME, read_log

CURVES_NAME = "training_curves.png"

# (title, y label, keys, fixed y range or None); other tools (m5l-distill) pass their own panels.
TRAINING_PANELS = (
    ("Losses", "loss", ("ce", "mmsl", "l_rgb", "l_thermal", "l_cross"), None),
    ("MMSL structure (shares of samples, both modalities)", "share",
     ("pos_in_interval", "neg_in_interval", "pos_within_alpha", "neg_beyond_margin"), (0.0, 1.0)),
    ("Classifier and fusion", "value", ("accuracy", "pos_accuracy", "neg_accuracy", "weight_rgb",
                                        "weight_thermal"), (0.0, 1.0)),
)


def moving_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` finite values (NaNs, i.e. missing entries, skipped)."""
    finite = np.isfinite(values)
    sums = np.concatenate(([0.0], np.cumsum(np.where(finite, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(finite)))
    start = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    window_sums, window_counts = sums[1:] - sums[start], counts[1:] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(window_counts > 0, window_sums / np.maximum(window_counts, 1), np.nan)


def _column(records: list[dict], key: str) -> np.ndarray:
    values = [r[key] if isinstance(r.get(key), (int, float)) else np.nan for r in records]
    return np.array(values, dtype=float)


def plot_training_curves(records: list[dict], path: Path, window: int = 30, title: str = "",
                         panels: tuple = TRAINING_PANELS) -> Path:
    """Write one panel per entry of ``panels`` (default: m5l-train's three) to ``path`` atomically."""
    if not records:
        raise ValueError(f"no training records to plot into {path}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = _column(records, "step")
    figure = Figure(figsize=(7.0, 3.0 * len(panels)), dpi=100)
    FigureCanvasAgg(figure)
    for index, (panel_title, ylabel, keys, ylim) in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, index + 1)
        for key in keys:
            values = _column(records, key)
            logged = np.isfinite(values)
            if logged.any():
                # Drawn at the steps that logged the key only: a sparse one (m5l-distill's evaluation
                # every checkpoint) then reads as a line through its points, not as flat segments.
                axes.plot(steps[logged], moving_mean(values, window)[logged], linewidth=1.5, label=key)
        axes.set_title(panel_title, fontsize="medium")
        axes.set_ylabel(ylabel)
        if ylim:
            axes.set_ylim(*ylim)
        axes.grid(True, alpha=0.3)
        if axes.lines:
            axes.legend(fontsize="x-small", loc="best")
    axes.set_xlabel(f"step (trailing mean over {window} steps)")
    if title:
        figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(Path(path), buffer.getvalue())


def plot_run(run_dir: Path, out: Path | None = None, window: int = 30) -> Path:
    """Plot ``<run_dir>/train_log.jsonl`` to ``out`` (default ``<run_dir>/training_curves.png``)."""
    log_path = Path(run_dir) / LOG_NAME
    records = read_log(log_path)
    if not records:
        raise FileNotFoundError(f"{log_path}: no training log records")
    return plot_training_curves(records, out or Path(run_dir) / CURVES_NAME, window, title=str(run_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="m5l-train-curves",
                                     description="Plot the training curves of an m5l-train run.")
    parser.add_argument("run_dir", type=Path, help="an m5l-train --out directory")
    parser.add_argument("--out", type=Path, default=None, help=f"PNG path (default: RUN_DIR/{CURVES_NAME})")
    parser.add_argument("--window", type=int, default=30, help="steps of the trailing mean (default 30)")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be at least 1")
    try:
        print(f"wrote {plot_run(args.run_dir, args.out, args.window)}")
    except (FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    return 0
