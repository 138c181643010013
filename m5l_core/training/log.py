"""The training log: one JSON object per line, flushed per line, and an atomic summary.

A ``kill -9`` can leave a half-written last line and lines for steps after the last
checkpoint. :meth:`JsonLog.rewind` (called on ``--resume``) keeps only complete lines up
to the checkpoint's step, rewritten atomically, so a resumed run's log reads as one run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from m5l_core.atomic import atomic_write_text

LOG_NAME = "train_log.jsonl"
SUMMARY_NAME = "summary.json"


def _json_value(value):
    # NaN/inf are not JSON: write null so every line stays parseable by strict readers.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_log(path: Path) -> list[dict]:
    """Complete JSON lines of a log; a torn last line is dropped."""
    records = []
    if not Path(path).exists():
        return records
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class JsonLog:
    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self._handle = None

    def rewind(self, last_step: int) -> list[dict]:
        """Keep records with ``step <= last_step`` (atomically); return them."""
        kept = [r for r in read_log(self.path) if int(r.get("step", 0)) <= last_step]
        if self.enabled:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def start_fresh(self) -> None:
        if self.enabled:
            atomic_write_text(self.path, "")

    def append(self, record: dict) -> None:
        if not self.enabled:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps({k: _json_value(v) for k, v in record.items()}) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def window_means(records: list[dict], window: int, keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Mean of each key over the first and the last ``window`` records: the summary's trend."""
    def mean(rows: list[dict], key: str) -> float | None:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        return float(sum(values) / len(values)) if values else None

    first, last = records[:window], records[-window:]
    return {key: {"first": mean(first, key), "last": mean(last, key)} for key in keys}


def write_summary(path: Path, summary: dict) -> None:
    atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
