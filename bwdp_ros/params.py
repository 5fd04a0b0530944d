"""The VO node's parameters: one table (name, default, description, check), used to declare, validate and document them.

``config/vo.yaml`` holds every parameter below with its default (a test keeps the two equal). The checks are plain
Python (no rclpy), so they are unit-tested directly; the node runs them at start-up and in its
``add_on_set_parameters_callback`` (a bad value is rejected with the reason).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from bwdp_core.frames import OPTICAL_RPY, transform_from_xyz_rpy
from bwdp_core.nets.fast_inference import BACKENDS as INFERENCE_BACKENDS
from bwdp_core.vo_pipeline import DEVICES, VOConfig

Check = Callable[[Any], Optional[str]]  # value -> None when fine, else the reason it is rejected


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def non_negative(v) -> Optional[str]:
    return None if _finite(v) and v >= 0 else f"must be a finite number >= 0, got {v!r}"


def positive(v) -> Optional[str]:
    return None if _finite(v) and v > 0 else f"must be a finite number > 0, got {v!r}"


def non_negative_int(v) -> Optional[str]:
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else f"must be an integer >= 0, got {v!r}"


def frame_name(v) -> Optional[str]:
    if not isinstance(v, str) or not v.strip():
        return f"must be a non-empty frame name, got {v!r}"
    if v.startswith("/") or " " in v:
        return f"frame names have no leading '/' and no spaces (REP 105), got {v!r}"
    return None


def optional_frame_name(v) -> Optional[str]:
    return None if v == "" else frame_name(v)


def one_of(*choices) -> Check:
    def check(v) -> Optional[str]:
        return None if v in choices else f"must be one of {', '.join(map(str, choices))}, got {v!r}"
    return check


def vector(length: int, minimum: Optional[float] = None) -> Check:
    def check(v) -> Optional[str]:
        values = list(v) if isinstance(v, (list, tuple)) else None
        if values is None or len(values) != length or not all(_finite(x) for x in values):
            return f"must be a list of {length} finite numbers, got {v!r}"
        if minimum is not None and any(x < minimum for x in values):
            return f"entries must be >= {minimum}, got {v!r}"
        return None
    return check


def any_bool(v) -> Optional[str]:
    return None if isinstance(v, bool) else f"must be true or false, got {v!r}"


def any_string(v) -> Optional[str]:
    return None if isinstance(v, str) else f"must be a string, got {v!r}"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    check: Check
    read_only: bool = False  # only at start-up (the networks and the mount are built from it)


DEFAULT_POSE_COVARIANCE = [0.01, 0.01, 0.01, 0.001, 0.001, 0.001]
DEFAULT_TWIST_COVARIANCE = [0.05, 0.05, 0.05, 0.01, 0.01, 0.01]

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("checkpoint", "", "bwdp checkpoint file (.pt) with DispNet + PoseNet; required", any_string, True),
    ParamSpec("device", "auto", "inference device: auto (CUDA when available), cuda or cpu", one_of(*DEVICES), True),
    ParamSpec("inference_backend", "auto", "network runtime: auto (torchscript on CPU, channels_last on CUDA), "
              "eager, channels_last, torchscript, onnxruntime (CPU) or bf16", one_of(*INFERENCE_BACKENDS), True),
    ParamSpec("num_threads", 0, "torch CPU threads (0 = torch's default)", non_negative_int, True),
    ParamSpec("warmup_iterations", 2, "network runs on a blank frame before the first real one", non_negative_int, True),
    ParamSpec("use_compressed", False, "subscribe to image/compressed (sensor_msgs/CompressedImage) instead of image",
              any_bool, True),
    ParamSpec("odom_frame", "odom", "odometry frame (header.frame_id of odom, parent of the /tf transform)", frame_name),
    ParamSpec("base_frame", "base_link", "robot body frame (odom child_frame_id; parent of the camera mount)",
              frame_name),
    ParamSpec("camera_frame", "", "camera optical frame of the mount transform; empty = frame_id of the images "
              "(camera_optical_frame when that is empty too)", optional_frame_name, True),
    ParamSpec("publish_tf", True, "broadcast odom -> base_link on /tf (REP 105: turn off when another node does)",
              any_bool),
    ParamSpec("publish_camera_tf", True, "broadcast the mount base_link -> camera optical frame on /tf_static",
              any_bool, True),
    ParamSpec("camera_xyz", [0.0, 0.0, 0.0], "camera optical frame origin in base_link (m)", vector(3), True),
    ParamSpec("camera_rpy", [OPTICAL_RPY[0], OPTICAL_RPY[1], OPTICAL_RPY[2]],
              "camera optical frame orientation in base_link, roll pitch yaw (rad, fixed axes); the default is "
              "REP 103's optical rotation (camera looking along base_link +x)", vector(3), True),
    ParamSpec("publish_path", False, "publish nav_msgs/Path of the odometry on `path` (for visualisation)", any_bool),
    ParamSpec("path_max_length", 2000, "poses kept in the path (oldest dropped)", non_negative_int),
    ParamSpec("metric_scale", 1.0, "multiplies translations and depths (monocular output is up to scale): a known "
              "distance / the same distance in the output, e.g. the scale `bwdp replay --gt` prints", positive),
    ParamSpec("min_depth", 0.0, "depth below this (m, after metric_scale) is published as NaN; 0 = no limit",
              non_negative),
    ParamSpec("max_depth", 0.0, "depth above this (m, after metric_scale) is published as NaN; 0 = no limit",
              non_negative),
    ParamSpec("max_frame_gap", 2.0, "longer gaps (s) between processed frames give no motion estimate (tracking "
              "lost for that frame; PoseNet learnt motion between nearby frames); 0 = no limit", non_negative),
    ParamSpec("max_speed", 0.0, "faster motion estimates (m/s, after metric_scale) are rejected as tracking lost; "
              "0 = no limit", non_negative),
    ParamSpec("pose_covariance_diagonal", list(DEFAULT_POSE_COVARIANCE),
              "odom pose covariance diagonal (x y z roll pitch yaw; m^2, rad^2) while tracking", vector(6, 0.0)),
    ParamSpec("twist_covariance_diagonal", list(DEFAULT_TWIST_COVARIANCE),
              "odom twist covariance diagonal (vx vy vz wx wy wz; (m/s)^2, (rad/s)^2) while tracking", vector(6, 0.0)),
    ParamSpec("lost_covariance", 1.0e6, "covariance diagonal used for pose and twist while tracking is lost",
              positive),
    ParamSpec("fx", 0.0, "intrinsics fallback when camera_info is missing or all zero (pixels of the incoming "
              "image; 0 = not given, wait for camera_info)", non_negative),
    ParamSpec("fy", 0.0, "intrinsics fallback: focal length y (pixels)", non_negative),
    ParamSpec("cx", 0.0, "intrinsics fallback: principal point x (pixels)", non_negative),
    ParamSpec("cy", 0.0, "intrinsics fallback: principal point y (pixels)", non_negative),
    ParamSpec("diagnostics_period", 5.0, "seconds between diagnostics log lines (processed, dropped, latency)",
              positive),
    ParamSpec("log_throttle_period", 5.0, "seconds between two log lines about the same kind of rejected input",
              positive),
)

SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


def check_value(name: str, value: Any) -> Optional[str]:
    """The reason ``value`` is not acceptable for parameter ``name`` (None when it is)."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    if isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    reason = spec.check(value)
    return None if reason is None else f"parameter {name!r} {reason}"


