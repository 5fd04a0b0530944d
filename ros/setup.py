"""bwdp_ros, the ROS 2 node, as an ament_python package: `colcon build` on a robot, `pip install -e ros/` elsewhere.

It depends on bwdp-core (the ROS-free processing, a pip package: `pip install bwdp-core` or `pip install -e .` from the
repository root); the ROS dependencies come from package.xml (rosdep).
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "bwdp_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["bwdp_ros", "bwdp_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=["bwdp-core"],
    zip_safe=True,
    maintainer="bwdp developers",
    description="ROS 2 visual-odometry node for bwdp (self-supervised monocular depth + ego-motion)",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "bwdp-vo-node = bwdp_ros.vo_node:main",
            "vo_node = bwdp_ros.vo_node:main",
        ],
    },
)
