"""Pairing of RGB and thermal images by approximate time stamp, without ROS.

Where ``message_filters`` is installed the node uses its ``ApproximateTimeSynchronizer``;
elsewhere it uses :class:`ApproximatePairer`, which follows the same rules so both behave alike:

* each input keeps a queue of messages keyed by stamp (a second message with the same stamp
  replaces the first); beyond ``queue_size`` entries the oldest stamp is evicted;
* when a message arrives, the other inputs' messages within ``slop`` of its stamp are the
  candidates, tried nearest first; the first combination whose newest and oldest stamps differ
  by strictly less than ``slop`` is emitted (in input order) and removed from the queues;
* an arriving message without a partner stays queued and may pair with a later arrival.

Stamps are integer nanoseconds so that pairing is exact and independent of ``rclpy``. A stamp
before 1970 (negative seconds) is refused with ``ValueError``, as message_filters refuses it (its
``rclpy.time.Time.from_msg`` raises "Seconds value must not be negative").
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

NS_PER_S = 1_000_000_000


class NegativeStampError(ValueError):
    """A stamp before the epoch: message_filters cannot pair it, so neither does this module."""


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (or anything with ``sec`` and ``nanosec``) -> nanoseconds."""
    if int(stamp.sec) < 0:
        raise NegativeStampError(f"Seconds value must not be negative (stamp {stamp.sec} s "
                                 f"{stamp.nanosec} ns)")
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


class ApproximatePairer:
    """Approximate-time synchronizer for ``n_inputs`` streams with message_filters' semantics."""

    def __init__(self, n_inputs: int, queue_size: int, slop_s: float,
                 callback: Callable[..., None]) -> None:
        if n_inputs < 2:
            raise ValueError("pairing needs at least two inputs")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if slop_s <= 0:
            raise ValueError(f"slop must be positive, got {slop_s}")
        self.queue_size = queue_size
        self.slop_ns = round(slop_s * NS_PER_S)
        self._callback = callback
        self._queues: list[dict[int, Any]] = [{} for _ in range(n_inputs)]
        self._lock = threading.Lock()
        self.evicted = [0] * n_inputs   # messages pushed out of a full queue without a partner
        self.emitted = 0

    def add(self, index: int, stamp_ns: int, msg: Any) -> bool:
        """Queue ``msg`` of input ``index``; emit a matching set if one exists. Returns True if emitted."""
        if stamp_ns < 0:
            raise NegativeStampError(f"Seconds value must not be negative (stamp {stamp_ns} ns)")
        with self._lock:
            match = self._add_locked(index, stamp_ns, msg)
        if match is None:
            return False
        # The callback runs outside the lock so that it may take its time or call back in.
        self._callback(*match)
        return True

    def queued(self, index: int) -> int:
        with self._lock:
            return len(self._queues[index])

    def _add_locked(self, index: int, stamp_ns: int, msg: Any) -> list[Any] | None:
        queue = self._queues[index]
        queue[stamp_ns] = msg
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.evicted[index] += 1
        candidates = []
        for other, other_queue in enumerate(self._queues):
            if other == index:
                continue
            near = sorted((abs(s - stamp_ns), s) for s in other_queue if abs(s - stamp_ns) <= self.slop_ns)
            if not near:
                return None
            candidates.append([s for _, s in near])
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(index, stamp_ns)
            if max(stamps) - min(stamps) < self.slop_ns:
                msgs = [q.pop(s) for q, s in zip(self._queues, stamps, strict=True)]
                self.emitted += 1
                return msgs
        return None
