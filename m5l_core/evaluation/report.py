"""Markdown tables and JSON documents of tracker scores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from m5l_core.evaluation.protocols import get_protocol
from m5l_core.evaluation.scoring import TrackerScore


def as_list(scores: Mapping[str, TrackerScore] | Iterable[TrackerScore]) -> list[TrackerScore]:
    """Accept ``{name: score}`` or a list of scores; a mapping's keys name the trackers."""
    if isinstance(scores, Mapping):
        return [_named(score, name) for name, score in scores.items()]
    return list(scores)


def _named(score: TrackerScore, name: str) -> TrackerScore:
    return score if score.tracker == name else replace(score, tracker=name)


def ranked(scores: list[TrackerScore], key: str) -> list[TrackerScore]:
    """Best first, as the papers rank their legends and tables (ties keep the given order)."""
    return sorted(scores, key=lambda s: -(getattr(s, key) or 0.0))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(header) - 1)
    return [_row(header), _row(align), *(_row(r) for r in rows)]


def _overall_table(scores: list[TrackerScore]) -> list[str]:
    protocol = get_protocol(scores[0].benchmark)
    header = ["Tracker", protocol.pr_label]
    header += ["NPR"] if protocol.has_npr else []
    header += [protocol.sr_label, "Sequences", "Frames"]
    rows = []
    for score in ranked(scores, "sr"):
        cells = [score.tracker or "?", f"{score.pr:.3f}"]
        cells += [f"{score.npr:.3f}"] if protocol.has_npr else []
        cells += [f"{score.sr:.3f}", str(score.num_sequences), str(score.frames)]
        rows.append(cells)
    return _table(header, rows)


def _attribute_table(scores: list[TrackerScore], metric: str) -> list[str]:
    attributes: list[str] = []
    for score in scores:
        attributes += [a for a in score.per_attribute if a not in attributes]
    counts = {a: next(s.per_attribute[a]["sequences"] for s in scores if a in s.per_attribute)
              for a in attributes}
    header = ["Tracker"] + [f"{a} ({counts[a]})" for a in attributes]
    rows = []
    for score in ranked(scores, metric):
        cells = [score.tracker or "?"]
        for attribute in attributes:
            value = score.per_attribute.get(attribute, {}).get(metric)
            cells.append("-" if value is None else f"{value:.3f}")
        rows.append(cells)
    return _table(header, rows)


def markdown_table(scores: Mapping[str, TrackerScore] | Iterable[TrackerScore],
                   attributes: bool = True) -> str:
    """Overall scores (ranked by success), then per-attribute PR and SR tables when available."""
    scores = as_list(scores)
    if not scores:
        return ""
    protocol = get_protocol(scores[0].benchmark)
    split = f", {scores[0].split} split" if scores[0].split and protocol.has_npr else ""
    rounding = ", results rounded" if scores[0].round_results else ""
    lines = [f"**{protocol.title}**{split}{rounding}", "", *_overall_table(scores)]
    if attributes and any(s.per_attribute for s in scores):
        for metric, label in (("pr", protocol.pr_label), ("sr", protocol.sr_label)):
            lines += ["", f"{label} per attribute (number of sequences in brackets)", ""]
            lines += _attribute_table(scores, metric)
    return "\n".join(lines) + "\n"


def json_document(scores: Mapping[str, TrackerScore] | Iterable[TrackerScore]) -> dict:
    scores = as_list(scores)
    benchmark = scores[0].benchmark if scores else None
    split = scores[0].split if scores else None
    return {"benchmark": benchmark, "split": split, "trackers": [s.to_json() for s in scores]}
