"""Eq. 2 — depth difference D_diff and the adaptive weights W_aw = 1 − D_diff."""

from __future__ import annotations

import torch


def depth_difference(computed_depth: torch.Tensor, projected_depth: torch.Tensor) -> torch.Tensor:
    """Eq. 2 (and 6): D_diff = |D_comp − D_proj| / (D_comp + D_proj), clamped to [0, 1].

    computed_depth (D_comp, the target point's depth seen from the other camera, >= 1e-3),
    projected_depth (D_proj, the other frame's predicted depth sampled at p'): [B,1,H,W] -> [B,1,H,W].
    """
    denominator = (computed_depth + projected_depth).clamp(min=1e-6)
    return ((computed_depth - projected_depth).abs() / denominator).clamp(0, 1)


def adaptive_weights(depth_diff: torch.Tensor) -> torch.Tensor:
    """Eq. 2: W_aw = 1 − D_diff: pixels whose two depth estimates agree count fully, inconsistent ones less.

    depth_diff: [B,1,H,W] in [0,1] -> [B,1,H,W].  Not detached (as the baseline's self-discovered mask); the
    depth-structure term (eq. 6) keeps the network from inflating D_diff to mute the photometric error.
    """
    return 1 - depth_diff
