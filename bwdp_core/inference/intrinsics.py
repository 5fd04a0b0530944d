"""Which camera intrinsics a frame is processed with: the one picker of the ROS node and `bwdp replay` (no ROS here).

Sources, in this order of preference:

1. a CameraInfo (its ``k``: 9 numbers, row-major, and its ``height`` / ``width``) -- :func:`camera_info_intrinsics`;
2. the fallback ``fx, fy, cx, cy`` (node parameters, ``bwdp replay --intrinsics``) -- :func:`parameter_intrinsics`.

**The rule for a camera matrix** (one implementation, :func:`bwdp_core.data.sources.as_intrinsics`, shared with the
training sources and the bag reader, so a K the node accepts is a K training accepts): 9 (or fx fy cx cy) finite
numbers forming a pinhole matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` with fx, fy > 0 -- the last row must be
``0 0 1`` (to float tolerance) and K[1,0] zero. An all-zero K (what camera drivers publish before calibration) fails,
and so does a K whose last row is not ``0 0 1``: it is not a pinhole camera matrix, and K is used as is (scaled to the
depth size) in the depth CameraInfo the node publishes. (Before, the node only required fx, fy > 0 while the bag
reader also required K[2,2] == 1; the stricter rule is the sound one.)

**The size rule**: a CameraInfo must state its image size (height, width > 0) and it must equal the image's; the
fallback intrinsics belong to the size of the first image they are used with. A mismatch is a DataError with
``category = "size"`` (the frame is skipped: intrinsics of another resolution would give a wrong depth CameraInfo);
no intrinsics at all is a DataError with ``category = "no_camera_info"``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from bwdp_core.data.sources import as_intrinsics
from bwdp_core.errors import DataError

CameraInfoIntrinsics = tuple[np.ndarray, tuple[int, int]]  # (K 3x3 float64, (height, width) it was calibrated at)


def _error(message: str, category: str) -> DataError:
    err = DataError(message)
    err.category = category  # the node throttles its log lines per category
    return err


def camera_info_intrinsics(k, height: int, width: int) -> CameraInfoIntrinsics:
    """A CameraInfo's numbers -> (K, (height, width)); DataError when K breaks the rule or the size is zero."""
    if np.size(k) != 9:
        raise DataError(f"camera_info has no usable intrinsics: K must be 9 numbers, got {np.size(k)}")
    try:
        K = as_intrinsics(k, "camera_info")
    except DataError as err:
        raise DataError(f"camera_info has no usable intrinsics: {err} (uncalibrated camera?)") from None
    if height <= 0 or width <= 0:
        raise DataError(f"camera_info has zero image size {height}x{width}")
    return K, (int(height), int(width))


def parameter_intrinsics(fx: float, fy: float, cx: float, cy: float) -> Optional[np.ndarray]:
    """3x3 K from the fallback fx, fy, cx, cy when fx and fy are given (> 0), else None (not given)."""
    if fx > 0 and fy > 0:
        return as_intrinsics((fx, fy, cx, cy), "the fx, fy, cx, cy intrinsics")
    return None


class IntrinsicsPicker:
    """K for each frame of one camera stream: the CameraInfo's when there is one, else the fallback (see module doc).

    picker = IntrinsicsPicker(parameter_intrinsics(fx, fy, cx, cy))   # fallback may be None
    K = picker.pick(image.shape[:2], camera_info_or_None, missing="why there is no CameraInfo; what to do")
    """

    def __init__(self, fallback: Optional[np.ndarray] = None):
        self.fallback = fallback              # may be replaced while running (a changed node parameter)
        self.fallback_size: Optional[tuple[int, int]] = None

    def pick(self, size_hw: tuple[int, int], camera_info: Optional[CameraInfoIntrinsics], missing: str) -> np.ndarray:
        """K at the image size ``size_hw``; DataError (with a ``category``) when no source fits the image."""
        size_hw = (int(size_hw[0]), int(size_hw[1]))
        if camera_info is not None:
            K, info_hw = camera_info
            if info_hw != size_hw:
                raise _error(f"image size {size_hw[1]}x{size_hw[0]} does not match camera_info "
                             f"{info_hw[1]}x{info_hw[0]}; waiting for frames and camera_info that agree", "size")
            return K
        K = self.fallback
        if K is None:
            raise _error(missing, "no_camera_info")
        if self.fallback_size is None:
            self.fallback_size = size_hw
        elif self.fallback_size != size_hw:
            raise _error(f"image size changed from {self.fallback_size[1]}x{self.fallback_size[0]} to "
                         f"{size_hw[1]}x{size_hw[0]}; the fx, fy, cx, cy intrinsics belong to the first size", "size")
        return K
