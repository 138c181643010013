"""A worker thread that always processes the newest item and drops (and counts) older ones.

Subscription callbacks only hand items over (:meth:`LatestWorker.submit` never blocks), so
the executor stays responsive however long one tracking step takes.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestWorker(Generic[T]):
    """Runs ``handle(item)`` on a thread for the newest of at most ``capacity`` pending items;
    ``on_drop(item)`` runs on the submitting thread for each item dropped unhandled, ``on_start()``
    once on the worker's thread before the first item (its priority, say)."""

    def __init__(self, handle: Callable[[T], None], capacity: int = 1,
                 on_error: Callable[[T, Exception], None] | None = None, name: str = "m5l-worker",
                 on_drop: Callable[[T], None] | None = None,
                 on_start: Callable[[], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._handle = handle
        self._on_error = on_error
        self._on_drop = on_drop
        self._on_start = on_start
        self._pending: collections.deque[T] = collections.deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.submitted = 0
        self.dropped = 0
        self.processed = 0
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: T) -> int:
        """Queue ``item``; returns how many older items were dropped to make room."""
        with self._cond:
            dropped = []
            while len(self._pending) >= self._capacity:
                dropped.append(self._pending.popleft())
            self._pending.append(item)
            self.submitted += 1
            self.dropped += len(dropped)
            self._cond.notify()
        if self._on_drop is not None:   # outside the lock: the worker may take the new item meanwhile
            for old in dropped:
                self._on_drop(old)
        return len(dropped)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending or running (tests, shutdown); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the running item, drop the pending ones, and join the thread."""
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next(self) -> T | None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._pending or self._stopping)
            if self._stopping:
                return None
            self._busy = True
            return self._pending.popleft()

    def _run(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while (item := self._next()) is not None:
            try:
                self._handle(item)
                self.processed += 1
            except Exception as err:  # the worker must outlive any bad item
                self.failed += 1
                if self._on_error is not None:
                    self._on_error(item, err)
