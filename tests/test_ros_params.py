"""Node parameters: config/vo.yaml lists every one with its default; checks reject bad values; launch file is sound."""
import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from bwdp_ros.params import SPECS, check_all, check_value, covariance_matrix, intrinsics_from_params, vo_config_from

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "vo.launch.py"


def _yaml_params():
    data = yaml.safe_load((ROOT / "config" / "vo.yaml").read_text())
    (section,) = data.values()
    return section["ros__parameters"]


def test_vo_yaml_holds_every_parameter_with_its_default_and_type():
    params = _yaml_params()
    assert set(params) == {spec.name for spec in SPECS}
    for spec in SPECS:
        assert params[spec.name] == spec.default, spec.name
        assert type(params[spec.name]) is type(spec.default), spec.name  # ROS parameters are strictly typed
        assert spec.description, spec.name
        assert check_value(spec.name, spec.default) is None, spec.name


@pytest.mark.parametrize("name, value, words", [
    ("metric_scale", 0.0, "> 0"),
    ("metric_scale", float("nan"), "> 0"),
    ("device", "tpu", "one of"),
    ("odom_frame", "", "non-empty"),
    ("base_frame", "/base_link", "leading '/'"),
    ("pose_covariance_diagonal", [0.1] * 5, "list of 6"),
    ("twist_covariance_diagonal", [0.1, 0.1, 0.1, -1.0, 0.1, 0.1], ">= 0.0"),
    ("camera_rpy", [0.0, float("inf"), 0.0], "finite"),
    ("num_threads", -1, ">= 0"),
    ("diagnostics_period", 0.0, "> 0"),
    ("publish_tf", 1, "true or false"),
    ("no_such_parameter", 1, "unknown"),
])
def test_bad_values_are_rejected_with_a_reason(name, value, words):
    reason = check_value(name, value)
    assert reason is not None and words in reason and name in reason


def test_cross_parameter_checks():
    assert any("differ" in r for r in check_all({"odom_frame": "base_link", "base_frame": "base_link"}))
    assert any("max_depth" in r for r in check_all({"min_depth": 5.0, "max_depth": 2.0}))
    assert any("fx and fy" in r for r in check_all({"fx": 100.0}))
    assert check_all({"fx": 100.0, "fy": 100.0, "cx": 50.0, "cy": 40.0}) == []


def test_helpers_build_the_processing_config():
    values = {spec.name: spec.default for spec in SPECS}
    assert intrinsics_from_params(values) is None
    values.update(fx=100.0, fy=110.0, cx=50.0, cy=40.0, metric_scale=3.0)
    assert intrinsics_from_params(values)[1, 1] == 110.0
    cfg = vo_config_from(values)
    assert cfg.metric_scale == 3.0 and cfg.T_base_camera[0, 2] == pytest.approx(1.0)  # optical z -> base x
    cov = covariance_matrix([1, 2, 3, 4, 5, 6])
    assert len(cov) == 36 and cov[0] == 1 and cov[7] == 2 and cov[35] == 6 and cov[1] == 0


def test_launch_file_parses_and_declares_its_arguments():
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    declared = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", None) == "DeclareLaunchArgument"}
    assert {"params_file", "checkpoint", "device", "image", "camera_info", "use_sim_time"} <= declared
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch_ros.actions"} <= imports
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")


def test_launch_description_builds_where_launch_ros_exists():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (no pip wheel; exists on a ROS 2 install)")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    try:
        get_package_share_directory("bwdp_ros")
    except PackageNotFoundError:
        pytest.skip("bwdp_ros is not installed in an ament prefix (run colcon build and source install/setup.bash)")
    spec = importlib.util.spec_from_file_location("vo_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert {"params_file", "checkpoint", "device", "image", "camera_info", "use_sim_time"} <= names
    assert any(isinstance(e, Node) for e in description.entities)


def test_console_entry_point_is_registered():
    setup = (ROOT / "setup.py").read_text()
    assert "vo_node = bwdp_ros.vo_node:main" in setup and "bwdp-vo-node = bwdp_ros.vo_node:main" in setup
