"""The M5L tracking node: synchronized RGB + thermal images in, one TrackedTarget per pair out.

    ros2 run m5l_tracker_ros track_node --ros-args --params-file config/track.yaml
    ros2 launch m5l_tracker_ros track.launch.py          (sets the Fast DDS profile too)

Topics (relative names resolve in the node's namespace; all remappable):
    in:  rgb/image_raw, thermal/image_raw (sensor_msgs/Image), ~/init (sensor_msgs/RegionOfInterest)
    out: /m5l/target_bbox (m5l_tracker_ros/TrackedTarget), ~/debug_image, /diagnostics
    srv: ~/reset (std_srvs/Trigger): forget the target until the next box

Callbacks only hand pairs to a worker thread, which converts, tracks and publishes the newest
pair; older pairs are dropped and counted. Parameters: see ``params.NodeConfig`` and, under
``tracker.``, ``m5l_core.tracking.TrackerConfig``.
"""

from __future__ import annotations

import difflib
import sys
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from m5l_core.config import ConfigError, from_dict
from m5l_tracker_ros import image_conv, ros_io
from m5l_tracker_ros.diagnostics import NodeStats, StreamWatch, build_status
from m5l_tracker_ros.params import NodeConfig, check_node_config, initial_box
from m5l_tracker_ros.ros_parameters import changes_by_prefix, declare_config, read_values
from m5l_tracker_ros.session import BoxError, TrackerFactory, TrackingSession
from m5l_tracker_ros.tracker_backend import TrackerBackend, default_backend
from m5l_tracker_ros.worker import LatestWorker

NODE_NAME = "m5l_tracker"
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
TRACKER_PREFIX = "tracker."
STREAM_NAMES = ("rgb", "thermal")


