"""Running trained networks on single frames for evaluation: preprocessing, depth and relative pose.

Images are uint8 [H, W, 3] RGB at any size; they are resized to the checkpoint's training resolution (the networks
normalise internally). Depth comes back at the image's (or a requested) size.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch


def image_to_tensor(image: np.ndarray, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [H, W, 3] RGB -> float [1, 3, height, width] in [0, 1], resized exactly as the training data is
    (``bwdp_core.data.augment.resize_image``: area averaging when shrinking, bilinear when enlarging)."""
    from bwdp_core.data.augment import resize_image
    from bwdp_core.data.snippets import image_to_tensor as to_chw

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


@torch.inference_mode()
def predict_relative_pose(pose_net: torch.nn.Module, tgt: np.ndarray, ref: np.ndarray, height: int, width: int,
                          device: torch.device | str = "cpu") -> np.ndarray:
    """PoseNet(tgt, ref) as a float64 4x4: T_{t->r} = T_ref_tgt (maps points of tgt's camera into ref's camera)."""
    from bwdp_core.geometry import pose_vec_to_mat

    vec = pose_net(image_to_tensor(tgt, height, width, device), image_to_tensor(ref, height, width, device))
    return pose_vec_to_mat(vec.float())[0].double().cpu().numpy()
