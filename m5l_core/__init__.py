"""M5L RGB-T tracking core: network, losses, training, tracking, datasets, evaluation.

This package never imports ROS; the ROS 2 glue lives in ``m5l_tracker_ros``.
"""

__version__ = "0.1.0"
