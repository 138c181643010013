"""Start the M5L tracking node:  ros2 launch m5l_tracker_ros track.launch.py [arg:=value ...]

Arguments (leave one out to keep the value of the params file; `ros2 launch` refuses `name:=`):
  params_file     parameter YAML (default: the package's config/track.yaml)
  namespace       namespace of the node; relative topics resolve in it
  rgb_topic       RGB sensor_msgs/Image topic          (parameter rgb_topic)
  thermal_topic   thermal sensor_msgs/Image topic      (parameter thermal_topic)
  checkpoint      tracker checkpoint file              (parameter checkpoint)
  device          auto, cpu or cuda                    (parameter device)
  use_sim_time    true to follow /clock (bag replay)
  fastdds_profile Fast DDS profile for large images (default: config/fastdds_large_images.xml);
                  keep = leave FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE as they are
  log_level       debug, info, warn, error: the level of the node's own logger (not rcl's)
  lifecycle       true (default): the managed node, driven to active (configure, then activate);
                  false: the plain node, active from the start
"""

import os

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from m5l_tracker_ros import launch_support as support

PACKAGE = "m5l_tracker_ros"
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")
ARGUMENT_NAMES = ("params_file", "namespace", *support.PASSED_AS_PARAMETERS, "use_sim_time",
                  "fastdds_profile", "log_level", "lifecycle")


def _profile_actions(profile):
    if profile is None:
        return []
    actions = [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile)]
    if os.environ.get("ROS_DISTRO", "").lower() in FAST_DDS_2_DISTROS:
        # Fast DDS 2 only reads the old name (Fast DDS 3 honours it too, with a warning).
        actions.append(SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile))
    return actions


def _drive_to_active(node):
    """Configure at start; activate once configuring has reached inactive (not after a deactivate)."""
    def change(transition_id):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition_id))

    return [
        RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, start_state="configuring",
                                               goal_state="inactive",
                                               entities=[change(Transition.TRANSITION_ACTIVATE)])),
        node,
        change(Transition.TRANSITION_CONFIGURE),
    ]


def _setup(context):
    """Build the actions once the arguments are known, so that arguments left out change nothing."""
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENT_NAMES}
    lifecycle = support.is_true(values["lifecycle"])
    options = dict(
        package=PACKAGE,
        executable=support.EXECUTABLES[lifecycle],
        name=support.NODE_NAME,
        namespace=values["namespace"],
        parameters=[values["params_file"], support.parameter_overrides(values)],
        ros_arguments=support.log_level_arguments(values["log_level"], values["namespace"]),
        output="screen",  # no emulate_tty: log files stay free of colour codes
    )
    actions = _profile_actions(support.profile_to_set(values["fastdds_profile"]))
    if lifecycle:
        return actions + _drive_to_active(LifecycleNode(**options))
    return actions + [Node(**options)]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("params_file",
                              default_value=PathJoinSubstitution([share, "config", "track.yaml"]),
                              description="parameter YAML of the node"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument("rgb_topic", default_value="", description="RGB image topic"),
        DeclareLaunchArgument("thermal_topic", default_value="", description="thermal image topic"),
        DeclareLaunchArgument("checkpoint", default_value="", description="tracker checkpoint file"),
        DeclareLaunchArgument("device", default_value="", description="auto, cpu or cuda"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="follow /clock"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=PathJoinSubstitution([share, "config", "fastdds_large_images.xml"]),
            description="Fast DDS profile with a large shared-memory segment; keep = keep the environment"),
        DeclareLaunchArgument("log_level", default_value="info", description="level of the node's logger"),
        DeclareLaunchArgument("lifecycle", default_value="true",
                              description="true: managed node driven to active; false: plain node"),
        OpaqueFunction(function=_setup),
    ])
