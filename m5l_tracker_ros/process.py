"""The life of a node process: start, spin, and exit 0 within a second of SIGINT or SIGTERM.

Python runs signal handlers in the main thread only, between two bytecodes. rclpy's own handlers
raise KeyboardInterrupt wherever the main thread happens to be (a traceback out of a cleanup when
Ctrl-C reaches the process twice, once from the terminal and once from launch) and leave SIGTERM
to kill the process mid-step. A main thread busy importing torch, loading the model or running a
long callback would also react late. So the main thread here only supervises: it installs its own
handlers before anything heavy is imported, starts and spins the node on a thread, and waits for
either to end. On a stop signal the node thread leaves its spin loop and cleans up; whatever does
not finish within ``STOP_GRACE_S`` (a tracker step inside torch cannot be interrupted) is
abandoned: the process ends with ``os._exit`` after flushing its output, because interpreter
finalisation with a thread still inside native code aborts ("terminate called without an active
exception").

This module imports only the standard library at import time, so that the handlers are in place
within milliseconds of the start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_GRACE_S = 0.6   # the node's own cleanup; the process is gone well within a second
SPIN_PERIOD_S = 0.1  # how often the spin loop and the supervisor look at the stop request
EXIT_OK, EXIT_FAILED, EXIT_START_ERROR = 0, 1, 2


class StartError(Exception):
    """A start-up problem the user can fix (a parameter, the checkpoint, the build): exit 2, no traceback."""


class StopRequest:
    """Set by SIGINT or SIGTERM (any number of times, never raising), or by the node thread ending."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> StopRequest:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
        self._event.set()

    def set(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def arguments(argv: list[str] | None) -> list[str]:
    return list(sys.argv if argv is None else argv)


def run_node_process(start: Callable[[], Any], stop: StopRequest | None = None) -> NoReturn:
    """Run ``start()`` (returns a node with ``context`` and ``close(timeout)``) and spin it; never returns.

    Exit status: 0 after a stop signal or an external shutdown, 2 for a StartError, 1 otherwise.
    """
    stop = stop or StopRequest().install()
    outcome: dict[str, int] = {}
    node_thread = threading.Thread(target=_serve, args=(start, stop, outcome), name="m5l-node", daemon=True)
    node_thread.start()
    while node_thread.is_alive() and not stop.wait(SPIN_PERIOD_S):
        pass
    node_thread.join(STOP_GRACE_S)
    exit_now(outcome.get("code", EXIT_OK))


def exit_now(code: int) -> NoReturn:
    """Flush and end the process without finalising threads that may still be inside torch."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe must not block the exit
            stream.flush()
    os._exit(code)


def _serve(start: Callable[[], Any], stop: StopRequest, outcome: dict[str, int]) -> None:
    try:
        node = start()
    except StartError as err:
        print(f"error: {err}", file=sys.stderr)
        outcome["code"] = EXIT_START_ERROR
        return
    except Exception:
        traceback.print_exc()
        outcome["code"] = EXIT_FAILED
        return
    code = EXIT_OK
    try:
        spin_until_stopped(node, stop)
    except Exception:
        traceback.print_exc()
        code = EXIT_FAILED
    finally:
        if stop.signal_name:
            node.get_logger().info(f"{stop.signal_name}: stopping")
        _close(node)
        outcome["code"] = code
        stop.set()


def spin_until_stopped(node: Any, stop: StopRequest) -> None:
    """Spin ``node`` until a stop is requested or its context is shut down."""
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    try:
        while not stop.requested and node.context.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        pass
    finally:
        executor.remove_node(node)
        executor.shutdown(timeout_sec=0)


def _close(node: Any) -> None:
    import rclpy
    context = node.context
    try:
        node.close(STOP_GRACE_S / 2)
    finally:
        rclpy.try_shutdown(context=context)


def track_node(argv: list[str] | None = None) -> NoReturn:
    """``track_node`` / ``m5l-track-node``: the plain node, configured and active from the start."""
    stop = StopRequest().install()

    def start() -> Any:
        from m5l_tracker_ros import node
        return node.start(arguments(argv))

    run_node_process(start, stop)


def track_lifecycle_node(argv: list[str] | None = None) -> NoReturn:
    """``track_lifecycle_node`` / ``m5l-track-lifecycle-node``: the managed node, unconfigured at start."""
    stop = StopRequest().install()

    def start() -> Any:
        from m5l_tracker_ros import lifecycle_node, node
        return node.start(arguments(argv), node_class=lifecycle_node.ManagedTrackerNode)

    run_node_process(start, stop)
