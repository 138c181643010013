"""Reading rosbag2 recordings (directory, or a bare ``.mcap`` / ``.db3`` file) with ``rosbags``.

Every failure of the underlying library (missing metadata, truncated storage file, corrupt
CDR) comes out as a :class:`BagError` that names the bag, so the CLIs can print one line.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import Reader, ReaderError
from rosbags.serde import SerdeError
from rosbags.typesys import TypesysError, get_types_from_idl, get_types_from_msg
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.images import stamp_ns
from m5l_tracker_ros.bag.typestore import typestore

_LIBRARY_ERRORS = (ReaderError, SerdeError, TypesysError, sqlite3.Error, struct.error, EOFError,
                   OSError, KeyError, IndexError, ValueError, AssertionError)


@dataclass(frozen=True)
class RawMessage:
    """One recorded message: header stamp, bag (receive) time, and the CDR bytes as recorded."""

    stamp: int
    log_time: int
    raw: bytes
    msgtype: str


@contextmanager
def bag_errors(path: Path, doing: str) -> Iterator[None]:
    try:
        yield
    except BagError:
        raise
    except _LIBRARY_ERRORS as exc:
        raise BagError(f"{path}: {doing} failed: {exc} (truncated or corrupt bag?)") from exc


def _storage_path(path: Path) -> Path:
    """A recording interrupted hard has no ``metadata.yaml``; read its single storage file then."""
    if path.is_dir() and not (path / "metadata.yaml").exists():
        files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
        if len(files) == 1:
            return files[0]
        raise BagError(f"{path}: not a rosbag2 directory (no metadata.yaml and "
                       f"{len(files)} .mcap/.db3 files)")
    return path


class BagReader:
    """Context manager over one bag; ``topics`` maps topic name -> message type."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag")
        self._reader: Reader | None = None
        self.topics: dict[str, str] = {}
        self.custom: dict[str, str] = {}
        self.store: Typestore = typestore()

    def __enter__(self) -> BagReader:
        with bag_errors(self.path, "opening"):
            self._reader = Reader(_storage_path(self.path))
            self._reader.open()
            self.topics = {c.topic: c.msgtype for c in self._reader.connections}
            self.custom = dict(self._reader.storage.metadata.custom or {}) if hasattr(
                self._reader.storage, "metadata") else {}
            self._register_bag_types()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _register_bag_types(self) -> None:
        """Types the shared store lacks (a robot's own messages) come from the bag's definitions."""
        assert self._reader is not None
        unknown = {c.msgtype: c for c in self._reader.connections if c.msgtype not in self.store.fielddefs}
        if not unknown:
            return
        self.store = Typestore()  # a copy: the shared store must not learn one bag's types
        self.store.register(typestore().fielddefs)
        for msgtype, conn in unknown.items():
            if conn.msgdef.data:
                text = conn.msgdef.data
                types = (get_types_from_idl(text) if text.lstrip("=\n").startswith("IDL")
                         else get_types_from_msg(text, msgtype))
                self.store.register(types)

    def message_count(self, topic: str) -> int:
        assert self._reader is not None
        return sum(c.msgcount for c in self._reader.connections if c.topic == topic)

    def deserialize(self, raw: bytes, msgtype: str):
        with bag_errors(self.path, f"decoding a {msgtype} message"):
            return self.store.deserialize_cdr(raw, msgtype)

    def read_raw(self, topic: str) -> list[bytes]:
        """CDR bytes of every message of ``topic`` in recording order (messages without a header)."""
        assert self._reader is not None
        connections = [c for c in self._reader.connections if c.topic == topic]
        with bag_errors(self.path, f"reading {topic}"):
            return [bytes(raw) for _, _, raw in self._reader.messages(connections=connections)]

    def read_topic(self, topic: str, progress: bool = False) -> list[RawMessage]:
        """All messages of ``topic`` sorted by header stamp (recorders may interleave slightly)."""
        assert self._reader is not None
        if topic not in self.topics:
            raise BagError(f"{self.path}: topic {topic!r} is not in the bag")
        msgtype = self.topics[topic]
        connections = [c for c in self._reader.connections if c.topic == topic]
        out = []
        with bag_errors(self.path, f"reading {topic}"):
            items = self._reader.messages(connections=connections)
            for _, log_time, raw in tqdm(items, total=self.message_count(topic), desc=f"read {topic}",
                                         unit="msg", disable=not progress, leave=False):
                header = self.store.deserialize_cdr(raw, msgtype).header
                out.append(RawMessage(stamp_ns(header), log_time, bytes(raw), msgtype))
        return sorted(out, key=lambda m: (m.stamp, m.log_time))
