"""Plain pip install of the two Python packages (offline use and CI).

The ROS 2 build (package.xml + CMakeLists.txt) installs the same packages with colcon.
"""

from setuptools import find_packages, setup

setup(
    name="m5l_tracker_ros",
    version="0.1.0",
    description="M5L RGB-thermal tracker: ROS-free core and ROS 2 node",
    packages=find_packages(include=["m5l_core", "m5l_core.*", "m5l_tracker_ros", "m5l_tracker_ros.*"]),
    package_data={"m5l_core": ["assets/*", "assets/**/*"]},
    python_requires=">=3.10",
    # contrib: OpenCV's CSRT and KCF trackers (m5l-track --tracker csrt|kcf); one cv2 per environment.
    install_requires=["numpy", "torch", "opencv-contrib-python-headless", "pyyaml", "tqdm", "scipy",
                      "matplotlib"],
    entry_points={
        "console_scripts": [
            "m5l-synth = m5l_core.datasets.synthetic_cli:main",
            "m5l-mix = m5l_core.datasets.mix_cli:main",
            "m5l-eval = m5l_core.evaluation.cli:main",
            "m5l-train = m5l_core.training.cli:main",
            "m5l-train-curves = m5l_core.training.curves:main",
            "m5l-distill = m5l_core.distill.cli:main",
            "m5l-track = m5l_core.tracking.runner_cli:main",
            "m5l-bench = m5l_core.tracking.bench:main",
            "m5l-demo = m5l_core.demo:main",
            "m5l-make-bag = m5l_tracker_ros.bag.make_bag:main",
            "m5l-replay-eval = m5l_tracker_ros.bag.replay_eval:main",
            "m5l-eval-bag = m5l_tracker_ros.bag.eval_bag:main",
            "m5l-realtime-bench = m5l_tracker_ros.bag.realtime_bench:main",
            "m5l-track-node = m5l_tracker_ros.process:track_node",
            "m5l-track-lifecycle-node = m5l_tracker_ros.process:track_lifecycle_node",
        ]
    },
)
