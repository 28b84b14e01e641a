"""Test-wide set-up: isolate DDS traffic per test process, render offscreen."""

import os

# One DDS domain per pytest process (0-101), localhost only, so parallel runs never meet.
os.environ["ROS_DOMAIN_ID"] = str(os.getpid() % 100 + 1)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
