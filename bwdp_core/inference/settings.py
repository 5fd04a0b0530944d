"""The VO processing settings: one table (name, default, description, check with its numeric range), ROS-free.

These are the settings of the processing that the ROS node and `bwdp replay` share: the networks (checkpoint, device,
backend, threads), the camera mount, the scale, the depth and motion limits, and the fallback intrinsics.
:class:`bwdp_core.inference.vo_pipeline.VOConfig` takes its defaults and its validation from this table;
``bwdp_ros.params`` adds the node-only parameters (topics, frames, TF, covariances, logging) and declares both tables
as ROS parameters; ``ros/config/vo.yaml`` and the README table are tested equal to them.

A check is ``value -> None`` when the value is fine, else the reason it is rejected (without the setting's name);
:func:`check_value` adds the name. Numeric checks are :class:`Number` instances: their range is data
(``minimum``, ``exclusive_minimum``, ``maximum``, ``integer``), readable by tools and tests.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from bwdp_core.device import DEVICES
from bwdp_core.frames import OPTICAL_RPY
from bwdp_core.inference.backends import BACKENDS, describe_backends
from bwdp_core.inference.ground_scale import MAX_CAMERA_HEIGHT

Check = Callable[[Any], Optional[str]]  # value -> None when fine, else the reason it is rejected


def _finite(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Number:
    """A numeric check with its range: ``minimum`` (exclusive when ``exclusive_minimum``), ``maximum``, ``integer``."""

    minimum: Optional[float] = None
    exclusive_minimum: bool = False
    maximum: Optional[float] = None
    integer: bool = False

    @property
    def range_text(self) -> str:
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        return " and ".join(parts)

    def __call__(self, v) -> Optional[str]:
        if self.integer:
            ok = isinstance(v, numbers.Integral) and not isinstance(v, bool)
            kind = "an integer"
        else:
            ok = _finite(v)
            kind = "a finite number"
        if ok and self.minimum is not None:
            ok = v > self.minimum if self.exclusive_minimum else v >= self.minimum
        if ok and self.maximum is not None:
            ok = v <= self.maximum
        if ok:
            return None
        return f"must be {' '.join(filter(None, (kind, self.range_text)))}, got {v!r}"


non_negative = Number(minimum=0)
positive = Number(minimum=0, exclusive_minimum=True)
non_negative_int = Number(minimum=0, integer=True)


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
class Setting:
    name: str
    default: Any
    description: str
    check: Check
    read_only: bool = False  # only at start-up (the networks and the mount are built from it)

    @property
    def range(self) -> Optional[Number]:
        """The numeric range of a numeric setting (None for the others)."""
        return self.check if isinstance(self.check, Number) else None


SETTINGS: tuple[Setting, ...] = (
    Setting("checkpoint", "", "bwdp checkpoint file (.pt) with DispNet + PoseNet; required", any_string, True),
    Setting("device", "auto", "inference device: auto (CUDA when available), cuda or cpu", one_of(*DEVICES), True),
    Setting("inference_backend", "auto", f"network runtime: {describe_backends()}", one_of(*BACKENDS), True),
    Setting("num_threads", 0, "torch CPU threads (0 = torch's default)", non_negative_int, True),
    Setting("warmup_iterations", 2, "network runs on a blank frame before the first real one", non_negative_int, True),
    Setting("int8_model_dir", "", "folder written by `bwdp export --format onnx --int8` from this checkpoint; "
            "required by inference_backend onnxruntime_int8 (approximate: see bench/int8_accuracy.py)", any_string,
            True),
    Setting("depth_every_n", 1, "DispNet on every n-th processed frame (PoseNet runs on all of them; depth in a "
            "thread of its own, so a depth pass never delays odometry)", Number(minimum=1, integer=True)),
    Setting("depth_when_subscribed", True, "run DispNet only while something subscribes to depth or "
            "depth/camera_info", any_bool),
    Setting("depth_threads", 1, "ONNX Runtime threads of the depth network (1 = in the lower-priority depth "
            "thread itself; 0 = as num_threads)", non_negative_int, True),
    Setting("camera_xyz", [0.0, 0.0, 0.0], "camera optical frame origin in base_link (m)", vector(3), True),
    Setting("camera_rpy", [OPTICAL_RPY[0], OPTICAL_RPY[1], OPTICAL_RPY[2]],
            "camera optical frame orientation in base_link, roll pitch yaw (rad, fixed axes); the default is "
            "REP 103's optical rotation (camera looking along base_link +x)", vector(3), True),
    Setting("metric_scale", 1.0, "multiplies translations and depths (monocular output is up to scale): a known "
            "distance / the same distance in the output, e.g. the scale `bwdp replay --gt` prints", positive),
    Setting("min_depth", 0.0, "depth below this (m, after metric_scale) is published as NaN; 0 = no limit",
            non_negative),
    Setting("max_depth", 0.0, "depth above this (m, after metric_scale) is published as NaN; 0 = no limit",
            non_negative),
    Setting("max_frame_gap", 2.0, "longer gaps (s) between processed frames give no motion estimate (tracking "
            "lost for that frame; PoseNet learnt motion between nearby frames); 0 = no limit", non_negative),
    Setting("max_speed", 0.0, "faster motion estimates (m/s, after metric_scale) are rejected as tracking lost; "
            "0 = no limit", non_negative),
    Setting("camera_height", 0.0, "height of the camera above the ground (m): > 0 measures the metric scale from the "
            "road ahead (its homography between consecutive frames, where the depth map shows ground; it replaces "
            "metric_scale once measured) and applies it to depth, odometry and twist; 0 = off",
            Number(minimum=0, maximum=MAX_CAMERA_HEIGHT)),
    Setting("ground_max_tilt", 15.0, "the ground plane's normal may differ this much (deg) from the mount's up "
            "(vehicle pitch/roll, slopes); with camera_height", Number(minimum=0, exclusive_minimum=True, maximum=60)),
    Setting("adapt", False, "online self-supervised adaptation: a background worker fine-tunes the networks on the "
            "incoming frames with the training loss and swaps the weights in without pausing inference", any_bool,
            True),
    Setting("adapt_buffer_size", 64, "adapt: recent frames kept for training (network size, only frames that moved "
            "enough)", Number(minimum=3, integer=True), True),
    Setting("adapt_steps_per_swap", 20, "adapt: training steps between two hand-overs of the weights to inference",
            Number(minimum=1, integer=True), True),
    Setting("adapt_lr", 5.0e-4, "adapt: learning rate (Adam)", Number(minimum=0, exclusive_minimum=True, maximum=1),
            True),
    Setting("adapt_share", 0.5, "adapt: fraction of wall time the worker may compute (CPU/GPU share; it also runs "
            "at a lower OS priority with adapt_threads torch threads)", Number(minimum=0, exclusive_minimum=True,
                                                                            maximum=1), True),
    Setting("adapt_min_parallax", 1.0, "adapt: a frame enters the training buffer once the image moved this many "
            "pixels (network size; estimated translation x focal length / median depth) since the last one kept",
            non_negative, True),
    Setting("adapt_threads", 1, "adapt: torch CPU threads of the training worker", Number(minimum=1, integer=True),
            True),
    Setting("fx", 0.0, "intrinsics fallback when camera_info is missing or unusable (pixels of the incoming "
            "image; 0 = not given, wait for camera_info)", non_negative),
    Setting("fy", 0.0, "intrinsics fallback: focal length y (pixels)", non_negative),
    Setting("cx", 0.0, "intrinsics fallback: principal point x (pixels)", non_negative),
    Setting("cy", 0.0, "intrinsics fallback: principal point y (pixels)", non_negative),
)

SETTING_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def default(name: str) -> Any:
    """The default of setting ``name`` (lists copied, so a caller cannot change the table)."""
    value = SETTING_BY_NAME[name].default
    return list(value) if isinstance(value, list) else value


def defaults() -> dict[str, Any]:
    return {s.name: default(s.name) for s in SETTINGS}


def check_value(name: str, value: Any, table: Mapping[str, Setting] = SETTING_BY_NAME) -> Optional[str]:
    """The reason ``value`` is not acceptable for setting ``name`` of ``table`` (None when it is)."""
    spec = table.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    if isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    reason = spec.check(value)
    return None if reason is None else f"parameter {name!r} {reason}"


def check_values(values: Mapping[str, Any], table: Mapping[str, Setting] = SETTING_BY_NAME) -> list[str]:
    """The per-value reasons (empty when every value passes its own check)."""
    return [r for name, value in values.items() if (r := check_value(name, value, table))]


def check_across(values: Mapping[str, Any]) -> list[str]:
    """The checks across settings, on ``values`` over the defaults (other keys are ignored)."""
    merged = {**defaults(), **{k: v for k, v in values.items() if k in SETTING_BY_NAME}}
    reasons = []
    if merged["max_depth"] and merged["max_depth"] <= merged["min_depth"]:
        reasons.append(f"max_depth ({merged['max_depth']}) must be > min_depth ({merged['min_depth']}) or 0")
    fxy = [merged[k] for k in ("fx", "fy")]
    if any(fxy) and not all(fxy):
        reasons.append("give both fx and fy (> 0) or neither")
    if merged["inference_backend"] == "onnxruntime_int8" and not merged["int8_model_dir"]:
        reasons.append("inference_backend onnxruntime_int8 needs int8_model_dir (the folder of `bwdp export "
                       "--format onnx --int8 --calibration SOURCE`)")
    return reasons


def check_all(values: Mapping[str, Any]) -> list[str]:
    """Per-value checks, then (when those pass) the ones across settings; the reasons, empty when all fine."""
    return check_values(values) or check_across(values)
