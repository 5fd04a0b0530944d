"""Edge-aware smoothness of the (mean-normalised) disparity."""

from __future__ import annotations

import torch


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """L_s = mean |∂x d| e^{−|∂x I|} + mean |∂y d| e^{−|∂y I|}, d = disp / mean(disp) per sample.

    disp: [B,1,H,W] (>0); image: [B,3,H,W] at the same resolution -> scalar.  Mean-normalising removes the
    incentive to shrink the disparity scale (monocular depth is known up to scale).
    """
    d = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_d_x = (d[..., :, 1:] - d[..., :, :-1]).abs()
    grad_d_y = (d[..., 1:, :] - d[..., :-1, :]).abs()
    grad_i_x = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    grad_i_y = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (grad_d_x * torch.exp(-grad_i_x)).mean() + (grad_d_y * torch.exp(-grad_i_y)).mean()
