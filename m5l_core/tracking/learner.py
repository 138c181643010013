"""The learning budget: online learning queued as jobs and run step by step beside tracking.

A job is an iterator whose every ``next()`` performs one step of work: an SGD iteration,
pooling one batch of first-frame samples, fitting the box regressor. Three schedules
(``budget.mode``):

* ``steps``: ``run_frame`` runs ``steps_per_frame`` steps after a frame's result (fractions
  accumulate from frame to frame), so no frame waits for a whole update. Counting steps rather
  than seconds keeps tracking deterministic: the offline runner, a lockstep replay and the node
  perform the same steps in the same order.
* ``time``: as ``steps``, plus more steps while the frame is under ``frame_ms`` (a node with
  spare time learns more; not reproducible).
* ``thread``: a learner thread (at a lower CPU priority) runs the jobs whenever any are pending,
  on a second core, while the tracking thread goes on with the next frame. The jobs then train a
  copy of the classifier, and after every step ``publish`` copies its weights to the one that
  scores, under :meth:`Learner.exclusive`; a step itself holds no lock, so the tracking thread
  waits at most for that copy. After each step the thread rests in proportion to it
  (``thread_duty``), so a learner with a long queue (a sequence of failures, each queueing a
  short-term update) does not take a whole core and the interpreter lock from the tracking
  thread and the robot's other nodes. What a frame sees depends on timing, so it is not
  reproducible: the schedule for a live robot, not for benchmarks.

The tracking thread holds :meth:`Learner.exclusive` while it scores and queues jobs. Lock order:
``exclusive`` before the queue's own lock, on both threads.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator

from m5l_core.tracking.config import BudgetConfig

Job = Iterator[None]


class Learner:
    """Pending learning jobs, taking turns step by step (so a long first-frame remainder does not
    hold back the updates); a job of a kind already queued is replaced (newer samples)."""

    def __init__(self, config: BudgetConfig, publish: Callable[[], None] = lambda: None):
        self.config = config
        self._publish = publish     # thread mode: called under exclusive() after every step
        self._jobs: list[tuple[str, Job]] = []
        self._credit = 0.0
        self.steps = 0              # steps run since the last clear()
        self.error: BaseException | None = None   # a job that failed on the learner thread
        self._state = threading.RLock()           # what exclusive() holds
        self._queue = threading.Condition()       # guards the fields above and below
        self._running = False       # the learner thread is inside a step
        self._generation = 0        # bumped by clear(): a step of a dropped job is not published
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def threaded(self) -> bool:
        return self.config.mode == "thread"

    @property
    def pending(self) -> tuple[str, ...]:
        """Kinds of the queued jobs, the one whose turn is next first (a job whose step runs on the
        learner thread right now is back in the queue after it)."""
        with self._queue:
            return tuple(kind for kind, _ in self._jobs)

    def exclusive(self) -> threading.RLock:
        """The tracker's side of the shared state (re-entrant): no weights are published meanwhile."""
        return self._state

    def clear(self) -> None:
        """Drop every pending job (a step in progress on the learner thread finishes unpublished)."""
        with self._queue:
            self._generation += 1
            self._jobs.clear()
            self._credit = 0.0
            self.steps = 0

    def submit(self, kind: str, job: Job, replace: bool = True) -> None:
        """Queue ``job``; it replaces a queued job of the same kind unless ``replace`` is False (every
        such job must run: one frame's samples each)."""
        with self._queue:
            if replace:
                self._jobs = [(k, j) for k, j in self._jobs if k != kind]
            self._jobs.append((kind, job))
            if self.threaded:
                self._ensure_thread()
                self._queue.notify_all()

    def run_all(self) -> int:
        """Every pending step now (a blocking update); in thread mode, waits for the learner thread
        to finish them instead (call it without holding ``exclusive``). Returns the steps run."""
        with self._queue:
            before = self.steps
            if self.threaded and self._thread is not None:
                self._queue.wait_for(lambda: not self._jobs and not self._running)
                return self.steps - before
        while self._step():
            pass
        return self.steps - before

    def run_frame(self, frame_start: float) -> int:
        """This frame's share of learning; ``frame_start`` is its ``time.perf_counter()`` at arrival.
        Nothing in thread mode (the learner thread does not wait for frames)."""
        cfg = self.config
        if self.threaded:
            return 0
        if cfg.steps_per_frame == 0:
            return self.run_all()
        self._credit += cfg.steps_per_frame
        ran = 0
        while ran + 1 <= self._credit and self._step():
            ran += 1
        # Credit is for work that exists: an idle frame does not bank steps for a later burst.
        self._credit = self._credit - ran if self._jobs else self._credit % 1.0
        if cfg.mode == "time":
            deadline = frame_start + cfg.frame_ms / 1000.0
            while time.perf_counter() < deadline and self._step():
                ran += 1
        return ran

    def take_error(self) -> BaseException | None:
        """The exception a job raised on the learner thread since the last call, if any."""
        with self._queue:
            error, self.error = self.error, None
            return error

    def stop(self, timeout: float = 5.0) -> None:
        """End the learner thread (pending jobs are dropped); the next submit starts a new one."""
        with self._queue:
            thread, self._stopping = self._thread, True
            self._generation += 1
            self._jobs.clear()
            self._queue.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._queue:
            self._thread, self._stopping = None, False

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="m5l-learner", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        """The learner thread: takes the next job's turn, runs its step holding no lock (the tracker
        goes on meanwhile), then publishes the result under ``exclusive``."""
        lower_thread_priority(self.config.thread_nice)
        while True:
            with self._queue:
                self._queue.wait_for(lambda: self._stopping or self._jobs)
                if self._stopping:
                    return
                kind, job = self._jobs.pop(0)
                generation, self._running = self._generation, True
            finished, error = False, None
            started = time.perf_counter()
            try:
                next(job)
            except StopIteration:
                finished = True
            except Exception as exc:   # handed to the tracking thread, which raises it
                error = exc
            with self._state, self._queue:
                self._running = False
                if generation == self._generation:
                    if error is not None:
                        self.error = error
                        self._jobs.clear()
                    else:
                        if not finished:
                            self.steps += 1
                            if kind not in (k for k, _ in self._jobs):   # not replaced meanwhile
                                self._jobs.append((kind, job))
                        self._publish()
                self._queue.notify_all()
            job = None   # an unfinished dropped job must not keep its tracker alive while idle
            self._rest(time.perf_counter() - started)

    def _rest(self, busy: float) -> None:
        """Sleep in proportion to the step just run (``thread_duty``); a stop cuts the rest short."""
        duty = self.config.thread_duty
        if duty < 1.0:
            with self._queue:
                self._queue.wait_for(lambda: self._stopping, timeout=busy * (1.0 - duty) / duty)

    def _step(self) -> bool:
        """One step of the job whose turn it is, on the calling thread; False when nothing is pending."""
        with self._queue:
            while self._jobs:
                try:
                    next(self._jobs[0][1])
                except StopIteration:
                    self._jobs.pop(0)
                    continue
                self._jobs.append(self._jobs.pop(0))
                self.steps += 1
                return True
            return False


def one_step(work: Callable[[], None]) -> Job:
    """A job whose whole work is one call, made by its one step."""
    work()
    yield


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value (Linux threads have their own), so the tracking thread
    and the rest of the robot come first; learning (and the node's predicted boxes) can wait."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):   # a platform that refuses: learning just runs at the same priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
