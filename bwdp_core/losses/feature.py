"""Eq. 5 — feature-perception loss on DispNet-encoder features, warped at their own resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bwdp_core.errors import ConfigError
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


def depth_on_feature_grid(depth: torch.Tensor, feature_size: tuple) -> torch.Tensor:
    """Eq. 5's warping depth at the feature map's own pixels: D(s·i, s·j) for feature pixel (i, j), s = H / h.

    depth: [P,1,H,W] at the loss resolution; feature_size (h, w) with H = s·h, W = s·w -> [P,1,h,w].
    The ResNet encoder's maps are strided convolutions whose output i is centred on input pixel s·i (conv1: 7x7,
    stride 2, padding 3 -> centre 2i; the max-pool and later stride-2 3x3/1x1 convs keep that alignment), and the
    intrinsics are scaled by 1/s, so feature pixel i IS full-resolution pixel s·i.  Bilinear resizing with
    align_corners=False would read the depth at s·i + (s − 1)/2 (2i + 0.5 for conv1) — half a pixel off.
    An average over the s×s block (area resizing) would be off the same way.  Without a divisible size, the
    depth is sampled bilinearly at s·i with align_corners-consistent coordinates.
    """
    height, width = depth.shape[-2:]
    h, w = int(feature_size[0]), int(feature_size[1])
    if height % h == 0 and width % w == 0 and height // h == width // w:
        stride = height // h
        return depth[..., ::stride, ::stride]
    if h > height or w > width:
        raise ConfigError(f"feature map {h}x{w} is larger than the depth map {height}x{width}")
    sy, sx = height / h, width / w
    ys = torch.arange(h, device=depth.device, dtype=depth.dtype) * sy
    xs = torch.arange(w, device=depth.device, dtype=depth.dtype) * sx
    grid = torch.stack(torch.meshgrid(2 * ys / max(height - 1, 1) - 1, 2 * xs / max(width - 1, 1) - 1,
                                      indexing="ij")[::-1], dim=-1)
    return F.grid_sample(depth, grid.unsqueeze(0).expand(depth.shape[0], -1, -1, -1), mode="bilinear",
                         padding_mode="border", align_corners=True)
