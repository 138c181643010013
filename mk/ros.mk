# ROS 2 package: colcon build into install/ and `make run`. Included from the Makefile
# (after VENV, PY and STAMP are defined):  include mk/ros.mk
#
#   make ros-build   build msg/, the Python packages, the node, launch/ and config/ into install/
#   make run         start the node with config/track.yaml (PARAMS=file, ROS_ARGS="-p device:=cpu ...")
#
# `make setup` builds the package too. The build uses a sourced ROS 2 if there is one, else
# the ROS 2 wheels in the venv (scripts/build_ros.sh). Python sources are symlinked into
# install/, so editing them needs no rebuild; adding a file or changing msg/ does.

ROS_STAMP := install/m5l_tracker_ros/.m5l_built
# Python files are symlinked: only adding or removing one (a folder's mtime) needs a rebuild.
ROS_SOURCES := package.xml CMakeLists.txt scripts/build_ros.sh $(wildcard msg/*.msg launch/*.py config/*) \
	$(shell find m5l_core m5l_tracker_ros -type d -not -name __pycache__ 2>/dev/null)
PARAMS ?= config/track.yaml
ROS_ARGS ?=

.PHONY: ros-build run ros-clean

setup: $(ROS_STAMP)

ros-build: $(ROS_STAMP)

$(ROS_STAMP): $(STAMP) $(ROS_SOURCES)
	scripts/build_ros.sh $(VENV)
	touch $(ROS_STAMP)

run: $(ROS_STAMP)
	VENV=$(VENV) scripts/ros_run.sh $(PARAMS) $(ROS_ARGS)

ros-clean:
	rm -rf build install log
