"""Eq. 7 — the total loss, L = λ_p L_p^biw + λ_s L_s^bi + λ_dsc L_dsc^bi + λ_feat L_feat^bi.

All warps of a snippet run as ONE batch of "pairs": for N references the pair batch is

    forward  (ref→tgt): target = tgt,   source = ref_j, pose T_{t→r_j}     rows [0 : N·B]
    backward (tgt→ref): target = ref_j, source = tgt,   pose T_{r_j→t}     rows [N·B : 2N·B]

so row i and row (i + N·B) mod 2N·B are the two directions of the same frame pair (used by the occlusion check).
Each direction's term is a mean over its valid pixels (pooled over the N references); the bidirectional terms
sum the two directions (eq. 1, 5, 6).  With ``num_scales`` > 1 the warping terms are averaged over the decoder
scales, each disparity upsampled to full resolution first; smoothness runs at each scale's own resolution
(weight 1/2^s).  L_feat uses scale 0 depth, resized to the feature map, with K scaled.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F

from bwdp_core.errors import ConfigError
from bwdp_core.geometry import depth_std_over_mean, inverse_warp, scale_intrinsics
from bwdp_core.losses.adaptive import adaptive_weights, depth_difference
from bwdp_core.losses.config import LossConfig
from bwdp_core.losses.consistency import depth_structure_consistency
from bwdp_core.losses.feature import (
    depth_on_feature_grid,
    feature_perception_error,
    feature_perception_loss,
    normalise_features,
)
from bwdp_core.losses.masking import guard_min_valid
from bwdp_core.losses.occlusion import consistent_reverse_flow, pair_occlusion
from bwdp_core.losses.photometric import photometric_error, weighted_photometric_loss
from bwdp_core.losses.smoothness import edge_aware_smoothness


def _pairs(frames: torch.Tensor, batch: int, num_refs: int, both: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(targets, sources) of the pair batch from frame-major stacked frames [(1+N)·B, ...]."""
    tgt = frames[:batch].repeat((num_refs,) + (1,) * (frames.dim() - 1))
    refs = frames[batch:]
    if not both:
        return tgt, refs
    return torch.cat([tgt, refs], 0), torch.cat([refs, tgt], 0)


def _used(tensor: torch.Tensor, rows: int, bidirectional: bool) -> torch.Tensor:
    """The pair rows a term uses: all of them, or only ref→tgt when the terms are one-directional."""
    return tensor if bidirectional or tensor.shape[0] == rows else tensor[:rows]


