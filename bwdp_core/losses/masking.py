"""Masked averaging shared by the loss terms (finite and graph-keeping even when nothing is valid)."""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ mask·values / Σ mask over all elements; 0 (still connected to ``values``' graph) when Σ mask = 0.

    values: [B,C,H,W]; mask: broadcastable float in [0,1] -> scalar.
    """
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def masked_mean_per_direction(values: torch.Tensor, mask: torch.Tensor, num_directions: int) -> torch.Tensor:
    """Masked mean of each direction block of a pair batch.

    values, mask: [P,1,H,W], P = num_directions · rows (rows of one direction contiguous) -> [num_directions].
    Per-row sums first, so the backward pass never materialises full-size slices; a direction without valid
    pixels gives a graph-keeping 0.
    """
    weighted = (values * mask).flatten(1).sum(1).view(num_directions, -1).sum(1)
    count = mask.expand_as(values).flatten(1).sum(1).view(num_directions, -1).sum(1)
    return weighted / count.clamp(min=1.0)


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
