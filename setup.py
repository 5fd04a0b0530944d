"""One package, two install paths: `colcon build` (ament_python) on a robot, `pip install -e .` anywhere else."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "bwdp_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["bwdp_core", "bwdp_core.*", "bwdp_ros", "bwdp_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    python_requires=">=3.10",
    # torch is deliberately loose: the Makefile installs the CPU wheel first (torch==2.13.0); on a robot the user's own
    # CUDA build satisfies it. A tight pin here would make pip pull a multi-GB build.
    install_requires=[
        "torch>=2.1",
        "numpy>=1.23",
        "opencv-python-headless>=4.8,<5",
        "pillow>=9",
        "pyyaml>=6",
        "tqdm>=4.60",
        "tensorboard>=2.12",
        "matplotlib>=3.6",
        "evo>=1.25",
        "rosbags>=0.10",
        "onnx>=1.15",
        "onnxruntime>=1.17",
    ],
    extras_require={"dev": ["pytest>=7", "pytest-timeout>=2"]},
    zip_safe=True,
    maintainer="bwdp developers",
    description="Self-supervised monocular depth + ego-motion with the bidirectional weighted loss, and a ROS 2 VO node",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "bwdp = bwdp_core.cli:main",
            "bwdp-vo-node = bwdp_ros.vo_node:main",
            "vo_node = bwdp_ros.vo_node:main",
        ],
    },
)
