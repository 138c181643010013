"""Precision and success plots (PNG), legends ranked best-first with the score, as in the papers."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from m5l_core.atomic import atomic_write_bytes
from m5l_core.evaluation.protocols import get_protocol
from m5l_core.evaluation.report import as_list, ranked
from m5l_core.evaluation.scoring import TrackerScore

_LINESTYLES = ("-", "--", "-.", ":")


def _plot_one(scores: list[TrackerScore], metric: str, curve_attr: str, title: str, xlabel: str,
              ylabel: str, path: Path) -> Path:
    # The object-oriented API with an explicit Agg canvas leaves pyplot's global state alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    palette = [f"C{i}" for i in range(10)]
    for index, score in enumerate(ranked(scores, metric)):
        curve = getattr(score, curve_attr)
        axes.plot(curve.thresholds, curve.values, color=palette[index % 10],
                  linestyle=_LINESTYLES[(index // 10) % len(_LINESTYLES)], linewidth=2,
                  label=f"{score.tracker or '?'} [{getattr(score, metric):.3f}]")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlim(float(curve.thresholds[0]), float(curve.thresholds[-1]))
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right" if metric != "sr" else "lower left", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def plot_curves(scores: Mapping[str, TrackerScore] | Iterable[TrackerScore], out_dir) -> list[Path]:
    """Write ``<benchmark>_precision.png``, ``<benchmark>_success.png`` (and, for LasHeR,
    ``lasher_normalized_precision.png``) into ``out_dir``; returns the paths."""
    scores = as_list(scores)
    if not scores:
        return []
    protocol = get_protocol(scores[0].benchmark)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = protocol.benchmark
    px = "<" if protocol.strict_precision else "<="
    paths = [
        _plot_one(scores, "pr", "precision_curve",
                  f"{protocol.title}: precision plot ({protocol.pr_label} at {px} "
                  f"{protocol.precision_threshold:g} px)", "Location error threshold (pixels)", "Precision",
                  out_dir / f"{name}_precision.png"),
        _plot_one(scores, "sr", "success_curve", f"{protocol.title}: success plot ({protocol.sr_label})",
                  "Overlap threshold", "Success rate", out_dir / f"{name}_success.png"),
    ]
    if protocol.has_npr:
        paths.append(_plot_one(scores, "npr", "npr_curve",
                               f"{protocol.title}: normalized precision plot (NPR)",
                               "Normalized location error threshold", "Normalized precision",
                               out_dir / f"{name}_normalized_precision.png"))
    return paths
