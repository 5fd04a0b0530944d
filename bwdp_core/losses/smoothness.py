"""Edge-aware smoothness of the (mean-normalised) disparity, first order (the paper / SC-SfMLearner) or second order."""

from __future__ import annotations

import torch


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor, order: int = 1) -> torch.Tensor:
    """Edge-aware smoothness (the smoothness term of eq. 7) of d = disp / mean(disp) per sample.

    order 1: L_s = mean |∂x d| e^{−|∂x I|} + mean |∂y d| e^{−|∂y I|}  (SC-SfMLearner's term).
    order 2: L_s = mean |∂xx d| e^{−max|∂x I|} + mean |∂yy d| e^{−max|∂y I|}, the image gradient taken as the larger of
    the two first differences that ∂xx d spans.  The disparity of a plane is linear in the pixel coordinates
    (1/Z = a·u + b·v + c), so order 2 leaves a road or a wall unpenalised, where order 1 pulls its disparity ramp flat
    (a compressed depth range: the bottom of the road too far, the horizon too near).

    disp: [B,1,H,W] (>0); image: [B,3,H,W] at the same resolution -> scalar.  Mean-normalising removes the
    incentive to shrink the disparity scale (monocular depth is known up to scale).  ``order`` is checked by
    LossConfig.validate (loss.smoothness_order).
    """
    d = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_i_x = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    grad_i_y = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    grad_d_x = d[..., :, 1:] - d[..., :, :-1]
    grad_d_y = d[..., 1:, :] - d[..., :-1, :]
    if order == 1:
        return (grad_d_x.abs() * torch.exp(-grad_i_x)).mean() + (grad_d_y.abs() * torch.exp(-grad_i_y)).mean()
    d_xx = (grad_d_x[..., :, 1:] - grad_d_x[..., :, :-1]).abs()
    d_yy = (grad_d_y[..., 1:, :] - grad_d_y[..., :-1, :]).abs()
    edge_x = torch.maximum(grad_i_x[..., :, 1:], grad_i_x[..., :, :-1])
    edge_y = torch.maximum(grad_i_y[..., 1:, :], grad_i_y[..., :-1, :])
    return (d_xx * torch.exp(-edge_x)).mean() + (d_yy * torch.exp(-edge_y)).mean()
