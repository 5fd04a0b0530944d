"""Depth image -> 3-D points in the camera optical frame (ROS-free): the node's optional PointCloud2.

The pinhole back-projection of pixel (u, v) with depth z under K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]:

    y = (v - cy) / fy * z,    x = (u - cx - s * y / z) / fx * z

(optical frame: x right, y down, z forward; the same K the depth's CameraInfo carries, so a cloud made by
depth_image_proc from the published depth + camera_info is the same set of points). Invalid depth (NaN, <= 0) gives no
point: the cloud is NaN-free. ``decimation`` keeps every n-th row and column.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from bwdp_core.data.augment import resize_image


@dataclass
class DepthCloud:
    """Points [N,3] float32 (optical frame, metres x metric_scale) and, when an image was given, colours [N,3] uint8."""

    points: np.ndarray
    rgb: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.points.shape[0])


def back_project_depth(depth: np.ndarray, K: np.ndarray, decimation: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """depth float32 [h,w] + its 3x3 K -> (points [N,3] float32 of the valid pixels, their flat pixel indices [N]).

    Pixels kept: every ``decimation``-th row and column, depth finite and > 0 (row-major order).
    """
    if decimation < 1:
        raise ValueError(f"decimation must be >= 1, got {decimation}")
    depth = np.asarray(depth, dtype=np.float32)
    K = np.asarray(K, dtype=np.float64)
    h, w = depth.shape
    v, u = np.mgrid[0:h:decimation, 0:w:decimation]
    z = depth[v, u]
    valid = np.isfinite(z) & (z > 0)
    u, v, z = u[valid].astype(np.float64), v[valid].astype(np.float64), z[valid].astype(np.float64)
    y = (v - K[1, 2]) / K[1, 1] * z
    x = (u - K[0, 2] - K[0, 1] * y / z) / K[0, 0] * z
    points = np.stack([x, y, z], axis=1).astype(np.float32)
    return points, (v * w + u).astype(np.int64)


def depth_cloud(depth: np.ndarray, K: np.ndarray, image_rgb: Optional[np.ndarray] = None,
                decimation: int = 1) -> DepthCloud:
    """The cloud of a depth image; with ``image_rgb`` (uint8 [H,W,3], the frame the depth came from, any size) each
    point gets the colour of its pixel, the image resized to the depth size exactly as the network input is."""
    points, flat = back_project_depth(depth, K, decimation)
    rgb = None
    if image_rgb is not None:
        small = resize_image(np.asarray(image_rgb, dtype=np.uint8), depth.shape[:2])
        rgb = small.reshape(-1, 3)[flat]
    return DepthCloud(points=points, rgb=rgb)
