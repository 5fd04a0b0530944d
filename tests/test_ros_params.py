"""Node parameters: config/vo.yaml lists every one with its default; checks reject bad values; launch file is sound.

Regenerate after changing a setting or a parameter:  python tests/test_ros_params.py > ros/config/vo.yaml
(then the README table:  python tests/test_readme.py).
"""
import ast
import importlib.util
import textwrap
from pathlib import Path

import pytest
import yaml

from bwdp_core.errors import ConfigError
from bwdp_core.inference import settings
from bwdp_core.inference.backends import describe_backends
from bwdp_core.inference.intrinsics import parameter_intrinsics
from bwdp_core.inference.vo_pipeline import VOConfig
from bwdp_ros.params import NODE_SPECS, SPECS, check_all, check_value, covariance_matrix

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "ros" / "launch" / "vo.launch.py"
VO_YAML = ROOT / "ros" / "config" / "vo.yaml"
VO_YAML_HEADER = """\
# Parameters of the bwdp VO node (ros/bwdp_ros/vo_node.py), every one with its default.
# Start:  bwdp-vo-node --ros-args --params-file ros/config/vo.yaml -p checkpoint:=/path/model.pt
#   or:   ros2 launch bwdp_ros vo.launch.py checkpoint:=/path/model.pt
# Descriptions: `ros2 param describe /vo_node <name>`. Generated from the tables (python tests/test_ros_params.py):
# the processing settings in bwdp_core/inference/settings.py, then the node-only ones in ros/bwdp_ros/params.py.
/**:
  ros__parameters:
"""


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return repr(value)


def render_vo_yaml() -> str:
    """config/vo.yaml as it should read: every parameter of SPECS, its description as the comment above it."""
    lines = VO_YAML_HEADER.splitlines()
    for spec in SPECS:
        lines += ["    # " + line for line in textwrap.wrap(spec.description, width=114, break_on_hyphens=False,
                                                               break_long_words=False)]
        lines.append(f"    {spec.name}: {_yaml_value(spec.default)}")
    return "\n".join(lines) + "\n"


def _yaml_params():
    data = yaml.safe_load(VO_YAML.read_text())
    (section,) = data.values()
    return section["ros__parameters"]


def test_vo_yaml_is_generated_from_the_tables():
    assert VO_YAML.read_text() == render_vo_yaml(), "regenerate: python tests/test_ros_params.py > ros/config/vo.yaml"


def test_node_parameters_are_the_core_settings_plus_node_only_ones():
    names = [spec.name for spec in SPECS]
    assert len(names) == len(set(names)), "a node parameter shadows a core setting"
    assert SPECS[:len(settings.SETTINGS)] == settings.SETTINGS and SPECS[len(settings.SETTINGS):] == NODE_SPECS
    assert SPECS[0].name == "checkpoint" and "depth" not in {spec.name for spec in NODE_SPECS}


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


def test_depth_limits_have_one_rule_for_the_node_and_vo_config():
    bad = {"min_depth": 5.0, "max_depth": 2.0}
    (reason,) = check_all(bad)
    assert settings.check_all(bad) == [reason]
    with pytest.raises(ConfigError) as err:
        VOConfig(**bad).validate()
    assert str(err.value) == reason
    with pytest.raises(ConfigError, match="max_depth"):
        VOConfig.from_settings(bad)


def test_inference_backend_description_is_the_code_s():
    description = settings.SETTING_BY_NAME["inference_backend"].description
    assert describe_backends() in description and "torchscript on CPU" not in description


def test_helpers_build_the_processing_config():
    values = {spec.name: spec.default for spec in SPECS}
    assert parameter_intrinsics(*(values[k] for k in ("fx", "fy", "cx", "cy"))) is None
    values.update(fx=100.0, fy=110.0, cx=50.0, cy=40.0, metric_scale=3.0)
    assert parameter_intrinsics(*(values[k] for k in ("fx", "fy", "cx", "cy")))[1, 1] == 110.0
    cfg = VOConfig.from_settings(values)
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
    setup = (ROOT / "ros" / "setup.py").read_text()
    assert "vo_node = bwdp_ros.vo_node:main" in setup and "bwdp-vo-node = bwdp_ros.vo_node:main" in setup


if __name__ == "__main__":
    print(render_vo_yaml(), end="")
