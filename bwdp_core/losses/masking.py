"""Masked averaging shared by the loss terms (finite and graph-keeping even when nothing is valid)."""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ mask·values / Σ mask over all elements; 0 (still connected to ``values``' graph) when Σ mask = 0.

    values: [B,C,H,W]; mask: broadcastable float in [0,1] -> scalar.
    """
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def guard_min_valid(mask: torch.Tensor, min_fraction: float) -> torch.Tensor:
    """Zero the mask of every sample whose fraction of valid pixels is below ``min_fraction``.

    mask: [B,1,H,W] float -> [B,1,H,W].  Such a sample then contributes nothing to a term (SC-Release skips a
    term when too few pixels are valid); with every sample dropped :func:`masked_mean` returns a graph-keeping 0.
    """
    if min_fraction <= 0:
        return mask
    fraction = mask.flatten(1).mean(1)
    keep = (fraction >= min_fraction).to(mask.dtype).view(-1, 1, 1, 1)
    return mask * keep
