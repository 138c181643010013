"""The rclpy side of a replay: publish recorded CDR bytes to the node, record its outputs.

Images are published as the serialized bytes read from the bag (``Publisher.publish`` accepts
``bytes``), with only the header stamp rewritten (:func:`outputs.with_stamp`), so a replay costs
no image (de)serialisation. Outputs are received raw as well and decoded with ``rosbags``.
The client spins its own context in a background thread; the caller's thread publishes and waits.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from m5l_tracker_ros.bag.errors import BagError
from m5l_tracker_ros.bag.outputs import Output, output_from_cdr

# Reliable publishers match the node's best-effort (sensor_data) subscriptions as well as
# reliable ones; the depth covers a realtime burst.
PUBLISH_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
DISCOVERY_SETTLE_S = 1.0  # GUIDE §3: frames sent right after the match may still be lost
STAGE_KEY = re.compile(r"stage_(\w+)_mean_ms")   # the node's per-stage means in /diagnostics
COUNTER_KEY = re.compile(r"total_(\w+)")        # the tracker's running totals in /diagnostics
STAGE_WAIT_S = 2.5     # > the node's default diagnostics_period (1 s) with room for a busy node


@dataclass(frozen=True)
class NodeEndpoints:
    node_name: str      # fully qualified, e.g. /m5l_tracker
    rgb_topic: str
    thermal_topic: str
    output_topic: str


class ReplayClient:
    """Publishers for both image topics, the output subscription and the node's parameters."""

    def __init__(self, endpoints: NodeEndpoints, output_type: type) -> None:
        self.endpoints = endpoints
        self._context = Context()
        rclpy.init(context=self._context, args=[])
        self._node = Node("m5l_replay", context=self._context)
        self._publishers = [self._node.create_publisher(Image, topic, PUBLISH_QOS)
                            for topic in (endpoints.rgb_topic, endpoints.thermal_topic)]
        self._outputs: list[Output] = []
        self._arrived = threading.Condition()
        self._node.create_subscription(output_type, endpoints.output_topic, self._on_output, OUTPUT_QOS,
                                       raw=True)
        self._stage_windows: list[dict[str, float]] = []
        self._counters: dict[str, int] = {}
        self._node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._parameters = AsyncParameterClient(self._node, endpoints.node_name)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._spinner = threading.Thread(target=self._spin, name="m5l-replay-spin", daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        with contextlib.suppress(ExternalShutdownException, KeyboardInterrupt):
            self._executor.spin()

    def _on_output(self, raw: bytes) -> None:
        received = time.time_ns()
        try:
            output = output_from_cdr(raw, received)
        except Exception as err:  # nothing may escape a callback; a bad output is reported once
            self._node.get_logger().error(f"undecodable output: {err!r}")
            return
        with self._arrived:
            self._outputs.append(output)
            self._arrived.notify_all()

    def _on_diagnostics(self, message) -> None:
        for status in message.status:
            if not status.name.startswith(f"{self.endpoints.node_name}:"):
                continue
            stages = {match.group(1): float(pair.value) for pair in status.values
                      if (match := STAGE_KEY.fullmatch(pair.key))}
            counters = {match.group(1): int(pair.value) for pair in status.values
                        if (match := COUNTER_KEY.fullmatch(pair.key)) and pair.value.isdigit()}
            if stages:
                with self._arrived:
                    self._stage_windows.append(stages)
                    self._counters.update(counters)
                    self._arrived.notify_all()

    def node_stages_ms(self, wait_s: float = STAGE_WAIT_S) -> dict[str, float]:
        """The tracker's mean milliseconds per stage inside the node: the mean of the node's
        /diagnostics windows (each the mean of its last 2 s), after waiting up to ``wait_s`` for
        one more, so that the run's last frames (a short bag's only ones) are in it."""
        with self._arrived:
            seen = len(self._stage_windows)
            self._arrived.wait_for(lambda: len(self._stage_windows) > seen, timeout=wait_s)
            windows = list(self._stage_windows)
        stages = sorted({stage for window in windows for stage in window})
        return {stage: float(np.mean([w[stage] for w in windows if stage in w])) for stage in stages}

    def node_counters(self) -> dict[str, int]:
        """The tracker's running totals in the node's last /diagnostics (read after
        :meth:`node_stages_ms`, which waits for it): learning steps, updates, failures."""
        with self._arrived:
            return dict(self._counters)

    # --- connection ------------------------------------------------------------------------

    def wait_for_node(self, timeout_s: float, alive=lambda: None) -> None:
        """Until the node subscribes both image topics, publishes outputs and serves parameters.

        ``alive()`` is called while waiting so a node process that died is reported at once.
        """
        deadline = time.monotonic() + timeout_s
        while not self._matched():
            alive()
            if time.monotonic() > deadline:
                raise BagError(f"no tracker node {self.endpoints.node_name} subscribing "
                               f"{self.endpoints.rgb_topic} and {self.endpoints.thermal_topic} and "
                               f"publishing {self.endpoints.output_topic} after {timeout_s:.0f} s "
                               "(check ROS_DOMAIN_ID and the topic names)")
            time.sleep(0.05)
        time.sleep(DISCOVERY_SETTLE_S)

    def _matched(self) -> bool:
        return (all(p.get_subscription_count() > 0 for p in self._publishers)
                and self._node.count_publishers(self.endpoints.output_topic) > 0
                and self._parameters.services_are_ready())

    def set_initial_box(self, box, timeout_s: float = 10.0) -> None:
        """(Re)initialise the node on its next pair with ``box`` via its ``initial_bbox`` parameter.

        The parameter takes exact floats (``~/init`` takes integers). The node only re-initialises
        when the value changes, so it is cleared first.
        """
        for value in ([0.0, 0.0, 0.0, 0.0], [float(v) for v in box]):
            future = self._parameters.set_parameters([Parameter("initial_bbox", value=value)])
            deadline = time.monotonic() + timeout_s
            while not future.done():
                if time.monotonic() > deadline:
                    raise BagError(f"{self.endpoints.node_name} did not answer set_parameters "
                                   f"in {timeout_s:g} s")
                time.sleep(0.01)
            result = future.result().results[0]
            if not result.successful:
                raise BagError(f"{self.endpoints.node_name} refused initial_bbox={value}: {result.reason}")

    # --- traffic ---------------------------------------------------------------------------

    def publish(self, stream: int, raw: bytes) -> None:
        self._publishers[stream].publish(raw)

    def outputs(self) -> list[Output]:
        with self._arrived:
            return list(self._outputs)

    def output_count(self) -> int:
        with self._arrived:
            return len(self._outputs)

    def wait_for_stamp(self, stamp: int, timeout_s: float, alive=lambda: None) -> Output | None:
        """The output carrying header stamp ``stamp``, or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                found = next((o for o in reversed(self._outputs) if o.stamp == stamp), None)
                remaining = deadline - time.monotonic()
                if found is not None or remaining <= 0:
                    return found
                self._arrived.wait(min(remaining, 0.5))
                alive()

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self._node.destroy_node()
        rclpy.try_shutdown(context=self._context)
        self._spinner.join(timeout=2.0)
