"""Writing bags atomically: a reader never sees a half-written bag at the target path.

The bag is written in a temporary directory beside the target and renamed into place once
``metadata.yaml`` is complete (the same idea as :mod:`m5l_core.atomic` for single files).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer

from m5l_tracker_ros.bag.errors import BagError

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


@contextmanager
def bag_writer(path: str | Path, storage: str = "mcap", custom: Mapping[str, str] | None = None,
               overwrite: bool = False) -> Iterator[Writer]:
    """An open ``rosbags`` writer whose bag appears at ``path`` when the block ends without error."""
    path = Path(path)
    if storage not in STORAGES:
        raise BagError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")
    if path.exists() and not overwrite:
        raise BagError(f"{path} exists already (use --force to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        writer = Writer(staged, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
        for key, value in (custom or {}).items():
            writer.set_custom_data(key, value)
        with writer:
            yield writer
        if path.exists():
            shutil.rmtree(path)
        staged.rename(path)
