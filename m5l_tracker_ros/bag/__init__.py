"""Rosbag2 tooling: make a bag from a sequence, replay a bag through the node, score a bag.

Everything that reads or writes bags uses the pure-Python ``rosbags`` library, so only the
replay (which talks to a live node) needs rclpy; ``m5l-make-bag`` and ``m5l-eval-bag`` run
without a ROS install.

Bag conventions written by ``m5l-make-bag`` and understood by the other tools:

* ``/m5l/rgb/image_raw`` (``rgb8``) and ``/m5l/thermal/image_raw`` (``mono8``/``mono16``/``rgb8``),
  one message per frame, bag timestamp = header stamp;
* ``/m5l/init`` (``sensor_msgs/msg/RegionOfInterest`` carrying the first-frame box), written
  just before the first RGB frame;
* ``custom_data`` in ``metadata.yaml``: ``m5l.init_box`` (``x,y,w,h``), ``m5l.sequence``,
  ``m5l.benchmark``, ``m5l.frames``;
* the ground truth beside the bag: ``<bag>.gt.txt`` (and ``<bag>.gt_thermal.txt`` when the
  thermal ground truth differs), one ``x,y,w,h`` row per RGB frame.
"""
