"""Node parameters: descriptors from the config dataclasses, validation, the shipped YAML.

These tests build the node in this process with a stand-in tracker, so they need rclpy and
the built message package but no second process.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402

from m5l_core.config import ConfigError, describe, nested, param  # noqa: E402
from m5l_core.preprocess import PreprocessConfig  # noqa: E402
from m5l_core.tracking.api import TrackResult  # noqa: E402
from m5l_tracker_ros import workspace  # noqa: E402
from m5l_tracker_ros.params import NodeConfig  # noqa: E402
from m5l_tracker_ros.ros_parameters import make_descriptor, parameter_type  # noqa: E402
from m5l_tracker_ros.tracker_backend import TrackerBackend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SearchConfig:
    """Candidate search."""

    radius: float = param(2.0, "search radius in box sizes", low=0.5, high=10.0)
    mode: str = param("fast", "search mode", choices=("fast", "slow"), read_only=True)
    sampler: str = param("gauss", "candidate sampler", choices=("gauss", "uniform"))


@dataclass(frozen=True)
class StandInConfig:
    """Stand-in for TrackerConfig: nested configs, an empty-tuple default, a read-only field."""

    search: SearchConfig = nested(SearchConfig)
    preprocess: PreprocessConfig = nested(PreprocessConfig)
    update_interval: int = param(10, "frames between updates", low=1, high=1000)


class StandInTracker:
    def initialize(self, rgb, thermal, box):
        self.box = np.asarray(box, float)

    def track(self, rgb, thermal):
        return TrackResult(self.box, 1.0, True, 0.5, 0.5)


def load_stand_in(checkpoint=None, config=None, device="auto", seed=0):
    load_stand_in.calls.append((checkpoint, config, device, seed))
    return StandInTracker()


load_stand_in.calls = []


@pytest.fixture(scope="module")
def context():
    workspace.load_built_messages()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=1 + os.getpid() % 100)
    yield ctx
    rclpy.shutdown(context=ctx)


@pytest.fixture
def make_node(context):
    from m5l_tracker_ros.node import TrackerNode
    nodes = []

    def make(**overrides):
        params = [Parameter(k, value=v) for k, v in overrides.items()]
        node = TrackerNode(TrackerBackend(StandInConfig, load_stand_in), context=context,
                           parameter_overrides=params)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.destroy_node()


def descriptor_of(cls, name):
    meta = dict(describe(cls))[name]
    return make_descriptor(name, meta, parameter_type(meta["type"]))


def test_descriptors_carry_help_ranges_choices_and_read_only():
    slop = descriptor_of(NodeConfig, "sync_slop")
    assert slop.read_only and "paired" in slop.description
    assert (slop.floating_point_range[0].from_value, slop.floating_point_range[0].to_value) == (1e-4, 10.0)
    qos = descriptor_of(NodeConfig, "image_qos")
    assert qos.additional_constraints == "one of: sensor_data, reliable"
    timeout = descriptor_of(NodeConfig, "stream_timeout")
    assert not timeout.read_only and timeout.floating_point_range[0].to_value == 3600.0
    box = descriptor_of(NodeConfig, "initial_bbox")
    assert box.type == Parameter.Type.DOUBLE_ARRAY.value and box.additional_constraints == "each value >= 0.0"
    low_only = descriptor_of(StandInConfig, "update_interval")
    assert low_only.integer_range[0].from_value == 1


def test_the_node_declares_its_own_and_the_tracker_parameters(make_node):
    node = make_node(**{"sync_slop": 0.02, "tracker.search.radius": 3.0})
    assert node.config.sync_slop == 0.02 and node.tracker_config.search.radius == 3.0
    assert node.tracker_config.preprocess.thermal_scale == ()      # empty-tuple default, declared by type
    described = node.describe_parameters(["tracker.search.mode", "tracker.preprocess.thermal_scale"])
    assert described[0].read_only and described[1].type == Parameter.Type.DOUBLE_ARRAY.value
    checkpoint, config, device, _ = load_stand_in.calls[-1]
    assert checkpoint is None and config.search.radius == 3.0 and device == "auto"


def test_invalid_values_are_refused_with_a_reason(make_node):
    node = make_node()
    refused = {
        "stream_timeout": (-1.0, "out of range"),             # declared range (checked by rclpy)
        "initial_bbox": ([1.0, 2.0, 3.0], "expected 4 values"),  # cross-field check of the node
        "device": ("cpu", "read-only"),                      # needs a restart
        "tracker.search.radius": (50.0, "out of range"),
        "tracker.search.sampler": ("triangle", "is not one of"),  # choices (checked by from_dict)
    }
    for name, (value, reason) in refused.items():
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and reason in result.reason, (name, result.reason)
    assert node.config == NodeConfig() and node.tracker_config == StandInConfig()


def test_valid_changes_apply_while_running(make_node):
    node = make_node()
    results = node.set_parameters([Parameter("debug_image", value=True),
                                   Parameter("tracker.search.radius", value=4.5)])
    assert all(r.successful for r in results)
    assert node.config.debug_image and node.tracker_config.search.radius == 4.5


def test_an_unknown_parameter_stops_the_node_with_a_hint(make_node):
    with pytest.raises(ConfigError, match="did you mean 'sync_slop'"):
        make_node(sync_slp=0.1)


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_the_shipped_params_file_only_holds_known_valid_parameters():
    from m5l_tracker_ros.tracker_backend import default_backend
    data = yaml.safe_load((ROOT / "config" / "track.yaml").read_text())
    values = dict(_flatten(data["/**"]["ros__parameters"]))
    node_names = {name for name, _ in describe(NodeConfig)}
    tracker_cls = default_backend().config_class
    tracker_names = {f"tracker.{name}" for name, _ in describe(tracker_cls)}
    assert set(values) <= node_names | tracker_names
    assert node_names <= set(values)  # every node parameter is documented in the file
    for name, value in values.items():
        cls = NodeConfig if name in node_names else tracker_cls
        meta = dict(describe(cls))[name.removeprefix("tracker.")]
        assert type(value) is type(meta["default"]) or isinstance(meta["default"], tuple), name
        if isinstance(value, float):
            assert math.isfinite(value)


def test_integers_are_taken_where_floats_are_expected(make_node):
    node = make_node(initial_bbox=[1, 2, 3, 4], stream_timeout=2)   # as a params file or -p gives them
    assert node.config.initial_bbox == (1.0, 2.0, 3.0, 4.0) and node.config.stream_timeout == 2.0
    results = node.set_parameters([Parameter("initial_bbox", value=[5, 6, 7, 8]),
                                   Parameter("stream_timeout", value=3),
                                   Parameter("tracker.search.radius", value=4)])
    assert all(r.successful for r in results), results
    assert node.config.initial_bbox == (5.0, 6.0, 7.0, 8.0) and node.tracker_config.search.radius == 4.0
    assert node.get_parameter("initial_bbox").type_ == Parameter.Type.DOUBLE_ARRAY
    refused = node.set_parameters([Parameter("tracker.update_interval", value=2.5)])[0]
    assert not refused.successful  # no narrowing: a float stays refused for an integer parameter


def _spin_until(executor, future, timeout=10.0):
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    assert future.done(), "no answer from the node's parameter services"
    return future.result()


def ros2_param_dump(context, node) -> dict:
    """What `ros2 param dump` prints: list_parameters, then get_parameters for all of them, nested."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient
    client_node = rclpy.create_node("m5l_param_dump", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(client_node)
    try:
        client = AsyncParameterClient(client_node, node.get_fully_qualified_name())
        assert client.wait_for_services(10)
        names = sorted(_spin_until(executor, client.list_parameters()).result.names)
        values = _spin_until(executor, client.get_parameters(names)).values
    finally:
        executor.shutdown()
        client_node.destroy_node()
    assert len(values) == len(names), "GetParameters answered nothing: a parameter has no value"
    dumped: dict = {}
    for name, value in zip(names, values, strict=True):
        level = dumped
        for part in name.split(".")[:-1]:
            level = level.setdefault(part, {})
        level[name.split(".")[-1]] = parameter_value_to_python(value)
    return {node.get_fully_qualified_name(): {"ros__parameters": dumped}}


def test_every_parameter_has_a_value_and_a_dump_loads_back_as_a_params_file(make_node, context, tmp_path):
    from m5l_tracker_ros.node import TrackerNode
    node = make_node(**{"tracker.preprocess.thermal_offset": [2.0, 1.0], "debug_image": True})
    unset = [name for name, p in node._parameters.items() if p.type_ == Parameter.Type.NOT_SET]
    assert unset == []
    dump = ros2_param_dump(context, node)
    assert dump["/m5l_tracker"]["ros__parameters"]["tracker"]["preprocess"]["thermal_scale"] == []
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.dump(dump, default_flow_style=False))
    reloaded_context = rclpy.Context()   # a fresh process would read the file like this
    rclpy.init(args=["--ros-args", "--params-file", str(path)], context=reloaded_context,
               domain_id=1 + os.getpid() % 100)
    try:
        reloaded = TrackerNode(TrackerBackend(StandInConfig, load_stand_in), context=reloaded_context)
        assert reloaded.config == node.config and reloaded.tracker_config == node.tracker_config
        reloaded.destroy_node()
    finally:
        rclpy.shutdown(context=reloaded_context)
