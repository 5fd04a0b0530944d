"""Online visual odometry, ROS-free: the processing class shared by the ROS 2 node and `bwdp replay`.

Read top-down:

1. :class:`DepthPoseEstimator` owns the two networks: loads a checkpoint, picks the device (``auto|cuda|cpu``), warms
   up, and turns one uint8 RGB image into a network tensor (:meth:`~DepthPoseEstimator.to_tensor`), a depth map
   (:meth:`~DepthPoseEstimator.depth`) and, for two tensors, the relative camera motion
   (:meth:`~DepthPoseEstimator.relative_pose`), always under ``torch.inference_mode()``.
2. :class:`VisualOdometry` is the state that is real: the previous processed frame and the accumulated pose. Each
   :meth:`~VisualOdometry.process` call takes (image, intrinsics, stamp) and returns a :class:`VOFrame`: depth in the
   optical frame (NaN where invalid) with its intrinsics, the robot pose ``T_odom_base`` and twist, the camera pose,
   and the tracking state. Stamps going backwards reset the odometry (the returned frame says so in ``event``).

Poses: PoseNet(tgt=current, ref=previous) gives T_{t->r} = T_prev_cur (camera motion, optical axes). The camera pose
chain is T_c0_ccur = T_c0_cprev @ T_prev_cur; the robot pose follows through the rigid mount
(:func:`bwdp_core.frames.camera_motion_to_base`). The odom frame is base_link at the first frame after a reset.

Scale: monocular estimates are up to one unknown global scale; one factor multiplies every translation and every
depth (the two share the scale). It is ``metric_scale`` (a known distance / the same distance in the output, e.g. the
``scale`` that ``bwdp replay --gt`` prints), or, with ``camera_height`` > 0, the ground-plane scale: the road's
distance in PoseNet's translation unit, from the road homography between each frame and the previous one (a depth
frame's own ground plane says whether road is in view), filtered over time (:mod:`bwdp_core.inference.ground_scale`;
``metric_scale`` until the road is measured). A frame's depth and motion use the scale after its own measurement.

Units: a model trained with the scale-invariant warp (``loss.overrides.scale_invariant_warp``) outputs its
translation in units of the target frame's mean depth; :func:`translation_in_depth_units` turns it into depth units
with the mean of the current frame's depth map (of the newest depth frame on PoseNet-only frames), so that the
trajectory has one scale (``DepthPoseEstimator.translation_unit``, from the checkpoint).

Adaptation: an optional ``weights_provider`` (:mod:`bwdp_core.inference.adaptation`) sees every processed frame and may
hand over new weights; they are swapped in between two frames, and the depth ratio new / old it reports is divided out
(``unit_correction``), so depth and odometry stay continuous across a swap.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

import numpy as np
import torch

from bwdp_core.checkpoint import load_models
from bwdp_core.data.sources import as_intrinsics
from bwdp_core.device import resolve_device
from bwdp_core.errors import ConfigError, DataError
from bwdp_core.frames import (
    camera_motion_to_base,
    rotation_to_rotvec,
    transform_from_xyz_rpy,
    with_nearest_rotation,
)
from bwdp_core.geometry import depth_std_over_mean, near_constant_depth_message, pose_vec_to_mat
from bwdp_core.inference import settings
from bwdp_core.inference.adaptation import AdaptSample, WeightsProvider
from bwdp_core.inference.backends import optimize_for_inference
from bwdp_core.inference.ground_scale import GroundScale, GroundScaleConfig, ScaleStatus, grey_for_matching
from bwdp_core.inference.preprocess import image_to_tensor


def near_constant_depth_warning(depths, checkpoint: str) -> Optional[str]:
    """One warning line when a checkpoint's depth maps are near-constant (a collapsed DispNet, issue 13), else None.

    depths: depth maps [h,w] (numpy or torch, network units) of the first real frames; the statistic is the mean of
    their std / mean (bwdp_core.geometry.depth_std_over_mean; threshold NEAR_CONSTANT_DEPTH). Used once per
    checkpoint load by VisualOdometry (the node, `bwdp replay`) and by `bwdp vo`.
    """
    stats = [float(depth_std_over_mean(torch.as_tensor(np.asarray(d, dtype=np.float64))[None])[0]) for d in depths]
    if not stats:
        return None
    return near_constant_depth_message(float(np.mean(stats)), f"checkpoint {checkpoint}")


def translation_in_depth_units(T_prev_cur: np.ndarray, unit: str, target_mean_depth) -> np.ndarray:
    """PoseNet's relative pose(s) [..., 4, 4] with the translation in the network's depth units.

    ``unit`` is the checkpoint's ``pose_translation_unit`` (bwdp_core.checkpoint.TRANSLATION_UNITS): "depth" returns
    the poses unchanged; "target_mean_depth" multiplies each translation by ``target_mean_depth`` (a scalar, or [...]
    one per pose), the mean of the target (= current) frame's depth map, as the scale-invariant warp divided it out
    in training. A copy; the input is not changed."""
    T = np.array(T_prev_cur, dtype=np.float64, copy=True)
    if unit == "target_mean_depth":
        T[..., :3, 3] *= np.asarray(target_mean_depth, dtype=np.float64)[..., None]
    elif unit != "depth":
        raise ConfigError(f"unknown pose translation unit {unit!r}")
    return T


def scale_intrinsics_to(K: np.ndarray, src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """3x3 K of an image of size src_hw -> K of the same view resized to dst_hw (fx, cx by W ratio; fy, cy by H ratio).

    Plain multiplication, as ROS image_proc's resize node does, so the depth image's CameraInfo matches ROS tools.
    """
    sy = dst_hw[0] / float(src_hw[0])
    sx = dst_hw[1] / float(src_hw[1])
    K = np.array(K, dtype=np.float64)
    K[0, :] *= sx
    K[1, :] *= sy
    return K


class DepthPoseEstimator:
    """DispNet + PoseNet from a checkpoint, prepared for fast single-frame inference (bwdp_core.inference.backends).

    estimator = DepthPoseEstimator("model.pt", device="auto")
    x = estimator.to_tensor(rgb_uint8)          # [1,3,h,w] on the device, h x w = the checkpoint's training size
    depth = estimator.depth(x)                  # float32 [h,w], network units (1 / disparity)
    T_prev_cur = estimator.relative_pose(x, x_prev)   # 4x4 float64, camera motion prev -> cur (optical axes)

    Raises CheckpointError (missing / unreadable / mismatching checkpoint) and ConfigError (bad device).
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str = "auto", warmup_iterations: int = 2,
                 num_threads: int = 0, backend: str = "auto", int8_dir: str | os.PathLike | None = None,
                 depth_threads: int = 0):
        self.device = resolve_device(device)
        self.num_threads = int(num_threads)
        if num_threads > 0:
            torch.set_num_threads(int(num_threads))
        self.checkpoint = str(checkpoint)
        disp_net, pose_net, meta = load_models(checkpoint, device=str(self.device))
        self.height, self.width = int(meta["height"]), int(meta["width"])
        # (fx/W, fy/H, cx/W, cy/H) of the training camera when the checkpoint records it (the geometry check)
        self.training_intrinsics = meta.get("intrinsics")
        # one unit of PoseNet's translation (bwdp_core.checkpoint.TRANSLATION_UNITS)
        self.translation_unit = meta.get("pose_translation_unit", "depth")
        # backend "auto": see bwdp_core.inference.backends (AUTO_ON_CPU / AUTO_ON_GPU, resolve_backend)
        self.runner = optimize_for_inference(disp_net.eval(), pose_net.eval(), self.height, self.width,
                                             backend=backend, device=self.device,
                                             num_threads=num_threads if num_threads > 0 else None,
                                             depth_threads=depth_threads if depth_threads > 0 else None,
                                             int8_dir=int8_dir or None)
        self.backend = self.runner.backend
        self.warmup(warmup_iterations)

    @property
    def size(self) -> tuple[int, int]:
        """Network input size (height, width)."""
        return self.height, self.width

    def to_tensor(self, image_rgb: np.ndarray) -> torch.Tensor:
        """uint8 RGB [H,W,3] (any size) -> float [1,3,h,w] in [0,1] at the network size, on the device."""
        if (image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3
                or min(image_rgb.shape[:2]) < 1):
            raise DataError(f"expected a uint8 RGB image [H,W,3], got {image_rgb.dtype} {image_rgb.shape}")
        return image_to_tensor(image_rgb, self.height, self.width, self.device)  # the same resize as training

    @torch.inference_mode()
    def depth(self, x: torch.Tensor) -> np.ndarray:
        """[1,3,h,w] -> float32 [h,w] depth = 1 / disparity at full network resolution (network units)."""
        return self.runner.depth(x)[0, 0].float().cpu().numpy()

    @torch.inference_mode()
    def relative_pose(self, x_cur: torch.Tensor, x_prev: torch.Tensor) -> np.ndarray:
        """PoseNet(tgt=cur, ref=prev) -> T_prev_cur 4x4 float64: the current camera's pose in the previous camera."""
        return pose_vec_to_mat(self.runner.pose(x_cur, x_prev).float())[0].cpu().double().numpy()

    def warmup(self, iterations: int = 2) -> None:
        """Run both networks on a blank frame so the first real frame is not slowed by lazy initialisation."""
        x = torch.full((1, 3, self.height, self.width), 0.5, device=self.device)
        for _ in range(max(0, int(iterations))):
            self.depth(x)
            self.relative_pose(x, x)