def check_all(values: dict[str, Any]) -> list[str]:
    """Per-value checks plus the ones across parameters; returns the reasons (empty when all fine)."""
    reasons = [r for name, value in values.items() if (r := check_value(name, value))]
    if reasons:
        return reasons
    merged = {spec.name: spec.default for spec in SPECS}
    merged.update(values)
    if merged["odom_frame"] == merged["base_frame"]:
        reasons.append("odom_frame and base_frame must differ")
    if merged["max_depth"] and merged["max_depth"] <= merged["min_depth"]:
        reasons.append(f"max_depth ({merged['max_depth']}) must be > min_depth ({merged['min_depth']}) or 0")
    fxy = [merged[k] for k in ("fx", "fy")]
    if any(fxy) and not all(fxy):
        reasons.append("give both fx and fy (> 0) or neither")
    return reasons


def vo_config_from(values: dict[str, Any]) -> VOConfig:
    """The processing settings from a full parameter dict (camera_xyz / camera_rpy -> T_base_camera)."""
    return VOConfig(
        metric_scale=float(values["metric_scale"]),
        min_depth=float(values["min_depth"]),
        max_depth=float(values["max_depth"]),
        max_frame_gap=float(values["max_frame_gap"]),
        max_speed=float(values["max_speed"]),
        T_base_camera=transform_from_xyz_rpy(values["camera_xyz"], values["camera_rpy"]),
    )


def intrinsics_from_params(values: dict[str, Any]) -> Optional[np.ndarray]:
    """3x3 K from fx, fy, cx, cy when fx and fy are given (> 0), else None."""
    if values["fx"] > 0 and values["fy"] > 0:
        return np.array([[values["fx"], 0.0, values["cx"]], [0.0, values["fy"], values["cy"]], [0.0, 0.0, 1.0]])
    return None


def covariance_matrix(diagonal) -> list[float]:
    """6 variances -> the 36 row-major entries of a ROS covariance field."""
    return np.diag(np.asarray(diagonal, dtype=np.float64)).reshape(36).tolist()