def total_loss(cfg: LossConfig, tgt_img: torch.Tensor, ref_imgs: List[torch.Tensor], K: torch.Tensor,
               pred) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """Eq. 7.  tgt_img [B,3,H,W], ref_imgs list of N [B,3,H,W] (in [0,1]), K [B,3,3] at H×W, pred: SnippetPrediction.

    Returns (total scalar, terms, visuals).  terms: "photometric", "smoothness" and — when switched on —
    "depth_consistency", "feature" (unweighted, with graph), plus detached diagnostics "valid_fraction",
    "occluded_fraction".  visuals (detached, first reference, forward direction, [B,*,H,W]): "depth", "warped",
    "valid", "occlusion", "weights", "photometric_error".
    """
    batch, _, height, width = tgt_img.shape
    num_refs = len(ref_imgs)
    rows = num_refs * batch
    if cfg.num_scales > len(pred.disps):
        raise ConfigError(f"loss.num_scales = {cfg.num_scales} but the network predicts {len(pred.disps)} scales")
    # The reverse direction is needed for the bidirectional terms and for the flow check of eq. 3-4.
    both = cfg.bidirectional or cfg.occlusion
    frames = torch.cat([tgt_img, *ref_imgs], 0)
    targets, sources = _pairs(frames, batch, num_refs, both)
    poses = torch.cat([pred.poses_tgt_to_ref, pred.poses_ref_to_tgt], 0) if both else pred.poses_tgt_to_ref
    K_pairs = K.repeat(poses.shape[0] // batch, 1, 1)
    need_source_depth = cfg.depth_consistency or cfg.adaptive_weights
    directions = 2 if cfg.bidirectional else 1

    photo_terms, dsc_terms, smooth_terms = [], [], []
    visuals: Dict[str, torch.Tensor] = {}
    geometric_mask0 = occluded0 = target_depth0 = occlusion_stats = None
    for scale in range(cfg.num_scales):
        disp = pred.disps[scale]
        if disp.shape[-2:] != (height, width):
            disp_full = F.interpolate(disp, size=(height, width), mode="bilinear", align_corners=False)
        else:
            disp_full = disp
        depth = 1.0 / disp_full
        if cfg.scale_invariant_warp:
            depth = scale_normalised_depth(depth, batch)
        target_depth, source_depth = _pairs(depth, batch, num_refs, both)
        warp = inverse_warp(sources, target_depth, source_depth if need_source_depth else None, poses, K_pairs)
        error = photometric_error(targets, warp.warped, cfg.ssim_weight)

        geometric_mask = warp.valid_mask
        occluded = torch.zeros_like(geometric_mask)
        if cfg.occlusion:
            occ = occlusion_for_pairs(cfg, warp.flow, source_depth, poses, K_pairs, geometric_mask, rows)
            occluded = occ.occluded
            geometric_mask = geometric_mask * (1 - occluded)
            if scale == 0:
                occlusion_stats = occ
        in_view_mask = guard_min_valid(warp.valid_mask, cfg.min_valid_fraction)
        geometric_mask = guard_min_valid(geometric_mask, cfg.min_valid_fraction)

        photo_mask = geometric_mask
        if cfg.auto_mask:
            with torch.no_grad():
                identity_error = photometric_error(targets, sources, cfg.ssim_weight)
                photo_mask = photo_mask * (error.detach() < identity_error).to(error.dtype)

        weights = torch.ones_like(error)
        if need_source_depth:
            depth_diff = depth_difference(warp.computed_depth, warp.projected_depth)
            if cfg.adaptive_weights:
                weights = adaptive_weights(depth_diff)
            if cfg.depth_consistency:
                dsc_mask = geometric_mask if cfg.dsc_occlusion_mask else in_view_mask
                dsc_terms.append(depth_structure_consistency(
                    _used(depth_diff, rows, cfg.bidirectional), _used(dsc_mask, rows, cfg.bidirectional),
                    directions))
        photo_terms.append(weighted_photometric_loss(
            _used(error, rows, cfg.bidirectional), _used(weights, rows, cfg.bidirectional),
            _used(photo_mask, rows, cfg.bidirectional), directions))

        # edge-aware smoothness on every frame (tgt and refs), at this scale's own resolution
        images = frames if disp.shape[-2:] == (height, width) else F.interpolate(
            frames, size=disp.shape[-2:], mode="area")
        smooth = edge_aware_smoothness(disp[:batch], images[:batch], cfg.smoothness_order) + \
            edge_aware_smoothness(disp[batch:], images[batch:], cfg.smoothness_order)
        smooth_terms.append(smooth / (2 ** scale))

        if scale == 0:
            geometric_mask0, occluded0, target_depth0 = geometric_mask, occluded, target_depth
            visuals = {
                "depth": target_depth[:batch].detach(),
                "warped": warp.warped[:batch].detach(),
                "valid": warp.valid_mask[:batch].detach(),
                "occlusion": occluded[:batch].detach(),
                "weights": weights[:batch].detach(),
                "photometric_error": error[:batch].detach(),
            }

    def average(values):
        return torch.stack(values).mean()

    terms: Dict[str, torch.Tensor] = {"photometric": average(photo_terms), "smoothness": average(smooth_terms)}
    total = cfg.w_photo * terms["photometric"] + cfg.w_smooth * terms["smoothness"]
    if cfg.depth_consistency:
        terms["depth_consistency"] = average(dsc_terms)
        total = total + cfg.w_dsc * terms["depth_consistency"]
    if cfg.feature_perception:
        terms["feature"] = feature_term(cfg, pred, target_depth0, poses, K, occluded0, rows)
        total = total + cfg.w_feat * terms["feature"]

    # Decoder scales the loss does not use still join the graph with weight 0, so that every parameter gets a
    # (zero) gradient: DistributedDataParallel without find_unused_parameters fails otherwise.
    unused = [d.mean() for d in pred.disps[cfg.num_scales:]]
    if unused:
        total = total + 0.0 * torch.stack(unused).sum()

    with torch.no_grad():
        rows_used = rows * (2 if cfg.bidirectional else 1)
        terms["valid_fraction"] = geometric_mask0[:rows_used].mean()
        terms["occluded_fraction"] = occluded0[:rows_used].mean()
        if occlusion_stats is not None:
            # what the flow check flags before the guard, and how often the guard changes a pair's mask
            terms["occluded_fraction_pre_guard"] = occlusion_stats.flagged_fraction[:rows_used].mean()
            terms["occlusion_guard_rate"] = occlusion_stats.guard_fired[:rows_used].mean()
        if both:
            terms["pose_pair_disagreement_deg"] = rotation_disagreement_deg(
                pred.poses_tgt_to_ref, pred.poses_ref_to_tgt).mean()
        terms["depth_std_over_mean"] = depth_std_over_mean(target_depth0[:batch]).mean()
    return total, terms, visuals


def scale_normalised_depth(depth: torch.Tensor, batch: int) -> torch.Tensor:
    """Depths of a snippet divided by the mean depth of its target frame (``LossConfig.scale_invariant_warp``).

    depth [(1+N)·B,1,H,W] frame-major (rows [0:B] = targets) -> same shape; the target frames have mean 1.  The mean
    keeps its gradient, so scaling all depths of a snippet by c leaves the result, and every loss term, unchanged:
    the common depth scale gets exactly zero gradient.
    """
    scale = depth[:batch].mean(dim=(1, 2, 3), keepdim=True)
    return depth / scale.repeat(depth.shape[0] // batch, 1, 1, 1)


def occlusion_for_pairs(cfg: LossConfig, flow: torch.Tensor, source_depth: torch.Tensor, poses: torch.Tensor,
                        K_pairs: torch.Tensor, valid_mask: torch.Tensor, rows: int):
    """Eq. 3–4 on the pair batch (see occlusion.py): row i's forward flow ``flow[i]`` [P,2,H,W] (target depth +
    ``poses[i]``) against a reverse flow from the source depth ``source_depth`` [P,1,H,W] and, with
    ``occlusion_pose_pair: consistent``, the exact inverse of ``poses[i]`` [P,4,4]; with ``loss``, the flow of the
    other direction's row (the loss's own T_r->t, possibly a second PoseNet pass).  -> OcclusionResult.
    """
    if cfg.occlusion_pose_pair == "consistent":
        reverse = consistent_reverse_flow(source_depth.detach(), poses.detach(), K_pairs)
    else:
        reverse = flow.detach().roll(rows, dims=0)
    return pair_occlusion(flow, reverse, valid_mask, cfg.alpha1, cfg.alpha2, cfg.max_occluded_fraction,
                          cfg.occlusion_guard)


@torch.no_grad()
def rotation_disagreement_deg(T_tgt_to_ref: torch.Tensor, T_ref_to_tgt: torch.Tensor) -> torch.Tensor:
    """Rotation angle (degrees) of T_{t→r} · T_{r→t} per pair: 0 for an exactly consistent pair.  [P,4,4] x2 -> [P]."""
    product = T_tgt_to_ref[:, :3, :3] @ T_ref_to_tgt[:, :3, :3]
    cos = ((product.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def feature_term(cfg: LossConfig, pred, target_depth: torch.Tensor, poses: torch.Tensor, K: torch.Tensor,
                 occluded: torch.Tensor, rows: int) -> torch.Tensor:
    """Eq. 5 on the pair batch: L_feat^bi = Σ_dir mean over valid, non-occluded pixels of ‖f_target − f̂_source‖.

    Features of encoder level l (pred.features[l], [(1+N)·B,C,h,w]) are normalised and detached
    (see feature.normalise_features); the source features are warped at their own resolution with the target
    depth (scale 0, [P,1,H,W] for the P pairs) read on the feature map's stride grid (feature.depth_on_feature_grid)
    and K scaled by (w/W, h/H).  The occlusion mask
    ([P,1,H,W], 1 = occluded) is resized to h×w (a feature pixel is occluded when most of its pixels are).
    Averaged over cfg.feature_levels.
    """
    batch = pred.batch_size
    num_refs = pred.num_refs
    height, width = target_depth.shape[-2:]
    losses = []
    for level in cfg.feature_levels:
        features = normalise_features(pred.features[level])
        h, w = features.shape[-2:]
        target_f, source_f = _pairs(features, batch, num_refs, poses.shape[0] > rows)
        depth_small = depth_on_feature_grid(target_depth, (h, w))
        K_small = scale_intrinsics(K, w / width, h / height).repeat(poses.shape[0] // batch, 1, 1)
        warp = inverse_warp(source_f, depth_small, None, poses, K_small)
        mask = warp.valid_mask
        if cfg.occlusion:
            mask = mask * (F.interpolate(occluded, size=(h, w), mode="area") < 0.5).to(mask.dtype)
        mask = guard_min_valid(mask, cfg.min_valid_fraction)
        error = feature_perception_error(target_f, warp.warped)
        losses.append(feature_perception_loss(_used(error, rows, cfg.bidirectional),
                                              _used(mask, rows, cfg.bidirectional), 2 if cfg.bidirectional else 1))
    return torch.stack(losses).mean()