# the settings (bwdp_core.inference.settings) that VOConfig holds as they are; T_base_camera is built from
# camera_xyz + camera_rpy
VO_SETTINGS = ("metric_scale", "min_depth", "max_depth", "max_frame_gap", "max_speed", "camera_height",
               "ground_max_tilt")


def _default_mount() -> np.ndarray:
    return transform_from_xyz_rpy(settings.default("camera_xyz"), settings.default("camera_rpy"))


@dataclass
class VOConfig:
    """Settings of :class:`VisualOdometry`: defaults, meaning and checks are the settings table's (same names)."""

    metric_scale: float = settings.default("metric_scale")
    min_depth: float = settings.default("min_depth")          # depth (after metric_scale) below this -> NaN
    max_depth: float = settings.default("max_depth")          # depth above this -> NaN; 0 = no limit
    max_frame_gap: float = settings.default("max_frame_gap")  # s; a longer gap -> no motion estimate (tracking lost)
    max_speed: float = settings.default("max_speed")          # m/s (after metric_scale); faster -> tracking lost
    camera_height: float = settings.default("camera_height")  # m above the ground; > 0: scale from the ground plane
    ground_max_tilt: float = settings.default("ground_max_tilt")  # deg between the ground normal and the mount's up
    T_base_camera: np.ndarray = field(default_factory=_default_mount)  # camera mount (camera_xyz, camera_rpy)

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> "VOConfig":
        """From a dict of settings (e.g. the node's parameters; missing ones take their defaults; other keys are
        ignored); camera_xyz / camera_rpy -> T_base_camera. ConfigError with every reason when a value is bad."""
        names = (*VO_SETTINGS, "camera_xyz", "camera_rpy")
        used = {name: values[name] for name in names if name in values}
        reasons = settings.check_all(used)
        if reasons:
            raise ConfigError("; ".join(reasons))
        merged = {**settings.defaults(), **used}
        return cls(**{name: float(merged[name]) for name in VO_SETTINGS},
                   T_base_camera=transform_from_xyz_rpy(merged["camera_xyz"], merged["camera_rpy"]))

    def validate(self) -> "VOConfig":
        """The settings table's checks (each value, then across values) and a finite 4x4 mount; ConfigError."""
        reasons = settings.check_all({name: getattr(self, name) for name in VO_SETTINGS})
        if reasons:
            raise ConfigError("; ".join(reasons))
        T = np.asarray(self.T_base_camera, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ConfigError("T_base_camera must be a finite 4x4 transform")
        return self


TRACKING_OK = "ok"
TRACKING_INIT = "initialising"
TRACKING_LOST = "lost"


@dataclass
class VOFrame:
    """Everything one processed frame yields. Poses 4x4 float64; velocities in base_link axes."""

    stamp_ns: int
    depth: Optional[np.ndarray]       # float32 [h,w] (x metric_scale), NaN where invalid; optical frame of the image
    K_depth: Optional[np.ndarray]     # 3x3 intrinsics of `depth` (both None when process(with_depth=False))
    T_odom_base: np.ndarray           # robot pose in odom (odom = base_link at the first frame after a reset)
    T_start_camera: np.ndarray        # camera pose w.r.t. the first camera after a reset (optical axes)
    linear_velocity: np.ndarray       # (3,) m/s in base_link (of the current frame)
    angular_velocity: np.ndarray      # (3,) rad/s in base_link
    tracking: str                     # "ok" | "initialising" (first frame after a reset) | "lost"
    event: Optional[str] = None       # one line worth logging (reset, tracking lost, ground lost), else None
    warning: Optional[str] = None     # one line to log as a warning (near-constant depth of the checkpoint), else None
    scale: float = 1.0                # metres per network unit applied to this frame (metric_scale or ground scale)
    scale_spread: float = 0.0         # relative spread of the recent ground-plane measurements (0 without)
    frames_since_ground: int = 0      # frames since the last accepted ground fit (0 without camera_height)
    weights_version: int = 0          # adapted weights in use (0 = the checkpoint's)

    @property
    def tracking_lost(self) -> bool:
        return self.tracking == TRACKING_LOST


class VisualOdometry:
    """Stateful monocular VO over a frame stream: depth for every frame, pose chained frame to frame.

    vo = VisualOdometry(DepthPoseEstimator(ckpt), VOConfig(metric_scale=1.0))
    for image, K, stamp_ns in frames:
        frame = vo.process(image, K, stamp_ns)      # -> VOFrame
    vo.reset()                                       # odometry back to identity
    """

    def __init__(self, estimator: DepthPoseEstimator, config: VOConfig | None = None,
                 weights_provider: Optional[WeightsProvider] = None):
        self.estimator = estimator
        self.config = (config or VOConfig()).validate()
        self.weights_provider = weights_provider
        self.weights_version = 0
        self.unit_correction = 1.0  # network units of the weights in use -> units of the original weights
        self.ground = self._make_ground_scale(self.config)
        self._scale_lock = threading.Lock()
        self._last_scale: Optional[ScaleStatus] = None  # the newest ground fit (PoseNet-only frames use it)
        self._last_median_depth = float("nan")  # network units, of the newest depth frame (for adaptation)
        self._last_mean_depth = float("nan")  # network units, of the newest depth frame (translation_in_depth_units)
        self._depth_checked = False  # the near-constant-depth check runs once, on the first depth frame
        self._pending_warning: Optional[str] = None  # its line, handed out with the next processed frame
        self.reset()

    @staticmethod
    def _make_ground_scale(config: VOConfig) -> Optional[GroundScale]:
        if config.camera_height <= 0:
            return None
        cfg = GroundScaleConfig(camera_height=config.camera_height, max_tilt_deg=config.ground_max_tilt)
        return GroundScale(cfg, config.T_base_camera, initial=config.metric_scale)

    @property
    def scale_status(self) -> Optional[ScaleStatus]:
        """The ground-plane scale's state (None without camera_height)."""
        return None if self.ground is None else self.ground.status

    def reset(self) -> None:
        """Forget the previous frame; the next frame starts the odometry at identity."""
        self._prev_tensor: Optional[torch.Tensor] = None
        self.last_input: Optional[torch.Tensor] = None
        self._prev_stamp_ns: Optional[int] = None
        self._prev_match: Optional[np.ndarray] = None  # the previous frame for the road homography (camera_height)
        self.T_start_camera = np.eye(4)
        self.T_odom_base = np.eye(4)
        self.frames_since_reset = 0

    def update_config(self, **changes) -> None:
        """Change settings between frames (validated first; the old config stays on error)."""
        old = self.config
        self.config = replace(self.config, **changes).validate()
        ground_keys = ("camera_height", "ground_max_tilt", "T_base_camera")
        if any(not np.array_equal(getattr(old, k), getattr(self.config, k)) for k in ground_keys):
            self.ground = self._make_ground_scale(self.config)
            self._last_scale = None

    def _depth_with_invalid_as_nan(self, depth: np.ndarray, scale: float) -> np.ndarray:
        cfg = self.config
        depth = depth * np.float32(scale)
        invalid = ~np.isfinite(depth) | (depth <= 0) | (depth < cfg.min_depth)
        if cfg.max_depth > 0:
            invalid |= depth > cfg.max_depth
        depth[invalid] = np.nan
        return depth.astype(np.float32, copy=False)

    def _camera_motion(self, x_cur: torch.Tensor, dt: float) -> tuple[Optional[np.ndarray], Optional[str]]:
        """T_prev_cur in network units (of the original weights), or (None, reason) when it cannot be computed."""
        cfg = self.config
        if dt > cfg.max_frame_gap > 0:
            return None, f"tracking lost: {dt:.3f} s between frames exceeds max_frame_gap {cfg.max_frame_gap} s"
        T = self.estimator.relative_pose(x_cur, self._prev_tensor)
        if not np.all(np.isfinite(T)):
            return None, "tracking lost: the pose network returned a non-finite motion"
        unit = getattr(self.estimator, "translation_unit", "depth")
        if unit == "depth":
            T[:3, 3] *= self.unit_correction
        else:  # the mean depth (already x unit_correction) of this frame, or of the newest depth frame
            if not np.isfinite(self._last_mean_depth):
                self._last_mean_depth = self._mean_depth(self._valid_depths(
                    self.estimator.depth(x_cur) * np.float32(self.unit_correction)))
            T = translation_in_depth_units(T, unit, self._last_mean_depth)
        return T, None

    @staticmethod
    def _valid_depths(depth_units: np.ndarray) -> np.ndarray:
        """The finite, positive values of a depth map (flat)."""
        return depth_units[np.isfinite(depth_units) & (depth_units > 0)]

    @staticmethod
    def _mean_depth(valid: np.ndarray) -> float:
        """Mean of valid depths (``_valid_depths``); NaN when there are none."""
        return float(valid.mean()) if valid.size else float("nan")

    def _metric_motion(self, T_units: np.ndarray, scale: float, dt: float) -> tuple[Optional[np.ndarray],
                                                                                   Optional[str]]:
        """T_prev_cur with its translation in metres, or (None, reason) when it is faster than max_speed."""
        cfg = self.config
        T = T_units.copy()
        T[:3, 3] *= scale
        if cfg.max_speed > 0 and dt > 0 and np.linalg.norm(T[:3, 3]) / dt > cfg.max_speed:
            speed = np.linalg.norm(T[:3, 3]) / dt
            return None, f"tracking lost: estimated speed {speed:.2f} m/s exceeds max_speed {cfg.max_speed} m/s"
        return T, None

    def depth_frame(self, x: torch.Tensor, K: np.ndarray, image_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """DispNet on a network input ``x`` [1,3,h,w] of an image of size ``image_hw`` with intrinsics ``K`` ->
        (depth float32 [h,w] x the scale, NaN where invalid; its 3x3 K). Thread-safe against :meth:`process`:
        bwdp_core.inference.scheduling runs it in a thread of its own; with camera_height it also updates the
        ground-plane scale (under a lock)."""
        depth_units, K_depth = self._depth_units(x, K, image_hw)
        with self._scale_lock:
            status = self._last_scale
        return self._depth_with_invalid_as_nan(depth_units, self._scale_of(status)), K_depth

    def _scale_of(self, status: Optional[ScaleStatus]) -> float:
        return status.scale if status is not None else self.config.metric_scale

    def _depth_units(self, x: torch.Tensor, K: np.ndarray, image_hw: tuple[int, int]):
        """(depth in network units, K_depth) for input ``x``; checks the checkpoint once and, with camera_height,
        shows the depth to the ground-plane scale (is road in view)."""
        depth_units = self.estimator.depth(x) * np.float32(self.unit_correction)
        if not self._depth_checked:  # once per checkpoint: does it produce structured depth at all?
            self._depth_checked = True
            self._pending_warning = near_constant_depth_warning(
                [depth_units], getattr(self.estimator, "checkpoint", "in use"))
        K_depth = scale_intrinsics_to(K, image_hw, depth_units.shape)
        valid = self._valid_depths(depth_units)
        self._last_median_depth = float(np.median(valid)) if valid.size else float("nan")
        self._last_mean_depth = self._mean_depth(valid)
        if self.ground is not None:
            with self._scale_lock:
                self.ground.measure(depth_units, K_depth)  # the road gate; the scale comes from update_motion
        return depth_units, K_depth

    def process(self, image_rgb: np.ndarray, K: np.ndarray, stamp_ns: int, with_depth: bool = True) -> VOFrame:
        """One frame: uint8 RGB [H,W,3], its 3x3 intrinsics, its stamp (int ns) -> :class:`VOFrame`.

        ``with_depth=False``: PoseNet only (the frame's depth and K_depth are None); the network input stays in
        ``last_input`` for a later :meth:`depth_frame`.

        Raises DataError for an unusable image or K (the state is unchanged then). K follows the one camera-matrix
        rule (:mod:`bwdp_core.inference.intrinsics`, whose picker gives the node and `bwdp replay` their K).
        """
        K = as_intrinsics(K, "the frame's camera matrix")
        stamp_ns = int(stamp_ns)
        x_cur = self.estimator.to_tensor(image_rgb)  # validates the image
        self.last_input = x_cur

        event = None
        if self._prev_stamp_ns is not None and stamp_ns < self._prev_stamp_ns:
            event = (f"odometry reset: image stamp went backwards by {(self._prev_stamp_ns - stamp_ns) / 1e9:.3f} s "
                     "(bag loop or clock jump)")
            self.reset()

        self._take_new_weights()
        depth_units = K_depth = None
        if with_depth:
            depth_units, K_depth = self._depth_units(x_cur, K, image_rgb.shape[:2])
        match = grey_for_matching(image_rgb) if self.ground is not None else None
        zero = np.zeros(3)
        linear, angular = zero, zero
        T_units = None
        if self._prev_tensor is not None:
            dt = (stamp_ns - self._prev_stamp_ns) / 1e9
            T_units, reason = self._camera_motion(x_cur, dt)
        with self._scale_lock:
            if self.ground is not None and T_units is not None and self._prev_match is not None:
                K_match = scale_intrinsics_to(K, image_rgb.shape[:2], match.shape)
                self._last_scale = self.ground.update_motion(self._prev_match, match, K_match, T_units)
                event = event or self._last_scale.event
            status = self._last_scale
        self._prev_match = match
        scale = self._scale_of(status)
        spread, since_ground = (status.spread, status.frames_since_good) if status is not None else (0.0, 0)
        depth = None if depth_units is None else self._depth_with_invalid_as_nan(depth_units, scale)
        if self._prev_tensor is None:
            tracking = TRACKING_INIT
        else:
            T_cam = None
            if T_units is not None:
                T_cam, reason = self._metric_motion(T_units, scale, dt)
            if T_cam is None:
                tracking, event = TRACKING_LOST, event or reason
            else:
                tracking = TRACKING_OK
                T_base = camera_motion_to_base(T_cam, self.config.T_base_camera)
                # chained float poses drift off SO(3); keep them rotations (tools such as evo refuse the others)
                self.T_start_camera = with_nearest_rotation(self.T_start_camera @ T_cam)
                self.T_odom_base = with_nearest_rotation(self.T_odom_base @ T_base)
                if dt > 0:
                    linear = T_base[:3, 3] / dt
                    angular = rotation_to_rotvec(T_base[:3, :3]) / dt
        self._prev_tensor, self._prev_stamp_ns = x_cur, stamp_ns
        self.frames_since_reset += 1
        if self.weights_provider is not None:
            K_net = K_depth if K_depth is not None else scale_intrinsics_to(K, image_rgb.shape[:2], self.estimator.size)
            self.weights_provider.observe(AdaptSample(
                image=x_cur, K=K_net, stamp_ns=stamp_ns, tracking=tracking,
                T_prev_cur=T_units if tracking == TRACKING_OK else None,
                median_depth=self._last_median_depth))  # of the newest depth frame (this one when it has depth)
        return VOFrame(stamp_ns=stamp_ns, depth=depth, K_depth=K_depth, T_odom_base=self.T_odom_base.copy(),
                       T_start_camera=self.T_start_camera.copy(), linear_velocity=np.array(linear),
                       angular_velocity=np.array(angular), tracking=tracking, event=event, scale=float(scale),
                       scale_spread=spread, frames_since_ground=since_ground, weights_version=self.weights_version,
                       warning=self._take_warning())

    def _take_warning(self) -> Optional[str]:
        warning, self._pending_warning = self._pending_warning, None
        return warning

    def _take_new_weights(self) -> None:
        """Swap in weights the provider has ready (one reference assignment; never waits for training)."""
        update = self.weights_provider.take_update() if self.weights_provider is not None else None
        if update is None:
            return
        self.estimator.runner = update.runner
        self.unit_correction /= float(update.depth_ratio)
        self.weights_version = update.version

