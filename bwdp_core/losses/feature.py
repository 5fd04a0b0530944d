"""Eq. 5 — feature-perception loss on DispNet-encoder features, warped at their own resolution."""

from __future__ import annotations

import torch

from bwdp_core.losses.masking import masked_mean_per_direction


def normalise_features(features: torch.Tensor) -> torch.Tensor:
    """Detach and scale every pixel's feature vector to unit root-mean-square: f / sqrt(mean_c f² + ε).

    features: [B,C,h,w] -> [B,C,h,w].
    Why both (feature collapse): if the loss could reach the features, the encoder would lower it by shrinking or
    flattening them (a constant feature map matches itself under any warp) instead of improving depth and pose.
    Detaching makes eq. 5 a loss on geometry only — gradients flow through the sampling positions, i.e. into depth
    and pose — while the encoder keeps learning its features from the photometric terms.  The per-pixel RMS
    normalisation makes the term's scale independent of the encoder's activation magnitude (which drifts during
    training), so one λ_feat works throughout; with detached inputs it cannot be gamed.
    """
    features = features.detach()
    return features / torch.sqrt(features.pow(2).mean(1, keepdim=True) + 1e-6)


def feature_perception_error(target_features: torch.Tensor, warped_features: torch.Tensor) -> torch.Tensor:
    """Eq. 5 per pixel: ‖f_tgt − f̂_ref‖ as the mean absolute difference over channels.

    target_features, warped_features: [B,C,h,w] (normalised, see :func:`normalise_features`) -> [B,1,h,w].
    L_feat^bi (eq. 5) averages this over the valid, non-occluded pixels of each direction and sums the two
    directions (total.py).
    """
    return (target_features - warped_features).abs().mean(1, keepdim=True)


def feature_perception_loss(error: torch.Tensor, mask: torch.Tensor, num_directions: int = 1) -> torch.Tensor:
    """Eq. 5: L_feat^bi = Σ_dir mean over valid, non-occluded pixels of ‖f_target − f̂_source‖.

    error: [P,1,h,w] from :func:`feature_perception_error`; mask: [P,1,h,w] float; rows are ``num_directions``
    contiguous direction blocks -> scalar.
    """
    return masked_mean_per_direction(error, mask, num_directions).sum()
