"""drex: ament_python package (colcon build) that also installs with plain pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "drex"
NODES = [
    "sim_node",
    "perception_node",
    "mass_id_node",
    "policy_node",
    "smoother_node",
    "safety_node",
    "chain_node",
    "task_node",
    "recorder_node",
    "joint_state_merger_node",
    "driver_personality_node",
]
# config/robots/<name>/*.yaml, one data_files entry per profile folder
PROFILES = [("share/" + PACKAGE + "/" + d, glob(d + "/*.yaml")) for d in sorted(glob("config/robots/*"))]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["drex_ros", "drex_ros.*"]),
    package_data={"drex_ros": ["models/*.onnx", "models/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
        ("share/" + PACKAGE + "/urdf", glob("urdf/*")),
        *PROFILES,
    ],
    install_requires=["setuptools"],
    # colcon test runs pytest only for a package that declares it (else unittest finds nothing).
    tests_require=["pytest"],
    extras_require={"test": ["pytest", "hypothesis", "pytest-timeout"]},
    zip_safe=False,
    maintainer="drex developers",
    description="Mass-aware dexterous grasping stack for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{n} = drex_ros.nodes.{n}:main" for n in NODES] + ["drex = drex_ros.cli:main"],
    },
)
