"""The VO node's parameters: the core processing settings plus the node-only ones, declared, validated, documented.

The processing settings (networks, camera mount, scale, depth and motion limits, fallback intrinsics) are owned by
:mod:`bwdp_core.inference.settings` (``VOConfig`` takes its defaults and checks from there); this module adds only what
exists because there is a ROS node: topics, TF frames and broadcasts, the path, covariances, logging. ``SPECS`` is the
two tables together, in the order of ``ros/config/vo.yaml`` (a test keeps the file equal to them, and the README table
equal to the file). The checks are plain Python (no rclpy), unit-tested directly; the node runs them at start-up and in
its ``add_on_set_parameters_callback`` (a bad value is rejected with the reason).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from bwdp_core.inference import settings
from bwdp_core.inference.camera_fit import RESIZE_MODES
from bwdp_core.inference.settings import (
    Number,
    Setting,
    any_bool,
    any_string,
    non_negative,
    non_negative_int,
    one_of,
    positive,
    vector,
)

ParamSpec = Setting  # a node parameter is a setting: name, default, description, check, read_only


def frame_name(v) -> Optional[str]:
    if not isinstance(v, str) or not v.strip():
        return f"must be a non-empty frame name, got {v!r}"
    if v.startswith("/") or " " in v:
        return f"frame names have no leading '/' and no spaces (REP 105), got {v!r}"
    return None


def optional_frame_name(v) -> Optional[str]:
    return None if v == "" else frame_name(v)


DEFAULT_POSE_COVARIANCE = [1.0e-4, 1.0e-4, 1.0e-4, 1.0e-4, 1.0e-4, 1.0e-4]
DEFAULT_TWIST_COVARIANCE = [0.05, 0.05, 0.05, 0.01, 0.01, 0.01]

NODE_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("autostart", True, "configure and activate at start (lifecycle); false = wait for a lifecycle "
              "manager (ros2 lifecycle set /vo_node configure, then activate)", any_bool, True),
    ParamSpec("resize_mode", "stretch", "how images reach the network size: stretch (whole image, aspect changes) "
              "or crop (centred window with the network's aspect ratio, then resize)", one_of(*RESIZE_MODES)),
    ParamSpec("geometry_tolerance", 0.15, "relative difference of pixel aspect (and field of view, when the "
              "checkpoint records it) from the training camera that triggers the one-time warning",
              Number(minimum=0, maximum=10)),
    ParamSpec("use_compressed", False, "subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image",
              any_bool, True),
    ParamSpec("odom_frame", "odom", "odometry frame (header.frame_id of odom, parent of the /tf transform)",
              frame_name),
    ParamSpec("base_frame", "base_link", "robot body frame (odom child_frame_id; parent of the camera mount)",
              frame_name),
    ParamSpec("camera_frame", "", "camera optical frame of the mount transform; empty = frame_id of the images "
              "(camera_optical_frame when that is empty too)", optional_frame_name, True),
    ParamSpec("publish_tf", True, "broadcast odom -> base_link on /tf (REP 105: turn off when another node does)",
              any_bool),
    ParamSpec("publish_camera_tf", False, "publish camera_xyz / camera_rpy as the mount base_frame -> camera optical "
              "frame on /tf_static (never for a frame another node parents); false = read the mount from TF (URDF, "
              "camera driver)", any_bool, True),
    ParamSpec("publish_cloud", False, "publish sensor_msgs/PointCloud2 (x y z rgb, camera optical frame, no NaN) "
              "on depth/points", any_bool),
    ParamSpec("cloud_decimation", 2, "keep every n-th depth row and column in the point cloud",
              Number(minimum=1, maximum=64, integer=True)),
    ParamSpec("publish_path", False, "publish nav_msgs/Path of the odometry on `path` (for visualisation)", any_bool),
    ParamSpec("path_max_length", 2000, "poses kept in the path (oldest dropped)", non_negative_int),
    ParamSpec("pose_covariance_diagonal", list(DEFAULT_POSE_COVARIANCE),
              "odom pose covariance diagonal at the odometry origin (x y z roll pitch yaw; m^2, rad^2); it grows by "
              "integrating the twist covariance", vector(6, 0.0)),
    ParamSpec("twist_covariance_diagonal", list(DEFAULT_TWIST_COVARIANCE),
              "odom twist covariance diagonal (vx vy vz wx wy wz; (m/s)^2, (rad/s)^2) while tracking", vector(6, 0.0)),
    ParamSpec("lost_covariance", 1.0e6, "twist covariance diagonal of frames without a motion estimate (the first "
              "after a reset, lost ones); the pose covariance integrates it", positive),
    ParamSpec("save_on_shutdown", False, "with adapt: write the adapted weights to save_model_path when the node "
              "shuts down", any_bool),
    ParamSpec("save_model_path", "", "where ~/save_model and save_on_shutdown write the adapted weights; empty = "
              "<checkpoint>_adapted.pt next to the checkpoint", any_string),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages (diagnostic_msgs/DiagnosticArray)",
              positive),
    ParamSpec("log_summary_period", 30.0, "seconds between summary log lines while frames flow (none when idle); "
              "0 = never", non_negative),
    ParamSpec("log_throttle_period", 5.0, "seconds between two log lines about the same kind of rejected input",
              positive),
)

SPECS: tuple[ParamSpec, ...] = settings.SETTINGS + NODE_SPECS
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


def check_value(name: str, value: Any) -> Optional[str]:
    """The reason ``value`` is not acceptable for parameter ``name`` (None when it is)."""
    return settings.check_value(name, value, SPEC_BY_NAME)


def check_all(values: dict[str, Any]) -> list[str]:
    """Per-value checks plus the ones across parameters (the core settings' and the node's); the reasons."""
    reasons = settings.check_values(values, SPEC_BY_NAME)
    if reasons:
        return reasons
    merged = {spec.name: spec.default for spec in SPECS}
    merged.update(values)
    if merged["odom_frame"] == merged["base_frame"]:
        reasons.append("odom_frame and base_frame must differ")
    return reasons + settings.check_across(merged)


def covariance_matrix(diagonal) -> list[float]:
    """6 variances -> the 36 row-major entries of a ROS covariance field."""
    return np.diag(np.asarray(diagonal, dtype=np.float64)).reshape(36).tolist()


def adapted_model_path(values: dict[str, Any]) -> str:
    """save_model_path, or <checkpoint without .pt>_adapted.pt when it is empty."""
    if values["save_model_path"]:
        return values["save_model_path"]
    checkpoint = values["checkpoint"]
    stem = checkpoint[:-3] if checkpoint.endswith(".pt") else checkpoint
    return f"{stem}_adapted.pt"
