"""Eq. 6 — depth-structure consistency L_dsc (the baseline's geometry-consistency loss, both directions)."""

from __future__ import annotations

import torch

from bwdp_core.losses.masking import masked_mean


def depth_structure_consistency(depth_diff: torch.Tensor, valid_mask: torch.Tensor) -> torch.Tensor:
    """Eq. 6, one direction: mean of D_diff over the N valid pixels.

    depth_diff: [B,1,H,W] (eq. 2's D_diff); valid_mask: [B,1,H,W] float -> scalar.
    L_dsc^bi sums this over the two directions (total.py).  Zero (graph kept) when no pixel is valid.
    """
    return masked_mean(depth_diff, valid_mask)
