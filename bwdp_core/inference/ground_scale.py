"""Metric scale from the camera's mounting height: fit the ground plane in each depth map, filter the scale over time.

Monocular depth and motion share one unknown scale. A camera mounted ``camera_height`` metres above a flat ground sees
the road in the lower part of the image; back-projecting those pixels with the predicted depth gives points on a plane
whose distance from the camera is ``camera_height`` in metres and ``d`` in network units, so

    scale = camera_height / d                 (:func:`scale_from_ground_plane`)

turns network units into metres for depth, translation and velocity alike.

Read top-down:
1. :func:`ground_up_vector`: where "up" points in the optical frame, from the camera mount ``T_base_camera``.
2. :func:`backproject_ground_region`: the lower image region as 3D points (optical frame, network units).
3. :func:`fit_ground_plane`: RANSAC for a plane whose normal is within ``max_tilt_deg`` of "up" and which lies below
   the camera; a least-squares refit on the inliers. ``None`` when no such plane is supported by enough points (sky,
   a wall, a close obstacle): that frame gives no measurement.
4. :class:`ScaleFilter`: the published scale. Medians over a window of accepted measurements, an outlier gate, and a
   bounded change per frame: the scale never jumps, and frames without ground keep the last good scale.
5. :class:`GroundScale` ties the four together per frame: ``update(depth, K) -> ScaleStatus``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np

from bwdp_core.errors import ConfigError

MAX_CAMERA_HEIGHT = 100.0  # m; a larger "camera height" is a unit error (mm?), not a mount


@dataclass(frozen=True)
class GroundScaleConfig:
    """Settings of the ground-plane scale (one owner: the node, `bwdp vo` and `bwdp replay` take these).

    camera_height: metres of the camera's optical centre above the ground (0 = off).
    max_tilt_deg: the plane normal may differ this much from the mount's "up" (vehicle pitch/roll, road slope).
    region_top: the ground region starts at this fraction of the image height (its bottom is the image bottom).
    region_side: this fraction of the width is left out on each side (kerbs, parked cars, walls).
    inlier_tolerance: a point is on the plane when its distance to it is below this fraction of the plane distance.
    min_inlier_fraction: a plane needs this fraction of the region's points (and ``min_inliers`` points) to count.
    """

    camera_height: float = 0.0
    max_tilt_deg: float = 15.0
    region_top: float = 0.55
    region_side: float = 0.15
    inlier_tolerance: float = 0.03
    min_inlier_fraction: float = 0.25
    min_inliers: int = 30
    iterations: int = 64
    max_points: int = 3000
    window: int = 30
    max_step: float = 0.02
    gate: float = 0.25
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return self.camera_height > 0

    def validate(self) -> "GroundScaleConfig":
        check_camera_height(self.camera_height)
        if not 0 < self.max_tilt_deg < 90:
            raise ConfigError(f"ground max_tilt_deg must be in (0, 90), got {self.max_tilt_deg}")
        if not 0 <= self.region_top < 1 or not 0 <= self.region_side < 0.5:
            raise ConfigError(f"ground region_top must be in [0, 1) and region_side in [0, 0.5), got "
                              f"{self.region_top}, {self.region_side}")
        for name in ("inlier_tolerance", "min_inlier_fraction", "max_step", "gate"):
            value = getattr(self, name)
            if not np.isfinite(value) or not 0 < value < 1:
                raise ConfigError(f"ground {name} must be in (0, 1), got {value}")
        for name in ("min_inliers", "iterations", "max_points", "window"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"ground {name} must be >= 1, got {getattr(self, name)}")
        return self


def check_camera_height(value: float) -> None:
    """ConfigError unless ``value`` is 0 (off) or a plausible height in metres."""
    if not np.isfinite(value) or value < 0 or value > MAX_CAMERA_HEIGHT:
        raise ConfigError(f"camera_height must be 0 (off) or a height in metres in (0, {MAX_CAMERA_HEIGHT:g}], got "
                          f"{value}")


def ground_up_vector(T_base_camera: np.ndarray) -> np.ndarray:
    """The robot's "up" (base_link +z) in the camera's optical axes, (3,) unit vector.

    For the default forward-looking mount (optical rotation) this is (0, -1, 0): optical y points down.
    """
    R_base_camera = np.asarray(T_base_camera, dtype=np.float64)[:3, :3]
    up = R_base_camera.T @ np.array([0.0, 0.0, 1.0])
    return up / np.linalg.norm(up)


def backproject_ground_region(depth: np.ndarray, K: np.ndarray, region_top: float, region_side: float) -> np.ndarray:
    """Points X = D(p) K^-1 p of the lower-middle image region, optical frame: depth [h,w] (network units or metres,
    NaN/<=0 invalid), K 3x3 at the depth's size -> [N,3] float64 (valid pixels only)."""
    h, w = depth.shape
    row0 = int(np.floor(region_top * h))
    col0, col1 = int(np.floor(region_side * w)), int(np.ceil((1.0 - region_side) * w))
    region = np.asarray(depth[row0:, col0:col1], dtype=np.float64)
    ys, xs = np.mgrid[row0:h, col0:col1]
    valid = np.isfinite(region) & (region > 0)
    z = region[valid]
    x = (xs[valid] - K[0, 2]) / K[0, 0] * z
    y = (ys[valid] - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], axis=1)


