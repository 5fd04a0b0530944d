"""Eq. 6 — depth-structure consistency L_dsc (the baseline's geometry-consistency loss, both directions)."""

from __future__ import annotations

import torch

from bwdp_core.losses.masking import masked_mean_per_direction


def depth_structure_consistency(depth_diff: torch.Tensor, valid_mask: torch.Tensor,
                                num_directions: int = 1) -> torch.Tensor:
    """Eq. 6: L_dsc^bi = Σ_dir (1/N_dir) Σ_{valid p} D_diff^dir(p).

    depth_diff: [P,1,H,W] (eq. 2's D_diff) for a pair batch whose rows are ``num_directions`` contiguous direction
    blocks (ref→tgt, then tgt→ref); valid_mask: [P,1,H,W] float -> scalar.  A direction without valid pixels
    contributes a graph-keeping 0.
    """
    return masked_mean_per_direction(depth_diff, valid_mask, num_directions).sum()
