"""Eq. 3–4 — occlusion mask from the forward–backward consistency of camera flow (UnFlow's check)."""

from __future__ import annotations

import torch

from bwdp_core.geometry import pixel_grid, sample_at_pixels


@torch.no_grad()
def occlusion_mask(flow: torch.Tensor, reverse_flow: torch.Tensor, alpha1: float = 0.01,
                   alpha2: float = 0.5) -> torch.Tensor:
    """Eq. 3–4: M_occ^{ref→tgt}(p) = Γ(‖u + û‖², α1 (‖u‖² + ‖û‖²) + α2), Γ(a, b) = 1 where a ≥ b (occluded).

    flow:          u^{ref→tgt}, camera flow at the target's pixels (from tgt depth + T_{t→r}) .... [B,2,H,W]
    reverse_flow:  u^{tgt→ref}, camera flow at the reference's pixels (ref depth + T_{r→t}) ...... [B,2,H,W]
    û = reverse_flow sampled at p + u(p).  Flows in pixels of this resolution.  -> float mask [B,1,H,W], 1 = occluded.
    Computed without gradients (the mask selects pixels; it is not differentiated through).
    """
    height, width = flow.shape[-2:]
    grid = pixel_grid(height, width, device=flow.device, dtype=flow.dtype)[:2].unsqueeze(0)
    reverse_at_target = sample_at_pixels(reverse_flow, grid + flow, align_corners=True, padding_mode="border")
    mismatch = (flow + reverse_at_target).pow(2).sum(1, keepdim=True)
    bound = alpha1 * (flow.pow(2).sum(1, keepdim=True) + reverse_at_target.pow(2).sum(1, keepdim=True)) + alpha2
    return (mismatch >= bound).to(flow.dtype)


@torch.no_grad()
def drop_implausible_occlusion(occluded: torch.Tensor, valid_mask: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """Clear the occlusion mask of every sample that flags more than ``max_fraction`` of its in-view pixels.

    occluded, valid_mask: [B,1,H,W] float -> [B,1,H,W].  Real occlusions cover a few percent of a frame; a mask
    covering most of it means the two flow directions disagree everywhere (untrained depth/poses), and applying it
    would leave no pixel — and no photometric gradient — to learn from.
    """
    if max_fraction >= 1.0:
        return occluded
    flagged = (occluded * valid_mask).flatten(1).sum(1) / valid_mask.flatten(1).sum(1).clamp(min=1.0)
    return occluded * (flagged <= max_fraction).to(occluded.dtype).view(-1, 1, 1, 1)
