"""The M5L tracking node: synchronized RGB + thermal images in, one TrackedTarget per pair out.

    ros2 run m5l_tracker_ros track_node --ros-args --params-file config/track.yaml
    ros2 launch m5l_tracker_ros track.launch.py          (sets the Fast DDS profile too)

Topics (relative names resolve in the node's namespace; all remappable):
    in:  rgb/image_raw, thermal/image_raw (sensor_msgs/Image), ~/init (sensor_msgs/RegionOfInterest)
    out: /m5l/target_bbox (m5l_tracker_ros/TrackedTarget), ~/debug_image, /diagnostics
    srv: ~/reset (std_srvs/Trigger): forget the target until the next box

Callbacks only hand pairs to a worker thread, which converts, tracks and publishes the newest
pair; older pairs are dropped and counted, and (``predict_dropped``) get the last tracked box
moved by optical flow, published with state PREDICTED. Parameters: see ``params.NodeConfig`` and, under
``tracker.``, ``m5l_core.tracking.TrackerConfig``.

The work is in :class:`TrackingNodeMixin`, in four steps a managed node maps onto its life
cycle (``lifecycle_node.ManagedTrackerNode``): declare parameters (constructor), configure
(load the model, create publishers), activate (subscribe, start the worker) and back. The plain
:class:`TrackerNode` runs all of them at construction. The executables run the nodes in a process
that exits 0 within a second on SIGINT or SIGTERM (``process.track_node``).
"""

from __future__ import annotations

import difflib
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from m5l_core.config import ConfigError, from_dict
from m5l_core.tracking.api import TrackState
from m5l_core.tracking.learner import lower_thread_priority
from m5l_core.tracking.propagate import FlowPropagator
from m5l_tracker_ros import image_conv, process, ros_io
from m5l_tracker_ros.delivery import transport_advice
from m5l_tracker_ros.diagnostics import NodeStats, StreamWatch, build_status
from m5l_tracker_ros.pairing import NegativeStampError, stamp_to_ns
from m5l_tracker_ros.params import NODE_NAME, NodeConfig, check_node_config, initial_box
from m5l_tracker_ros.ros_parameters import (
    changes_by_prefix,
    declare_config,
    read_values,
    widen_integer_changes,
)
from m5l_tracker_ros.session import BoxError, Outcome, TrackerFactory, TrackingSession
from m5l_tracker_ros.tracker_backend import TrackerBackend, default_backend
from m5l_tracker_ros.worker import LatestWorker

ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
TRACKER_PREFIX = "tracker."
STREAM_NAMES = ("rgb", "thermal")
# A tracking step inside torch cannot be interrupted: stopping waits this long, then abandons it.
WORKER_STOP_TIMEOUT_S = 0.3
FLUSH = "flush"      # the predictor's one request: publish what can be predicted now (None stops a worker)
PREDICTOR_NICE = 5   # between tracking (0) and learning (budget.thread_nice, 10)
START_ERRORS = (ConfigError, ParameterException, ImportError, OSError, ValueError)


