"""Eq. 1 — photometric error between a frame and its synthesised view (L1 + SSIM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bwdp_core.losses.masking import masked_mean_per_direction

SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2


def _local_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over 3x3 windows with reflection padding (same size out).  [B,C,H,W] -> [B,C,H,W]."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel_size=3, stride=1)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity on 3x3 windows (reflection padding, C1 = 0.01², C2 = 0.03²).

    x, y: [B,C,H,W] in [0,1] -> SSIM map [B,C,H,W] (1 = identical).
    The five local statistics are pooled in a single call.
    """
    channels = x.shape[1]
    stats = _local_mean(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    mu_x, mu_y, xx, yy, xy = stats.split(channels, dim=1)
    sigma_x = xx - mu_x * mu_x
    sigma_y = yy - mu_y * mu_y
    sigma_xy = xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return numerator / denominator


def photometric_error(image: torch.Tensor, synthesised: torch.Tensor, ssim_weight: float = 0.85) -> torch.Tensor:
    """Eq. 1 per pixel: ρ = 0.15 · clamp(|I − Î|, 0, 1) + 0.85 · clamp((1 − SSIM(I, Î)) / 2, 0, 1).

    image, synthesised: [B,3,H,W] in [0,1] -> ρ [B,1,H,W] (averaged over colour channels).
    L_p^bi (eq. 1) is this error in both directions, ρ(I_tgt, Î_ref) + ρ(I_ref, Î_tgt); see total.py.
    """
    l1 = (image - synthesised).abs().clamp(0, 1)
    if ssim_weight == 0:
        return l1.mean(1, keepdim=True)
    dssim = ((1 - ssim(image, synthesised)) / 2).clamp(0, 1)
    return ((1 - ssim_weight) * l1 + ssim_weight * dssim).mean(1, keepdim=True)


def weighted_photometric_loss(error: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor,
                              num_directions: int = 1) -> torch.Tensor:
    """Eq. 2 (with eq. 1): L_p^biw = Σ_dir mean over valid pixels of (1 − M_occ^dir) · W_aw^dir · ρ^dir.

    error ρ, weights W_aw (ones when switched off): [P,1,H,W]; mask: [P,1,H,W] float = in view · (1 − M_occ)
    (· auto-mask); rows are ``num_directions`` contiguous direction blocks -> scalar.
    """
    return masked_mean_per_direction(error * weights, mask, num_directions).sum()
