"""How a camera's images are fitted to the network's input size, and whether the camera resembles the training one
(ROS-free; the node's ``resize_mode`` and its one-time geometry warning).

The networks run at the checkpoint's training size (h, w). Two ways to get there:

- ``stretch``: resize the whole image to (h, w). When the image's aspect ratio differs from w/h, pixels stop being
  square at the network size (640x480 into 384x128: fx : fy = 0.6 : 0.27) and the depth network sees a squashed
  world it never saw in training.
- ``crop``: cut the largest centred window with the network's aspect ratio, then resize; the field of view shrinks
  along one axis instead. The intrinsics follow the crop: cx -= left, cy -= top.

:func:`geometry_warnings` says what differs from the training geometry beyond a tolerance: the pixel aspect at the
network size (from the aspect ratios and fx / fy) and, when the checkpoint records its training intrinsics, the
field of view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

RESIZE_MODES = ("stretch", "crop")


@dataclass(frozen=True)
class CropBox:
    top: int
    left: int
    height: int
    width: int


def centre_crop_box(size_hw: tuple[int, int], target_hw: tuple[int, int]) -> CropBox:
    """The largest centred window of an image of ``size_hw`` with the aspect ratio of ``target_hw`` (integer pixels)."""
    H, W = (int(v) for v in size_hw)
    h, w = (int(v) for v in target_hw)
    if W * h > H * w:   # image wider than the target: keep the full height
        width, height = max(1, min(W, round(H * w / h))), H
    else:               # taller (or equal): keep the full width
        width, height = W, max(1, min(H, round(W * h / w)))
    return CropBox(top=(H - height) // 2, left=(W - width) // 2, height=height, width=width)


def crop_intrinsics(K: np.ndarray, box: CropBox) -> np.ndarray:
    """K of the full image -> K of the cropped window (principal point shifted by the window's corner)."""
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, 2] -= box.left
    K[1, 2] -= box.top
    return K


def fit_to_network(image: np.ndarray, K: np.ndarray, network_hw: tuple[int, int],
                   mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, K) as the networks should get them under ``mode`` (stretch: unchanged, the resize happens later;
    crop: the centred window with the network's aspect ratio and its K)."""
    if mode == "stretch":
        return image, K
    if mode != "crop":
        raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, got {mode!r}")
    box = centre_crop_box(image.shape[:2], network_hw)
    window = image[box.top: box.top + box.height, box.left: box.left + box.width]
    return window, crop_intrinsics(K, box)


def field_of_view_deg(focal: float, size: float) -> float:
    """Full angle (degrees) that ``size`` pixels span at focal length ``focal`` (pixels)."""
    return math.degrees(2.0 * math.atan(size / (2.0 * focal)))


def geometry_warnings(K: np.ndarray, size_hw: tuple[int, int], network_hw: tuple[int, int], mode: str,
                      tolerance: float, training_intrinsics: Optional[Sequence[float]] = None) -> list[str]:
    """Why this camera differs from the training geometry by more than ``tolerance`` (relative), as sentences.

    ``K``, ``size_hw``: the incoming camera; ``network_hw``: the checkpoint's input size; ``training_intrinsics``:
    optional (fx/W, fy/H, cx/W, cy/H) of the training camera (normalised by the training image size), else only the
    pixel aspect is checked. Empty when nothing differs.
    """
    K = np.asarray(K, dtype=np.float64)
    (H, W), (h, w) = size_hw, network_hw
    if mode == "crop":
        box = centre_crop_box((H, W), (h, w))
        H, W = box.height, box.width
    fx_net, fy_net = K[0, 0] * w / W, K[1, 1] * h / H
    reasons = []
    train_aspect = 1.0
    if training_intrinsics is not None:
        nfx, nfy = float(training_intrinsics[0]), float(training_intrinsics[1])
        train_aspect = (nfx * w) / (nfy * h)
    pixel_aspect = fx_net / fy_net
    if abs(pixel_aspect / train_aspect - 1.0) > tolerance:
        hint = " (resize_mode crop keeps it)" if mode == "stretch" and abs(W / H / (w / h) - 1.0) > tolerance else ""
        reasons.append(f"{W}x{H} images reach the {w}x{h} network with fx {fx_net:.0f} vs fy {fy_net:.0f} px: pixel "
                       f"aspect {pixel_aspect:.2f}, training {train_aspect:.2f}{hint}")
    if training_intrinsics is not None:
        for axis, focal, size, nf in (("horizontal", K[0, 0], W, training_intrinsics[0]),
                                      ("vertical", K[1, 1], H, training_intrinsics[1])):
            fov, train_fov = field_of_view_deg(focal, size), field_of_view_deg(float(nf), 1.0)
            if abs(fov / train_fov - 1.0) > tolerance:
                reasons.append(f"{axis} field of view {fov:.0f} deg, training {train_fov:.0f} deg (depth scales with "
                               "the focal length: expect a different metric_scale)")
    return reasons
