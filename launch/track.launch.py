"""Start the M5L tracking node:  ros2 launch m5l_tracker_ros track.launch.py [arg:=value ...]

Arguments (empty = keep the value of the params file):
  params_file     parameter YAML (default: the package's config/track.yaml)
  namespace       namespace of the node; relative topics resolve in it
  rgb_topic       RGB sensor_msgs/Image topic          (parameter rgb_topic)
  thermal_topic   thermal sensor_msgs/Image topic      (parameter thermal_topic)
  checkpoint      tracker checkpoint file              (parameter checkpoint)
  device          auto, cpu or cuda                    (parameter device)
  use_sim_time    true to follow /clock (bag replay)
  fastdds_profile Fast DDS profile for large images (default: config/fastdds_large_images.xml);
                  empty = leave FASTDDS_/FASTRTPS_DEFAULT_PROFILES_FILE as they are
  log_level       debug, info, warn, error
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "m5l_tracker_ros"
PASSED_AS_PARAMETERS = ("rgb_topic", "thermal_topic", "checkpoint", "device")
FAST_DDS_2_DISTROS = ("humble", "iron", "jazzy")


def _setup(context):
    """Build the actions once the arguments are known, so that empty ones can be left out."""
    actions = []
    profile = LaunchConfiguration("fastdds_profile").perform(context)
    if profile:
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile))
        if os.environ.get("ROS_DISTRO", "").lower() in FAST_DDS_2_DISTROS:
            # Fast DDS 2 only reads the old name (Fast DDS 3 honours it too, with a warning).
            actions.append(SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile))
    overrides = {}
    for name in PASSED_AS_PARAMETERS:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context).strip().lower()
    overrides["use_sim_time"] = use_sim_time in ("true", "1", "yes")
    actions.append(Node(
        package=PACKAGE,
        executable="track_node",
        name="m5l_tracker",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    ))
    return actions


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
            description="Fast DDS profile with a large shared-memory segment; empty = keep the environment"),
        DeclareLaunchArgument("log_level", default_value="info", description="node log level"),
        OpaqueFunction(function=_setup),
    ])
