"""Eq. 3–4 — occlusion mask from the forward–backward consistency of camera flow (UnFlow's check).

The check is only meaningful when the two flows come from a CONSISTENT pose pair: with T_{r→t} from a second,
independent PoseNet pass, a 0.1–0.2° disagreement between the passes (or any translation disagreement) flags pixels
that are not occluded at all.  :func:`pair_occlusion` therefore builds the reverse flow from the inverse of the very
pose that warps the pair, whatever T_{r→t} the photometric loss uses.  Too large a mask is not switched off all at
once (the old all-or-nothing guard); :func:`limit_occlusion` keeps only the most inconsistent pixels (graded).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from bwdp_core.geometry import camera_flow, invert_pose, pixel_grid, sample_at_pixels


@torch.no_grad()
def flow_consistency_ratio(flow: torch.Tensor, reverse_flow: torch.Tensor, alpha1: float = 0.01,
                           alpha2: float = 0.5) -> torch.Tensor:
    """Eq. 3–4 as a ratio: r(p) = ‖u + û‖² / (α1 (‖u‖² + ‖û‖²) + α2); the pixel is occluded where r ≥ 1.

    flow:          u^{ref→tgt}, camera flow at the target's pixels (from tgt depth + T_{t→r}) .... [B,2,H,W]
    reverse_flow:  u^{tgt→ref}, camera flow at the reference's pixels (ref depth + T_{r→t}) ...... [B,2,H,W]
    û = reverse_flow sampled at p + u(p).  Flows in pixels of this resolution.  -> ratio [B,1,H,W] (>= 0).
    """
    height, width = flow.shape[-2:]
    grid = pixel_grid(height, width, device=flow.device, dtype=flow.dtype)[:2].unsqueeze(0)
    reverse_at_target = sample_at_pixels(reverse_flow, grid + flow, align_corners=True, padding_mode="border")
    mismatch = (flow + reverse_at_target).pow(2).sum(1, keepdim=True)
    bound = alpha1 * (flow.pow(2).sum(1, keepdim=True) + reverse_at_target.pow(2).sum(1, keepdim=True)) + alpha2
    return mismatch / bound


@torch.no_grad()
def occlusion_mask(flow: torch.Tensor, reverse_flow: torch.Tensor, alpha1: float = 0.01,
                   alpha2: float = 0.5) -> torch.Tensor:
    """Eq. 3–4: M_occ^{ref→tgt}(p) = Γ(‖u + û‖², α1 (‖u‖² + ‖û‖²) + α2), Γ(a, b) = 1 where a ≥ b (occluded).

    flow, reverse_flow: [B,2,H,W] as in :func:`flow_consistency_ratio` -> float mask [B,1,H,W], 1 = occluded.
    Computed without gradients (the mask selects pixels; it is not differentiated through).
    """
    return (flow_consistency_ratio(flow, reverse_flow, alpha1, alpha2) >= 1).to(flow.dtype)


@torch.no_grad()
def consistent_reverse_flow(source_depth: torch.Tensor, T_target_to_source: torch.Tensor,
                            K: torch.Tensor) -> torch.Tensor:
    """The reverse camera flow of a pair from the INVERSE of the pose that warps it (a consistent pose pair).

    source_depth: [B,1,H,W] depth of the source (reference) frame; T_target_to_source: [B,4,4] (T_{t→r} for the
    ref→tgt direction); K: [B,3,3] -> u^{tgt→ref} [B,2,H,W] at the source's pixels, from T_{r→t} = T_{t→r}⁻¹.
    """
    return camera_flow(source_depth, invert_pose(T_target_to_source), K)


class OcclusionResult(NamedTuple):
    """occluded: mask after the guard [B,1,H,W] (1 = occluded); flagged_fraction: per-row fraction of in-view
    pixels the check flags BEFORE the guard [B]; guard_fired: per-row 1.0 where the guard changed the mask [B]."""

    occluded: torch.Tensor
    flagged_fraction: torch.Tensor
    guard_fired: torch.Tensor


@torch.no_grad()
def limit_occlusion(ratio: torch.Tensor, valid_mask: torch.Tensor, max_fraction: float,
                    mode: str = "cap") -> OcclusionResult:
    """The guard on an implausibly large occlusion mask, per row of the pair batch.

    ratio: [B,1,H,W] from :func:`flow_consistency_ratio`; valid_mask: [B,1,H,W] float (in view).
    mode "cap" (graded): a row whose mask flags more than ``max_fraction`` of its in-view pixels keeps only the
      ``max_fraction`` most inconsistent ones (largest ratio) flagged — the mask shrinks continuously instead of
      disappearing, so a row never loses more than that fraction and never flips between all and nothing;
    mode "drop" (the former all-or-nothing guard): such a row gets no mask at all;
    mode "off": no guard.
    """
    occluded = (ratio >= 1).to(ratio.dtype) * valid_mask
    counts = valid_mask.flatten(1).sum(1)
    flagged = occluded.flatten(1).sum(1) / counts.clamp(min=1.0)
    fired = (flagged > max_fraction) if max_fraction < 1.0 and mode != "off" else torch.zeros_like(flagged).bool()
    if fired.any():
        if mode == "drop":
            occluded = occluded * (~fired).to(ratio.dtype).view(-1, 1, 1, 1)
        elif mode == "cap":
            scores = torch.where(valid_mask > 0, ratio, torch.full_like(ratio, -1.0)).flatten(1)
            keep = (max_fraction * counts).floor().long().clamp(min=1, max=scores.shape[1])
            ordered = scores.sort(dim=1, descending=True).values
            threshold = ordered.gather(1, (keep - 1).unsqueeze(1)).view(-1, 1, 1, 1)
            capped = occluded * (ratio >= threshold).to(ratio.dtype)
            occluded = torch.where(fired.view(-1, 1, 1, 1), capped, occluded)
        else:
            raise ValueError(f"unknown occlusion guard mode {mode!r}")
    return OcclusionResult(occluded, flagged, fired.to(ratio.dtype))


@torch.no_grad()
def drop_implausible_occlusion(occluded: torch.Tensor, valid_mask: torch.Tensor, max_fraction: float) -> torch.Tensor:
    """The former all-or-nothing guard: clear the mask of every row that flags more than ``max_fraction``.

    occluded, valid_mask: [B,1,H,W] float -> [B,1,H,W].  Kept for the ablation (``occlusion_guard: drop``).
    """
    if max_fraction >= 1.0:
        return occluded
    flagged = (occluded * valid_mask).flatten(1).sum(1) / valid_mask.flatten(1).sum(1).clamp(min=1.0)
    return occluded * (flagged <= max_fraction).to(occluded.dtype).view(-1, 1, 1, 1)


@torch.no_grad()
def pair_occlusion(forward_flow: torch.Tensor, reverse_flow: torch.Tensor, valid_mask: torch.Tensor,
                   alpha1: float, alpha2: float, max_fraction: float, guard: str = "cap") -> OcclusionResult:
    """Eq. 3–4 plus the guard for a pair batch: forward_flow [P,2,H,W] (target pixels), reverse_flow [P,2,H,W]
    (source pixels, from a consistent pose pair — see :func:`consistent_reverse_flow`), valid_mask [P,1,H,W]."""
    ratio = flow_consistency_ratio(forward_flow.detach(), reverse_flow.detach(), alpha1, alpha2)
    return limit_occlusion(ratio, valid_mask, max_fraction, guard)
