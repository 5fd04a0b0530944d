"""The network input of one frame, exactly as training builds it, and single-image depth for evaluation.

Images are uint8 [H, W, 3] RGB at any size; they are resized to the checkpoint's training resolution (the networks
normalise internally). :func:`image_to_tensor` is what the VO processing (``vo_pipeline``) feeds the networks;
:func:`predict_depth` is the depth evaluation's per-image prediction (depth back at the image's, or a requested, size).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from bwdp_core.data.augment import resize_image
from bwdp_core.data.snippets import image_to_tensor as to_chw


def image_to_tensor(image: np.ndarray, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [H, W, 3] RGB -> float [1, 3, height, width] in [0, 1], resized exactly as the training data is
    (``bwdp_core.data.augment.resize_image``: area averaging when shrinking, bilinear when enlarging)."""
    return to_chw(resize_image(image, (height, width))).unsqueeze(0).to(device)


@torch.inference_mode()
def predict_depth(disp_net: torch.nn.Module, image: np.ndarray, height: int, width: int,
                  out_size: tuple[int, int] | None = None, device: torch.device | str = "cpu") -> np.ndarray:
    """Depth float32 [H_out, W_out] (network units: metres up to scale) of one image.

    Predicts at (height, width), resizes the full-resolution *disparity* bilinearly to ``out_size`` (default: the
    image's size), then inverts it (depth = 1 / disp), as the usual KITTI evaluation does.
    """
    out_h, out_w = out_size or image.shape[:2]
    disp = disp_net(image_to_tensor(image, height, width, device))[0][0][0, 0].float().cpu().numpy()
    if disp.shape != (out_h, out_w):
        disp = cv2.resize(disp, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    return (1.0 / np.maximum(disp, 1e-6)).astype(np.float32)