class TrackingNodeMixin:
    """The tracking node's work, for a plain ``rclpy.node.Node`` or a lifecycle one; see the module doc."""

    session: TrackingSession | None = None
    worker: LatestWorker | None = None
    predictor: LatestWorker | None = None
    images: ros_io.PairedImageInput | None = None

    def _declare_tracking(self, backend: TrackerBackend | None) -> None:
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
        self._active_entities: list[tuple[str, Any]] = []
        self.add_pre_set_parameters_callback(lambda params: widen_integer_changes(self, params))
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _configure_tracking(self) -> None:
        """Load the model (a bad checkpoint fails here, not at the first pair) and create the outputs."""
        self.session = TrackingSession(self._factory(self.tracker_config), self._on_resize)
        self.session.ensure_tracker()
        box = initial_box(self.config)
        if box is not None:
            self.session.request_box(box)
        self.propagator = FlowPropagator.for_tracker(self.tracker_config)
        self.predictor = LatestWorker(self._publish_predictions, 1, self._on_predictor_error, "m5l-predictor",
                                      on_start=lambda: lower_thread_priority(PREDICTOR_NICE))
        self.predictor.start()
        self.worker = LatestWorker(self._process, self.config.pending_pairs, self._on_worker_error,
                                   on_drop=self._on_dropped)
        self.worker.start()
        self._create_publishers()

    def _activate_tracking(self) -> None:
        self._create_inputs()
        box = initial_box(self.config)
        self.get_logger().info(
            f"tracking {self.config.rgb_topic} + {self.config.thermal_topic} -> {self.config.output_topic} "
            f"(pairing: {self.images.backend}, cv_bridge: {'yes' if self._bridge else 'no'}, "
            f"device: {self.config.device}, {'initial box given' if box else 'waiting for ~/init'})")

    def _deactivate_tracking(self) -> None:
        """Stop listening; the tracker and its target stay for the next activation."""
        for kind, entity in reversed(self._active_entities):
            getattr(self, f"destroy_{kind}")(entity)
        self._active_entities.clear()
        self.images = None

    def _cleanup_tracking(self, worker_timeout: float = WORKER_STOP_TIMEOUT_S) -> None:
        """Stop the worker and free the model; publishers go with ``_destroy_publishers``."""
        if self.worker is not None:
            self.worker.stop(worker_timeout)
            self.predictor.stop(worker_timeout)
        if self.session is not None:
            self.session.close()
        self.worker, self.predictor, self.session = None, None, None

    def _factory(self, tracker_config: Any) -> TrackerFactory:
        return self._backend.build_factory(self.config, tracker_config)

    def _read_configs(self) -> tuple[NodeConfig, Any]:
        node_values = read_values(self, [n for n in self._param_names if not n.startswith(TRACKER_PREFIX)])
        tracker_values = read_values(self, [n for n in self._param_names if n.startswith(TRACKER_PREFIX)],
                                     TRACKER_PREFIX)
        node_config = check_node_config(from_dict(NodeConfig, node_values, "parameters"))
        tracker_config = from_dict(self._backend.config_class, tracker_values, "parameters (tracker.)")
        return node_config, tracker_config

    def _output_publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        """A publisher of an output (a lifecycle node overrides this with its managed publishers)."""
        return self.create_publisher(msg_type, topic, qos)

    def _create_publishers(self) -> None:
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.target_pub = self._output_publisher(self._message_type, self.config.output_topic, reliable)
        self.debug_pub = self._output_publisher(Image, "~/debug_image", ros_io.image_qos("sensor_data", 2))
        self.diag_pub = self._output_publisher(DiagnosticArray, "/diagnostics", 10)

    def _destroy_publishers(self) -> None:
        for name in ("target_pub", "debug_pub", "diag_pub"):
            publisher = self.__dict__.pop(name, None)
            if publisher is not None:
                self._destroy_output_publisher(publisher)

    def _destroy_output_publisher(self, publisher: Any) -> None:
        self.destroy_publisher(publisher)

    def _create_inputs(self) -> None:
        cfg = self.config
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # Watching streams is about arrivals, not stamps: on steady time, so a paused or jumping /clock
        # (use_sim_time) neither stops the diagnostics nor fakes an outage.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.images = ros_io.PairedImageInput(
            self, (cfg.rgb_topic, cfg.thermal_topic), ros_io.image_qos(cfg.image_qos, cfg.image_qos_depth),
            cfg.sync_queue_size, cfg.sync_slop, self.worker.submit, self._admit_image,
            ros_io.load_message_filters())
        self._active_entities = [("subscription", sub) for sub in self.images.subscriptions] + [
            ("subscription", self.create_subscription(RegionOfInterest, "~/init", self._on_init, reliable)),
            ("service", self.create_service(Trigger, "~/reset", self._on_reset)),
            ("timer", self.create_timer(0.2, self._watch_streams, clock=steady)),
            ("timer", self.create_timer(cfg.diagnostics_period, self._publish_diagnostics, clock=steady)),
        ]

    # --- callbacks (executor thread): quick, never raise ---------------------------------------

    def _admit_image(self, index: int, msg: Image) -> bool:
        """Note the arrival; refuse (count, warn) an image whose layout is unusable, before pairing.

        Only the header fields are checked here, so the callback stays quick; decoding (and the
        NaN check of float images) happens in the worker.
        """
        stream = STREAM_NAMES[index]
        try:
            stamp_ns = stamp_to_ns(msg.header.stamp)  # refused before 1970, as message_filters does
            image_conv.check_layout(msg, image_conv.ACCEPTED[stream], self.config.max_image_side)
        except (image_conv.ImageError, NegativeStampError) as err:
            self.streams[index].arrived(time.monotonic())
            self.stats.record_rejected(stream)
            self.warn(f"reject-{stream}", f"{stream} image rejected: {err}")
            return False
        self.streams[index].arrived(time.monotonic(), stamp_ns)
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

    def _on_dropped(self, pair: ros_io.FramePair) -> None:
        """A pair the worker will not track: it waits for the tracked pair before it, whose box the
        optical flow then moves into it (``_publish_predictions``)."""
        if not self.config.predict_dropped:
            return
        try:   # a pair the worker would refuse gets no box either (only the RGB image is used)
            rgb = image_conv.to_rgb(pair.rgb, self.config.max_image_side, self._bridge)
            image_conv.to_thermal(pair.thermal, self.config.max_image_side, self._bridge)
        except image_conv.ImageError:
            return   # counted and reported where the worker meets such images
        # only the header and arrival stay with the grey image: a stalled tracker keeps no images
        stamp = stamp_to_ns(pair.rgb.header.stamp) / 1e9
        self.propagator.dropped(stamp, rgb, (pair.rgb.header, pair.completed))
        self.predictor.submit(FLUSH)

    def _publish_predictions(self, _request: str) -> None:
        """(Predictor thread) every predicted box that can be made now, published with state PREDICTED."""
        for prediction in self.propagator.predictions():
            header, completed = prediction.payload
            outcome = Outcome(TrackState.PREDICTED, tuple(float(v) for v in prediction.box))
            self.target_pub.publish(ros_io.fill_target(self._message_type(), header, outcome,
                                                       time.monotonic() - completed))
            self.stats.record_predicted()

    def _watch_streams(self) -> None:
        now = time.monotonic()
        for stream in self.streams:
            change = stream.update(now, self.config.stream_timeout)
            if change == "stale":
                self.get_logger().warning(f"{stream.name} stream stale: no image for "
                                          f"{stream.age(now):.1f} s; tracking paused")
            elif change == "recovered":
                self.get_logger().info(f"{stream.name} stream back; tracking resumes")
            delivery = stream.poor_delivery(self.config.stream_timeout, self.config.min_delivery_ratio)
            if delivery is not None:
                self.warn(f"transport-{stream.name}", transport_advice(stream.name, delivery))

    def _publish_diagnostics(self) -> None:
        try:
            status = build_status(f"{self.get_fully_qualified_name()}: tracking", self.stats, self.streams,
                                  self.config.stream_timeout, self.worker.dropped, self.images.unpaired(),
                                  time.monotonic(), self.config.min_delivery_ratio)
            self.diag_pub.publish(DiagnosticArray(header=self._stamp_header(), status=[status]))
            self.get_logger().debug(f"diagnostics: {status.message}")
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
        stamp = stamp_to_ns(pair.rgb.header.stamp) / 1e9   # dropped pairs widen the tracker's search
        predicting = self.config.predict_dropped   # else the tracking thread leaves the flow alone
        if predicting:
            self.propagator.started(stamp)
        try:
            outcome = self.session.step(rgb, thermal, stamp)
        except BoxError as err:
            self.warn("init", f"box ignored: {err}")
            outcome = self.session.step(rgb, thermal, stamp)
        msg = ros_io.fill_target(self._message_type(), pair.rgb.header, outcome,
                                 time.monotonic() - pair.completed)
        self.target_pub.publish(msg)
        if predicting:
            self.propagator.result(stamp, rgb, outcome.box if outcome.state == TrackState.TRACKING else None)
            self.predictor.submit(FLUSH)
        self.stats.record_result(outcome.state, msg.latency, outcome.timings, outcome.counters)
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

    def _on_resize(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        self.warn("resize", f"frame size changed from {old[0]}x{old[1]} to {new[0]}x{new[1]}: tracker "
                            "initialised again on the new frames with the box scaled")

    def _on_predictor_error(self, _request: str, err: Exception) -> None:
        self.warn("predict", f"predicted boxes for dropped pairs failed: {err!r}")

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
            if self.session is not None:  # else the next configure builds it
                self.session.replace_factory(self._factory(tracker_config))
            self.get_logger().info("tracker parameters changed: they apply from the next initialisation")
        box = initial_box(node_config)
        if box_changed and box is not None and self.session is not None:
            self.session.request_box(box)

    # --- helpers ------------------------------------------------------------------------------

    def warn(self, kind: str, message: str) -> None:
        """Warning throttled per kind (log_throttle seconds), so a bad stream cannot flood the log."""
        now = time.monotonic()
        if now - self._warned_at.get(kind, -1e18) >= self.config.log_throttle:
            self._warned_at[kind] = now
            self.get_logger().warning(message)

    def close(self, worker_timeout: float = WORKER_STOP_TIMEOUT_S) -> None:
        """Stop (abandoning a tracking step still running after ``worker_timeout``) and destroy the node."""
        self._cleanup_tracking(worker_timeout)
        self.destroy_node()


class TrackerNode(TrackingNodeMixin, Node):
    """The plain node: configured and active from construction until destroyed."""

    def __init__(self, backend: TrackerBackend | None = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._declare_tracking(backend)
        self._configure_tracking()
        self._activate_tracking()

    def destroy_node(self) -> None:
        self._cleanup_tracking()
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


def start(argv: list[str], backend: TrackerBackend | None = None, node_class: type = TrackerNode) -> Any:
    """Initialise rclpy (signals are ``process``'s) and build the node; start-up errors -> StartError."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    try:
        return node_class(backend)
    except START_ERRORS as err:
        rclpy.try_shutdown()
        raise process.StartError(str(err)) from None
