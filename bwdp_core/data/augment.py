"""Resizing and augmentation of a snippet (all frames + target depth) with the intrinsics kept exact.

Pixel convention (see INTERFACES): pixel centres at integer coordinates, x in 0..W-1. OpenCV's resize maps
a destination pixel x' to source x = (x' + 0.5) / s - 0.5 (s = W'/W), so a point at source column x lands at
x' = (x + 0.5) s - 0.5 and the intrinsics become fx' = s fx, cx' = s (cx + 0.5) - 0.5 (not the naive s cx, which is
half a pixel off). A horizontal flip maps x -> W - 1 - x, so cx' = W - 1 - cx. A crop at (x0, y0) shifts cx, cy by
-x0, -y0. Images are uint8 [H, W, 3] RGB numpy arrays, depths float32 [H, W] (0 = invalid, resized by nearest
neighbour so invalid pixels never blend with valid ones), K float64 [3, 3].
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def resize_intrinsics(K: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """K at image size ``src_size`` (H, W) -> K at ``dst_size`` (H', W') for an OpenCV resize (see module doc)."""
    sy, sx = dst_size[0] / src_size[0], dst_size[1] / src_size[1]
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
    K[1, 1] *= sy
    K[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
    return K


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] -> [H', W', 3]: area averaging when shrinking, bilinear when enlarging."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrinking = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 [H, W] -> [H', W'] by nearest neighbour with the same half-pixel mapping as the images."""
    h, w = size
    if depth.shape[:2] == (h, w):
        return depth
    return cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


def flip_horizontal(images: list[np.ndarray], K: np.ndarray, depth: np.ndarray | None = None):
    """Mirror left-right: every image (and the depth) x -> W-1-x; K: cx -> W-1-cx (skew negated). Returns the same
    triple."""
    width = images[0].shape[1]
    flipped = [np.ascontiguousarray(im[:, ::-1]) for im in images]
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, 2] = (width - 1) - K[0, 2]
    K[0, 1] = -K[0, 1]
    depth = None if depth is None else np.ascontiguousarray(depth[:, ::-1])
    return flipped, K, depth


def scale_crop(images: list[np.ndarray], K: np.ndarray, depth: np.ndarray | None, scale: float,
               offset: tuple[int, int]):
    """Enlarge by ``scale`` (>= 1) to (round(H s), round(W s)), then crop back to (H, W) at offset (x0, y0).

    Returns (images, K, depth) at the original size; K is updated exactly (resize_intrinsics, then the crop shift).
    """
    h, w = images[0].shape[:2]
    big = (max(h, int(round(h * scale))), max(w, int(round(w * scale))))
    x0, y0 = int(offset[0]), int(offset[1])
    if not (0 <= x0 <= big[1] - w and 0 <= y0 <= big[0] - h):
        raise ValueError(f"crop offset {offset} outside the scaled image {big[1]}x{big[0]} for a {w}x{h} crop")
    cropped = [resize_image(im, big)[y0:y0 + h, x0:x0 + w] for im in images]
    K = resize_intrinsics(K, (h, w), big)
    K[0, 2] -= x0
    K[1, 2] -= y0
    if depth is not None:
        depth = resize_depth(depth, big)[y0:y0 + h, x0:x0 + w]
    return [np.ascontiguousarray(c) for c in cropped], K, depth


@dataclass(frozen=True)
class AugmentParams:
    """One random draw: flip or not, the enlargement factor and the crop offset (x0, y0) in the enlarged image."""

    flip: bool
    scale: float
    offset: tuple[int, int]


def draw_augment_params(rng: np.random.Generator, size: tuple[int, int], max_scale: float = 1.15,
                        flip_probability: float = 0.5) -> AugmentParams:
    """Flip with ``flip_probability``; scale uniform in [1, max_scale]; crop offset uniform over the valid range."""
    h, w = size
    flip = bool(rng.random() < flip_probability)
    scale = float(rng.uniform(1.0, max_scale))
    big_h, big_w = max(h, int(round(h * scale))), max(w, int(round(w * scale)))
    offset = (int(rng.integers(0, big_w - w + 1)), int(rng.integers(0, big_h - h + 1)))
    return AugmentParams(flip, scale, offset)


def apply_augment(images: list[np.ndarray], K: np.ndarray, depth: np.ndarray | None, params: AugmentParams):
    """Scale-crop then (optionally) flip, identically for every frame of the snippet and its depth."""
    if params.scale > 1.0:
        images, K, depth = scale_crop(images, K, depth, params.scale, params.offset)
    if params.flip:
        images, K, depth = flip_horizontal(images, K, depth)
    return images, K, depth
