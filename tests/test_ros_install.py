"""The install layout colcon builds for the ament_python package ros/ (setup.py + setup.cfg), and package.xml.

colcon's ament_python build runs ``setup.py egg_info / build / install --prefix <install> --record ...
--single-version-externally-managed``; ``ros2 run``, ``ros2 launch`` and ``get_package_share_directory`` then need
lib/bwdp_ros/<executable>, share/bwdp_ros/{package.xml, launch, config} and the ament index marker. Built here into a
temporary prefix from a copy of ros/ (no ROS install needed; what a robot adds is `colcon` and `rosdep` themselves).
"""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROS = ROOT / "ros"
# what the node imports at run time -> the rosdep key that provides it on Ubuntu 24.04 / Jazzy
RUNTIME_KEYS = {
    "rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "builtin_interfaces": "builtin_interfaces",
    "std_msgs": "std_msgs", "sensor_msgs": "sensor_msgs", "nav_msgs": "nav_msgs", "geometry_msgs": "geometry_msgs",
    "std_srvs": "std_srvs", "tf2_msgs": "tf2_msgs", "tf2_ros": "tf2_ros_py", "diagnostic_msgs": "diagnostic_msgs",
    "lifecycle_msgs": "lifecycle_msgs", "ament_index_python": "ament_index_python", "numpy": "python3-numpy",
    "cv2": "python3-opencv", "yaml": "python3-yaml", "PIL": "python3-pil", "torch": "python3-torch",
    "onnxruntime": "python3-onnxruntime-pip",
}


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("colcon_layout")
    src, build, prefix = tmp / "src" / "bwdp_ros", tmp / "build", tmp / "install"
    shutil.copytree(ROS, src, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    build.mkdir()
    cmd = [sys.executable, "setup.py", "egg_info", "--egg-base", str(build), "build", "--build-base",
           str(build / "build"), "install", "--prefix", str(prefix), "--record", str(build / "install.log"),
           "--single-version-externally-managed"]
    proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return prefix


def test_install_has_executable_launch_config_manifest_and_index_marker(install):
    share = install / "share" / "bwdp_ros"
    for path in (share / "package.xml", share / "launch" / "vo.launch.py", share / "config" / "vo.yaml",
                 install / "share" / "ament_index" / "resource_index" / "packages" / "bwdp_ros"):
        assert path.is_file(), path
    executable = install / "lib" / "bwdp_ros" / "vo_node"
    assert executable.is_file() and os.access(executable, os.X_OK)
    script = executable.read_text()
    # the interpreter that ran setup.py (the venv's, with `python -m colcon`) starts the node
    assert script.startswith(f"#!{sys.executable}\n") and "'console_scripts', 'vo_node'" in script
    (site,) = install.glob("lib/python3*/site-packages")
    assert (site / "bwdp_ros" / "vo_node.py").is_file() and (site / "bwdp_ros" / "mount.py").is_file()
    (entry_points,) = site.glob("bwdp_ros-*.egg-info/entry_points.txt")
    assert "vo_node = bwdp_ros.vo_node:main" in entry_points.read_text()
    assert (share / "config" / "vo.yaml").read_text() == (ROS / "config" / "vo.yaml").read_text()


def _declared_keys() -> set[str]:
    root = ET.parse(ROS / "package.xml").getroot()
    return {e.text.strip() for e in root if e.tag in ("depend", "exec_depend")}


def test_package_xml_declares_every_runtime_dependency_with_its_rosdep_key():
    declared = _declared_keys()
    missing = {module: key for module, key in RUNTIME_KEYS.items() if key not in declared}
    assert not missing, f"package.xml lacks {missing}"
    assert {"launch", "launch_ros"} <= declared                       # the launch file


def test_every_module_the_node_imports_has_a_declared_key():
    """Import the node in a fresh interpreter; every third-party top-level module it loaded must be in the table."""
    code = ("import sys, bwdp_ros.vo_node, bwdp_ros.mount; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROS}"}, check=True).stdout.split()
    stdlib = set(sys.stdlib_module_names) | {"bwdp_core", "bwdp_ros"}
    third_party = {m for m in out if m not in stdlib and not m.startswith("_")}
    # loaded by what the keys above install (rclpy's own message packages, torch's modules; tqdm: torch.hub imports it
    # when present, the node does not need it), or by this pip-installed ROS only
    transitive = {"rosgraph_msgs", "rosidl_parser", "rpyutils", "service_msgs", "type_description_interfaces",
                  "unique_identifier_msgs", "typing_extensions", "torchgen", "tqdm", "cython_runtime",
                  "ros_wheels_bootstrapper"}
    unmapped = sorted(third_party - set(RUNTIME_KEYS) - transitive)
    assert not unmapped, f"the node imports {unmapped}: add their rosdep keys to package.xml and RUNTIME_KEYS"
