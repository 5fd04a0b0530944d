"""Metric scale from the camera's mounting height: the road plane's distance in the network's units, filtered over time.

Monocular depth and motion share one unknown scale. A camera mounted ``camera_height`` metres above a flat ground sees
the road in the lower part of the image, a plane whose distance from the camera is ``camera_height`` in metres and
``d`` in network units, so

    scale = camera_height / d                 (:func:`scale_from_ground_plane`)

turns network units into metres for depth, translation and velocity alike.

``d`` is measured where the odometry needs it to be right: in the unit of PoseNet's translation. The road patch ahead
of the car moves between two frames by the plane-induced homography of that translation; the ``d`` whose homography
best aligns the patch (:func:`plane_distance_from_homography`) is the plane's distance in the translation's unit. A
plane fitted to the depth map instead (:func:`fit_ground_plane`) carries the depth network's own shape errors: on
KITTI 07 its scale was 35-64 % off where the homography's is 1-7 % off (bench/results/metric_scale.json). The depth
fit still decides whether road is in view at all and gives the search its starting distance.

Read top-down:
1. :func:`ground_up_vector`: where "up" points in the optical frame, from the camera mount ``T_base_camera``.
2. :func:`backproject_ground_region`: the lower image region as 3D points (optical frame, network units).
3. :func:`fit_ground_plane`: RANSAC for a plane whose normal is within ``max_tilt_deg`` of "up" and which lies below
   the camera; a least-squares refit on the inliers. ``None`` when no such plane is supported by enough points (sky,
   a wall, a close obstacle): that frame gives no measurement.
4. :func:`motion_aligned_normal`: the road normal, "up" made perpendicular to the recent direction of travel (a
   vehicle moves along its road; this finds the mount's pitch, which the distance is sensitive to).
5. :func:`plane_homography` and :func:`plane_distance_from_homography`: the distance from two frames and their motion.
6. :class:`ScaleFilter`: the published scale. Medians over a window of accepted measurements, an outlier gate, and a
   bounded change per frame: the scale never jumps, and frames without ground keep the last good scale.
7. :class:`GroundScale` ties them together: ``measure(depth, K)`` on depth frames (is there road? how far?),
   ``update_motion(prev, cur, K, T_prev_cur) -> ScaleStatus`` on every pair of frames with a motion.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import cv2
import numpy as np

from bwdp_core.errors import ConfigError

MAX_CAMERA_HEIGHT = 100.0  # m; a larger "camera height" is a unit error (mm?), not a mount
MATCH_WIDTH = 640  # px: frames are matched at this width (finer is slower; at 224 px the road's texture is gone)


@dataclass(frozen=True)
class GroundScaleConfig:
    """Settings of the ground-plane scale (one owner: the node, `bwdp vo` and `bwdp replay` take these).

    camera_height: metres of the camera's optical centre above the ground (0 = off).
    max_tilt_deg: the plane normal may differ this much from the mount's "up" (vehicle pitch/roll, road slope).
    region_top: the ground region starts at this fraction of the image height (its bottom is the image bottom).
    region_side: this fraction of the width is left out on each side (kerbs, parked cars, walls).
    inlier_tolerance: a point is on the plane when its distance to it is below this fraction of the plane distance.
    min_inlier_fraction: a plane needs this fraction of the region's points (and ``min_inliers`` points) to count.
    patch_top, patch_bottom, patch_side: the road patch the homography aligns: rows from ``patch_top`` to
      ``patch_bottom`` of the height, the middle ``1 - 2 patch_side`` of the width -- the lane just ahead. Chosen on
      KITTI 07 with GT motion (the depth fit's wider region lets parked cars and kerbs in and reads far too low).
    patch_columns: the patch is split into this many side-by-side columns, each aligned on its own; the distance is
      the median of the columns that give one (a parked car or kerb in one column cannot pull it).
    min_parallax: |translation| / plane distance below this gives no homography measurement (too little motion).
    min_match: the best-aligned patch needs this normalised cross-correlation (else: not a textured road).
    direction_window: frames of travel direction averaged for :func:`motion_aligned_normal`.
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
    patch_top: float = 0.70
    patch_bottom: float = 0.97
    patch_side: float = 0.35
    patch_columns: int = 3
    min_parallax: float = 0.05
    min_match: float = 0.5
    direction_window: int = 30

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
        if not 0 <= self.patch_top < self.patch_bottom <= 1 or not 0 <= self.patch_side < 0.5:
            raise ConfigError(f"ground patch rows must satisfy 0 <= patch_top < patch_bottom <= 1 and patch_side be in "
                              f"[0, 0.5), got {self.patch_top}, {self.patch_bottom}, {self.patch_side}")
        for name in ("min_parallax", "min_match"):
            value = getattr(self, name)
            if not np.isfinite(value) or not 0 < value < 1:
                raise ConfigError(f"ground {name} must be in (0, 1), got {value}")
        for name in ("min_inliers", "iterations", "max_points", "window", "direction_window", "patch_columns"):
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


def motion_aligned_normal(up: np.ndarray, directions, max_tilt_deg: float) -> np.ndarray:
    """The road's unit normal (3,), optical frame: ``up`` made perpendicular to the mean travel direction.

    directions: recent unit translations [N,3] of the camera (optical frame). A vehicle moves along the road, so the
    road normal is perpendicular to its motion; this measures the mount's pitch, to which the plane distance is
    sensitive (several % per degree at KITTI's geometry, seen with GT motion). Returns ``up`` unchanged without
    directions or when the corrected normal would tilt more than ``max_tilt_deg`` from it (reversing, a bad motion
    estimate).
    """
    up = np.asarray(up, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    if len(directions) == 0:
        return up
    mean = directions.mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 0.5:  # the directions disagree (turning on the spot, back and forth): no travel direction
        return up
    m = mean / norm
    normal = up - (up @ m) * m
    normal /= np.linalg.norm(normal)
    return normal if normal @ up >= np.cos(np.deg2rad(max_tilt_deg)) else up


def plane_homography(K: np.ndarray, T_prev_cur: np.ndarray, normal: np.ndarray, distance: float) -> np.ndarray:
    """The homography (3x3) a plane induces between two views: pixels of the previous frame -> the current frame.

    Plane n . X + d = 0 in the previous frame's optical axes (n (3,) unit, pointing up; d > 0 the camera's distance
    to it), T_prev_cur 4x4 the current camera in the previous one, K 3x3 of both frames. With X_cur = R X_prev + t
    (R = R_pc^T, t = -R_pc^T t_pc) and -n . X / d = 1 on the plane: H = K (R - t n^T / d) K^-1 (Hartley &
    Zisserman, Multiple View Geometry, 2nd ed., 13.1, with their plane n . X + d = 0 written for points below).
    """
    R_pc, t_pc = np.asarray(T_prev_cur, dtype=np.float64)[:3, :3], np.asarray(T_prev_cur, dtype=np.float64)[:3, 3]
    R, t = R_pc.T, -R_pc.T @ t_pc
    K = np.asarray(K, dtype=np.float64)
    return K @ (R - np.outer(t, normal) / float(distance)) @ np.linalg.inv(K)


def patch_rows_cols(shape: tuple[int, int], cfg: GroundScaleConfig) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the road patch in an image of ``shape`` (h, w)."""
    h, w = shape
    return (int(cfg.patch_top * h), max(int(cfg.patch_bottom * h), int(cfg.patch_top * h) + 1),
            int(cfg.patch_side * w), max(int(np.ceil((1 - cfg.patch_side) * w)), int(cfg.patch_side * w) + 1))


def patch_column_boxes(shape: tuple[int, int], cfg: GroundScaleConfig) -> list[tuple[int, int, int, int]]:
    """The road patch of :func:`patch_rows_cols` split into ``cfg.patch_columns`` side-by-side boxes (fewer when the
    patch is narrower than that many pixels)."""
    r0, r1, c0, c1 = patch_rows_cols(shape, cfg)
    edges = np.unique(np.linspace(c0, c1, min(cfg.patch_columns, c1 - c0) + 1).round().astype(int))
    return [(r0, r1, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


@lru_cache(maxsize=8)
def _patch_pixels(box: tuple[int, int, int, int]) -> np.ndarray:
    """Homogeneous pixel coordinates [rows, cols, 3] of the patch ``box`` (one per search, not per candidate)."""
    r0, r1, c0, c1 = box
    ys, xs = np.mgrid[r0:r1, c0:c1]
    pixels = np.stack([xs, ys, np.ones_like(xs)], axis=-1).astype(np.float64)
    pixels.flags.writeable = False
    return pixels


def patch_match(prev: np.ndarray, cur: np.ndarray, H: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Zero-mean normalised cross-correlation of the previous frame's patch ``box`` (row0, row1, col0, col1) with the
    current frame sampled at H p: in [-1, 1], NaN when under half the patch lands inside the current frame.

    prev, cur: float32 grey [h,w]. NCC, not a difference: it ignores exposure changes and does not prefer the
    magnified (smoother) warps a plain difference rewards. Pixels whose H p falls outside the current frame are left
    out (decided from H p itself: a border value blended in by the interpolation would pass for image).
    """
    r0, r1, c0, c1 = box
    h, w = cur.shape
    p = _patch_pixels(tuple(box)) @ np.asarray(H, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
    inside = (p[..., 2] > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    if inside.mean() < 0.5:
        return float("nan")
    warped = cv2.remap(cur, np.where(inside, u, 0).astype(np.float32), np.where(inside, v, 0).astype(np.float32),
                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = prev[r0:r1, c0:c1][inside]
    b = warped[inside]
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def _distance_in_box(prev: np.ndarray, cur: np.ndarray, K: np.ndarray, T_prev_cur: np.ndarray, normal: np.ndarray,
                     d0: float, cfg: GroundScaleConfig, box: tuple[int, int, int, int]) -> Optional[float]:
    """The plane distance whose homography best aligns ``box``: d in [d0/4, 4 d0] (log grid, then a finer grid around
    the best, then a parabola through the best three); None as :func:`plane_distance_from_homography` says."""
    t = float(np.linalg.norm(np.asarray(T_prev_cur)[:3, 3]))

    def scores(ds):
        return np.array([patch_match(prev, cur, plane_homography(K, T_prev_cur, normal, d), box) for d in ds])

    coarse = d0 * np.exp(np.linspace(np.log(0.25), np.log(4.0), 29))
    s = np.nan_to_num(scores(coarse), nan=-1.0)
    i = int(np.argmax(s))
    if i in (0, len(coarse) - 1):
        return None
    step = np.log(coarse[1] / coarse[0])
    fine = coarse[i] * np.exp(np.linspace(-step, step, 11))
    f = np.nan_to_num(scores(fine), nan=-1.0)
    j = int(np.clip(np.argmax(f), 1, len(fine) - 2))
    best = float(f[j])
    y0, y1, y2 = f[j - 1], f[j], f[j + 1]
    curvature = y0 - 2 * y1 + y2
    offset = 0.5 * (y0 - y2) / curvature if curvature < 0 else 0.0
    d = float(fine[j] * np.exp(np.clip(offset, -1, 1) * (np.log(fine[1] / fine[0]))))
    if best < cfg.min_match or t < cfg.min_parallax * d:
        return None
    return d


def plane_distance_from_homography(prev: np.ndarray, cur: np.ndarray, K: np.ndarray, T_prev_cur: np.ndarray,
                                   normal: np.ndarray, d0: float, cfg: GroundScaleConfig) -> Optional[float]:
    """The road plane's distance in the unit of ``T_prev_cur``'s translation, or None when the frames cannot tell.

    prev, cur: float32 grey [h,w] (the two frames; K 3x3 at that size); normal: the road normal (3,) in the previous
    frame; d0 > 0: a first guess of the distance (the depth map's plane). Each column of the road patch
    (:func:`patch_column_boxes`) is aligned on its own (the best :func:`patch_match` over d in [d0/4, 4 d0]); a
    column gives no distance when the motion is too small (|t| < ``cfg.min_parallax`` d), its best match is weak
    (< ``cfg.min_match``) or its best d lies on the search's edge. The result is the median over the columns that
    give one, None unless more than half of them do.

    Why columns: something standing on the road (a car, a kerb) is nearer than the road, and one whole-patch match
    follows whatever has the strongest texture; the median of the columns keeps the road when one column is taken
    (bench/results/metric_scale.json, ``patch_columns``).
    """
    if not np.isfinite(d0) or d0 <= 0:
        return None
    if not np.linalg.norm(np.asarray(T_prev_cur)[:3, 3]) >= cfg.min_parallax * d0 / 4:
        return None  # too little motion for any distance of the search (standing still): skip every column's search
    boxes = patch_column_boxes(prev.shape, cfg)
    found = [d for box in boxes if (d := _distance_in_box(prev, cur, K, T_prev_cur, normal, d0, cfg, box)) is not None]
    if 2 * len(found) <= len(boxes):
        return None
    return float(np.median(found))


def grey_for_matching(image_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [H,W,3] -> float32 grey [h,w], at ``MATCH_WIDTH`` wide or less (same aspect ratio); its K is the
    image's scaled to that size (``vo_pipeline.scale_intrinsics_to``)."""
    H, W = image_rgb.shape[:2]
    grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    if W > MATCH_WIDTH:
        grey = cv2.resize(grey, (MATCH_WIDTH, max(1, round(H * MATCH_WIDTH / W))), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


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

    def update(self, measurement: Optional[float], why: str = "no ground plane in view") -> ScaleStatus:
        """One frame's measurement (metres per unit, or None when the frame gave none, ``why``) -> the new status."""
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
                event = (f"{why}: keeping the last scale {self.scale:.4f}" if self.initialised
                         else f"{why}: scale stays {self.scale:.4f} until the road is measured")
        return ScaleStatus(scale=self.scale, spread=self.spread, frames_since_good=self.frames_since_good,
                           measurement=float(measurement) if valid else None, initialised=self.initialised,
                           event=event)


class GroundScale:
    """Ground-plane scale over a stream: ``measure`` on depth frames, ``update_motion`` on each frame pair.

    scale = GroundScale(GroundScaleConfig(camera_height=1.65), T_base_camera, initial=1.0)
    scale.measure(depth_network_units, K_depth)                # road in view? its distance, a first guess
    status = scale.update_motion(prev, cur, K_match, T_prev_cur_units)   # status.scale: metres per network unit

    prev, cur: :func:`grey_for_matching` of the two frames, K_match at their size; T_prev_cur: PoseNet's motion in
    network units.
    """

    def __init__(self, cfg: GroundScaleConfig, T_base_camera: np.ndarray, initial: float = 1.0):
        self.cfg = cfg.validate()
        if not cfg.enabled:
            raise ConfigError("GroundScale needs camera_height > 0")
        self.up = ground_up_vector(T_base_camera)
        self.filter = ScaleFilter(cfg.window, cfg.max_step, cfg.gate, initial)
        self._rng = np.random.default_rng(cfg.seed)
        self._directions: deque[np.ndarray] = deque(maxlen=cfg.direction_window)
        self.last_plane: Optional[GroundPlane] = None
        self.status = ScaleStatus(scale=float(initial), spread=0.0, frames_since_good=0, measurement=None,
                                  initialised=False)

    def measure(self, depth: np.ndarray, K: np.ndarray) -> Optional[float]:
        """A depth frame (network units, K at its size): is road in view, and roughly how far. The plane stays in
        ``last_plane`` (the homography's gate and first guess); returns the scale that plane alone gives, or None."""
        points = backproject_ground_region(depth, K, self.cfg.region_top, self.cfg.region_side)
        self.last_plane = fit_ground_plane(points, self.up, self.cfg, self._rng)
        return None if self.last_plane is None else scale_from_ground_plane(self.cfg.camera_height, self.last_plane)

    @property
    def road_normal(self) -> np.ndarray:
        return motion_aligned_normal(self.up, list(self._directions), self.cfg.max_tilt_deg)

    def measure_motion(self, prev: np.ndarray, cur: np.ndarray, K: np.ndarray,
                       T_prev_cur: np.ndarray) -> tuple[Optional[float], str]:
        """(this pair's scale or None, why not) from the road homography; see :func:`plane_distance_from_homography`."""
        t = np.asarray(T_prev_cur, dtype=np.float64)[:3, 3]
        if np.linalg.norm(t) > 0 and np.all(np.isfinite(t)):
            self._directions.append(t / np.linalg.norm(t))
        if self.last_plane is None:
            return None, "no ground plane in view"
        if prev.shape != cur.shape:
            return None, "frame size changed"
        d = plane_distance_from_homography(prev, cur, K, T_prev_cur, self.road_normal, self.last_plane.distance,
                                           self.cfg)
        if d is None:
            return None, "road not measurable (too little motion or texture)"
        return self.cfg.camera_height / d, ""

    def update_motion(self, prev: np.ndarray, cur: np.ndarray, K: np.ndarray, T_prev_cur: np.ndarray) -> ScaleStatus:
        measurement, why = self.measure_motion(prev, cur, K, T_prev_cur)
        self.status = self.filter.update(measurement, why or "no ground plane in view")
        return self.status

    def reset(self) -> None:
        """Forget the measurements (a new start); the scale goes back to its initial value."""
        self.filter.reset()
        self._directions.clear()