class TrackerNode(Node):
    """ROS glue around :class:`TrackingSession`; see the module docstring."""

    def __init__(self, backend: TrackerBackend | None = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._backend = backend or default_backend()
        self._param_names = set(declare_config(self, NodeConfig))
        self._param_names |= set(declare_config(self, self._backend.config_class, TRACKER_PREFIX))
        check_overrides(getattr(self, "_parameter_overrides", {}), self._param_names)
        self.config, self.tracker_config = self._read_configs()
        self._message_type = load_message_type()
        self._warned_at: dict[str, float] = {}
        self.stats = NodeStats()
        self.streams = [StreamWatch(name) for name in STREAM_NAMES]
        self._bridge = image_conv.load_cv_bridge()
        self.session = TrackingSession(self._factory(self.tracker_config))
        self.session.ensure_tracker()  # load the model now: a bad checkpoint fails at start, not later
        self.worker: LatestWorker[ros_io.FramePair] = LatestWorker(
            self._process, self.config.pending_pairs, self._on_worker_error)
        self._create_interfaces()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        box = initial_box(self.config)
        if box is not None:
            self.session.request_box(box)
        self.worker.start()
        self.get_logger().info(
            f"tracking {self.config.rgb_topic} + {self.config.thermal_topic} -> {self.config.output_topic} "
            f"(pairing: {self.images.backend}, cv_bridge: {'yes' if self._bridge else 'no'}, "
            f"device: {self.config.device}, {'initial box given' if box else 'waiting for ~/init'})")

    def _factory(self, tracker_config: Any) -> TrackerFactory:
        return self._backend.build_factory(self.config, tracker_config)

    def _read_configs(self) -> tuple[NodeConfig, Any]:
        node_values = read_values(self, [n for n in self._param_names if not n.startswith(TRACKER_PREFIX)])
        tracker_values = read_values(self, [n for n in self._param_names if n.startswith(TRACKER_PREFIX)],
                                     TRACKER_PREFIX)
        node_config = check_node_config(from_dict(NodeConfig, node_values, "parameters"))
        tracker_config = from_dict(self._backend.config_class, tracker_values, "parameters (tracker.)")
        return node_config, tracker_config

    def _create_interfaces(self) -> None:
        cfg = self.config
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.target_pub = self.create_publisher(self._message_type, cfg.output_topic, reliable)
        self.debug_pub = self.create_publisher(Image, "~/debug_image", ros_io.image_qos("sensor_data", 2))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.images = ros_io.PairedImageInput(
            self, (cfg.rgb_topic, cfg.thermal_topic), ros_io.image_qos(cfg.image_qos, cfg.image_qos_depth),
            cfg.sync_queue_size, cfg.sync_slop, self.worker.submit, self._admit_image,
            ros_io.load_message_filters())
        self.init_sub = self.create_subscription(RegionOfInterest, "~/init", self._on_init, reliable)
        self.reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        self.watch_timer = self.create_timer(0.2, self._watch_streams)
        self.diag_timer = self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)

    # --- callbacks (executor thread): quick, never raise ---------------------------------------

    def _admit_image(self, index: int, msg: Image) -> bool:
        """Note the arrival; refuse (count, warn) an image whose layout is unusable, before pairing.

        Only the header fields are checked here, so the callback stays quick; decoding (and the
        NaN check of float images) happens in the worker.
        """
        self.streams[index].arrived(time.monotonic())
        stream = STREAM_NAMES[index]
        try:
            image_conv.check_layout(msg, image_conv.ACCEPTED[stream], self.config.max_image_side)
        except image_conv.ImageError as err:
            self.stats.record_rejected(stream)
            self.warn(f"reject-{stream}", f"{stream} image rejected: {err}")
            return False
        return True

    def _on_init(self, roi: RegionOfInterest) -> None:
        try:
            self.session.request_box((roi.x_offset, roi.y_offset, roi.width, roi.height))
            self.get_logger().info(f"new target box {roi.x_offset},{roi.y_offset} {roi.width}x{roi.height}")
        except BoxError as err:
            self.warn("init", f"~/init ignored: {err}")

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.session.request_reset()
        response.success = True
        response.message = "target forgotten; send a box on ~/init or set initial_bbox"
        self.get_logger().info("reset: waiting for a new box")
        return response

    def _watch_streams(self) -> None:
        now = time.monotonic()
        for stream in self.streams:
            change = stream.update(now, self.config.stream_timeout)
            if change == "stale":
                self.get_logger().warning(f"{stream.name} stream stale: no image for "
                                          f"{stream.age(now):.1f} s; tracking paused")
            elif change == "recovered":
                self.get_logger().info(f"{stream.name} stream back; tracking resumes")

    def _publish_diagnostics(self) -> None:
        try:
            status = build_status(f"{self.get_fully_qualified_name()}: tracking", self.stats, self.streams,
                                  self.config.stream_timeout, self.worker.dropped, self.images.unpaired(),
                                  time.monotonic())
            self.diag_pub.publish(DiagnosticArray(header=self._stamp_header(), status=[status]))
        except Exception as err:
            self.warn("diagnostics", f"diagnostics failed: {err!r}")

    def _stamp_header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg())

    # --- worker thread ------------------------------------------------------------------------

    def _process(self, pair: ros_io.FramePair) -> None:
        images = self._convert(pair)
        if images is None:
            return
        rgb, thermal = images
        try:
            outcome = self.session.step(rgb, thermal)
        except BoxError as err:
            self.warn("init", f"box ignored: {err}")
            outcome = self.session.step(rgb, thermal)
        msg = ros_io.fill_target(self._message_type(), pair.rgb.header, outcome,
                                 time.monotonic() - pair.completed)
        self.target_pub.publish(msg)
        self.stats.record_result(outcome.state, msg.latency)
        if self.config.debug_image and self.debug_pub.get_subscription_count() > 0:
            self.debug_pub.publish(ros_io.debug_image(pair.rgb.header, rgb, outcome))

    def _convert(self, pair: ros_io.FramePair) -> tuple[Any, Any] | None:
        """Both images as arrays, or None (counted, warned) if either is unusable."""
        stream = "rgb"
        try:
            rgb = image_conv.to_rgb(pair.rgb, self.config.max_image_side, self._bridge)
            stream = "thermal"
            thermal = image_conv.to_thermal(pair.thermal, self.config.max_image_side, self._bridge)
        except image_conv.ImageError as err:
            self.stats.record_rejected(stream)
            self.warn(f"reject-{stream}", f"{stream} image rejected: {err}")
            return None
        return rgb, thermal

    def _on_worker_error(self, _pair: ros_io.FramePair, err: Exception) -> None:
        if not self.context.ok():
            return  # shutting down: the step in progress could not publish any more
        self.stats.record_tracker_error()
        self.warn(f"tracker-{type(err).__name__}", f"tracking step failed: {type(err).__name__}: {err}")

    # --- parameters ---------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        ours = [p for p in parameters if p.name in self._param_names]
        changes = changes_by_prefix(ours, ["", TRACKER_PREFIX])
        try:
            node_config = check_node_config(from_dict(NodeConfig, changes.get(""), "parameter", self.config))
            tracker_changes = changes.get(TRACKER_PREFIX)
            tracker_config = from_dict(type(self.tracker_config), tracker_changes, "parameter",
                                       self.tracker_config)
        except ConfigError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self._apply(node_config, tracker_config, tracker_changes is not None)
        return SetParametersResult(successful=True)

    def _apply(self, node_config: NodeConfig, tracker_config: Any, tracker_changed: bool) -> None:
        box_changed = node_config.initial_bbox != self.config.initial_bbox
        self.config = node_config
        if tracker_changed:
            self.tracker_config = tracker_config
            self.session.replace_factory(self._factory(tracker_config))
            self.get_logger().info("tracker parameters changed: they apply from the next initialisation")
        box = initial_box(node_config)
        if box_changed and box is not None:
            self.session.request_box(box)

    # --- helpers ------------------------------------------------------------------------------

    def warn(self, kind: str, message: str) -> None:
        """Warning throttled per kind (log_throttle seconds), so a bad stream cannot flood the log."""
        now = time.monotonic()
        if now - self._warned_at.get(kind, -1e18) >= self.config.log_throttle:
            self._warned_at[kind] = now
            self.get_logger().warning(message)

    def destroy_node(self) -> None:
        self.worker.stop()
        super().destroy_node()


def check_overrides(overrides: dict, declared: set[str]) -> None:
    """Refuse parameters given to the node (params file, -p) that it does not have: typos."""
    for name in sorted(overrides):
        if name in declared or name in ROS_OWN_PARAMETERS or name.startswith("qos_overrides."):
            continue
        hint = difflib.get_close_matches(name, sorted(declared), n=1)
        raise ConfigError(f"parameters: unknown parameter {name!r}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def load_message_type() -> type:
    """The generated TrackedTarget class, with a hint when the package was not built."""
    try:
        from m5l_tracker_ros.msg import TrackedTarget
    except ImportError as err:
        raise ConfigError(f"m5l_tracker_ros.msg is not available ({err}): build the package (make setup or "
                          "colcon build) and source install/setup.bash") from None
    return TrackedTarget


def main(argv: list[str] | None = None, backend: TrackerBackend | None = None) -> int:
    """Console entry point (``m5l-track-node``, ``track_node``); exit 2 on a start-up error."""
    rclpy.init(args=argv if argv is not None else sys.argv)
    node = None
    try:
        try:
            node = TrackerNode(backend)
        except (ConfigError, ParameterException, ImportError, OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
