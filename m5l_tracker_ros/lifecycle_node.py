"""The managed (lifecycle) tracking node: the same work as ``TrackerNode``, driven by transitions.

    ros2 run m5l_tracker_ros track_lifecycle_node --ros-args --params-file config/track.yaml
    ros2 lifecycle set /m5l_tracker configure     # loads the model, creates the publishers
    ros2 lifecycle set /m5l_tracker activate      # subscribes, tracks, publishes

* configure: reads the parameters, loads the model (a bad checkpoint fails the transition and the
  node stays unconfigured), creates the (managed) publishers and the worker;
* activate: subscribes to the images and ``~/init``, offers ``~/reset``, publishes;
* deactivate: unsubscribes and pauses; the tracker keeps its target for the next activation;
* cleanup: stops the worker and frees the model; shutdown: the same from any state.

Parameters are declared at construction, so ``ros2 param`` works in every state; changes to
``tracker.*`` or ``initial_bbox`` made while unconfigured apply at the next configure.
"""

from __future__ import annotations

from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from m5l_tracker_ros.node import NODE_NAME, START_ERRORS, TrackingNodeMixin
from m5l_tracker_ros.tracker_backend import TrackerBackend


class ManagedTrackerNode(TrackingNodeMixin, LifecycleNode):
    """See the module docstring; publishers are lifecycle publishers, enabled while active."""

    def __init__(self, backend: TrackerBackend | None = None, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._declare_tracking(backend)

    def _output_publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        return self.create_lifecycle_publisher(msg_type, topic, qos)

    def _destroy_output_publisher(self, publisher: Any) -> None:
        self.destroy_lifecycle_publisher(publisher)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure_tracking()
        except START_ERRORS as err:
            self.get_logger().error(f"configure failed: {err}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info("configured: model loaded")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate_tracking()
        return super().on_activate(state)  # enables the managed publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate_tracking()
        self.get_logger().info("deactivated: paused, target kept")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate_tracking()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate_tracking()
        self._release()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured: configure may be tried again

    def _release(self) -> None:
        self._cleanup_tracking()
        self._destroy_publishers()

    def destroy_node(self) -> None:
        self._deactivate_tracking()
        self._cleanup_tracking()
        super().destroy_node()