@dataclass(frozen=True)
class GroundPlane:
    """Plane n . X + distance = 0 in the optical frame: ``normal`` (3,) unit, pointing up (towards the camera side);
    ``distance`` > 0 is the camera's height above it in the depth map's units."""

    normal: np.ndarray
    distance: float
    inliers: int
    inlier_fraction: float


def _plane_through(points: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Planes through point triples [M,3,3] -> (unit normals [M,3] oriented along ``up``, distances [M]).

    A degenerate triple (collinear) gets a zero normal and distance 0, which later tests reject.
    """
    normal = np.cross(points[:, 1] - points[:, 0], points[:, 2] - points[:, 0])
    norm = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.where(norm > 1e-12, normal / np.maximum(norm, 1e-12), 0.0)
    normal *= np.where(normal @ up < 0, -1.0, 1.0)[:, None]
    distance = -np.einsum("mk,mk->m", normal, points[:, 0])
    return normal, distance


def _least_squares_plane(points: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, float]:
    """Total-least-squares plane through [N,3] points (normal = smallest principal axis), oriented along ``up``."""
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1]
    if normal @ up < 0:
        normal = -normal
    return normal, float(-normal @ centroid)


def fit_ground_plane(points: np.ndarray, up: np.ndarray, cfg: GroundScaleConfig,
                     rng: Optional[np.random.Generator] = None) -> Optional[GroundPlane]:
    """RANSAC ground plane of [N,3] optical-frame points, or None when none is supported well enough.

    A candidate must (a) have its normal within ``cfg.max_tilt_deg`` of ``up``, (b) lie below the camera
    (distance > 0 along ``up``). Inliers are points closer to it than ``cfg.inlier_tolerance`` x its distance (relative,
    since the depth's unit is unknown). The best candidate is refitted by least squares on its inliers and checked
    again; it counts when it keeps ``cfg.min_inliers`` points and ``cfg.min_inlier_fraction`` of all points.
    """
    rng = rng if rng is not None else np.random.default_rng(cfg.seed)
    n = len(points)
    if n < max(3, cfg.min_inliers):
        return None
    if n > cfg.max_points:
        points = points[rng.choice(n, cfg.max_points, replace=False)]
        n = cfg.max_points
    cos_tilt = np.cos(np.deg2rad(cfg.max_tilt_deg))
    triples = points[rng.integers(0, n, size=(cfg.iterations, 3))]
    normals, distances = _plane_through(triples, up)
    plausible = (normals @ up >= cos_tilt) & (distances > 0)
    if not plausible.any():
        return None
    normals, distances = normals[plausible], distances[plausible]
    residual = np.abs(points @ normals.T + distances[None, :])          # [N, M]
    counts = (residual < cfg.inlier_tolerance * distances[None, :]).sum(axis=0)
    best = int(np.argmax(counts))
    inliers = residual[:, best] < cfg.inlier_tolerance * distances[best]
    for _ in range(2):  # refit on the inliers, then once more on the refit's inliers
        if inliers.sum() < 3:
            return None
        normal, distance = _least_squares_plane(points[inliers], up)
        if normal @ up < cos_tilt or distance <= 0:
            return None
        inliers = np.abs(points @ normal + distance) < cfg.inlier_tolerance * distance
    count = int(inliers.sum())
    if count < cfg.min_inliers or count < cfg.min_inlier_fraction * n:
        return None
    return GroundPlane(normal=normal, distance=distance, inliers=count, inlier_fraction=count / n)


def scale_from_ground_plane(camera_height: float, plane: GroundPlane) -> float:
    """Metres per depth unit: the known camera height over the plane's distance in the depth map's units."""
    return float(camera_height) / float(plane.distance)


@dataclass(frozen=True)
class ScaleStatus:
    """What the scale filter holds after a frame.

    scale: metres per network unit now (the ``initial`` value until the first ground fit); spread: robust relative
    spread of the recent accepted measurements (1.4826 MAD / median; 0 with fewer than 2); frames_since_good: frames
    since the last accepted ground fit (0 = this one); measurement: this frame's raw value (None without ground);
    initialised: at least one ground fit was accepted; event: a line worth logging once (ground lost / found), else
    None.
    """

    scale: float
    spread: float
    frames_since_good: int
    measurement: Optional[float]
    initialised: bool
    event: Optional[str] = None


class ScaleFilter:
    """Temporal filter of per-frame scale measurements: robust to frames without road and never jumping.

    - target = median of the last ``window`` accepted measurements;
    - a measurement further than ``gate`` (relative) from the target is rejected as an outlier -- unless the last
      ``window // 2`` measurements were all rejected and agree among themselves (the scale really changed), which
      starts the window over from them;
    - the published scale moves towards the target by at most ``max_step`` (relative) per frame;
    - without a measurement the scale stays where it is; ``frames_since_good`` counts up.
    The first accepted measurement sets the scale directly (there is nothing to be continuous with yet).
    """

    def __init__(self, window: int = 30, max_step: float = 0.02, gate: float = 0.25, initial: float = 1.0):
        self.window, self.max_step, self.gate = int(window), float(max_step), float(gate)
        self.initial = float(initial)
        self.reset()

    def reset(self) -> None:
        self._accepted: deque[float] = deque(maxlen=self.window)
        self._rejected: deque[float] = deque(maxlen=max(2, self.window // 2))
        self.scale = self.initial
        self.frames_since_good = 0
        self.initialised = False
        self._ground_visible = True

    @property
    def spread(self) -> float:
        if len(self._accepted) < 2:
            return 0.0
        values = np.asarray(self._accepted)
        median = np.median(values)
        return float(1.4826 * np.median(np.abs(values - median)) / median)

    def _accept(self, measurement: float) -> bool:
        if not self._accepted:
            return True
        target = float(np.median(self._accepted))
        if abs(measurement / target - 1.0) <= self.gate:
            self._rejected.clear()
            return True
        self._rejected.append(measurement)
        if len(self._rejected) == self._rejected.maxlen:
            values = np.asarray(self._rejected)
            if np.all(np.abs(values / np.median(values) - 1.0) <= self.gate):
                self._accepted.clear()
                self._accepted.extend(values[:-1].tolist())
                self._rejected.clear()
                return True
        return False

    def update(self, measurement: Optional[float]) -> ScaleStatus:
        """One frame's measurement (metres per unit, or None when the frame showed no ground) -> the new status."""
        event = None
        valid = measurement is not None and np.isfinite(measurement) and measurement > 0
        if valid and self._accept(float(measurement)):
            self._accepted.append(float(measurement))
            target = float(np.median(self._accepted))
            if not self.initialised:
                self.scale, self.initialised = target, True
                event = f"ground found: metric scale {target:.4f} m per unit"
            else:
                ratio = np.clip(target / self.scale, 1.0 - self.max_step, 1.0 + self.max_step)
                self.scale = float(self.scale * ratio)
                if not self._ground_visible:
                    event = f"ground visible again after {self.frames_since_good} frames"
            self.frames_since_good = 0
            self._ground_visible = True
        else:
            self.frames_since_good += 1
            if not valid and self._ground_visible:
                self._ground_visible = False
                event = (f"no ground plane in view: keeping the last scale {self.scale:.4f}" if self.initialised
                         else f"no ground plane in view yet: scale stays {self.scale:.4f} until the road is seen")
        return ScaleStatus(scale=self.scale, spread=self.spread, frames_since_good=self.frames_since_good,
                           measurement=float(measurement) if valid else None, initialised=self.initialised,
                           event=event)


class GroundScale:
    """Per-frame ground-plane scale: ``update(depth, K) -> ScaleStatus`` (depth in network units, K at its size).

    scale = GroundScale(GroundScaleConfig(camera_height=1.65), T_base_camera, initial=1.0)
    status = scale.update(depth_network_units, K_depth)     # status.scale: metres per network unit
    """

    def __init__(self, cfg: GroundScaleConfig, T_base_camera: np.ndarray, initial: float = 1.0):
        self.cfg = cfg.validate()
        if not cfg.enabled:
            raise ConfigError("GroundScale needs camera_height > 0")
        self.up = ground_up_vector(T_base_camera)
        self.filter = ScaleFilter(cfg.window, cfg.max_step, cfg.gate, initial)
        self._rng = np.random.default_rng(cfg.seed)
        self.last_plane: Optional[GroundPlane] = None
        self.status = ScaleStatus(scale=float(initial), spread=0.0, frames_since_good=0, measurement=None,
                                  initialised=False)

    def measure(self, depth: np.ndarray, K: np.ndarray) -> Optional[float]:
        """This frame's scale measurement, or None without a ground plane."""
        points = backproject_ground_region(depth, K, self.cfg.region_top, self.cfg.region_side)
        self.last_plane = fit_ground_plane(points, self.up, self.cfg, self._rng)
        return None if self.last_plane is None else scale_from_ground_plane(self.cfg.camera_height, self.last_plane)

    def update(self, depth: np.ndarray, K: np.ndarray) -> ScaleStatus:
        self.status = self.filter.update(self.measure(depth, K))
        return self.status

    def reset(self) -> None:
        """Forget the measurements (a new start); the scale goes back to its initial value."""
        self.filter.reset()
