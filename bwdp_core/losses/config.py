"""Loss configuration: one dataclass of switches + weights, and the Table II ablation presets.

Presets are cumulative, as the rows of the paper's Table II:

    baseline       one-direction photometric (ref->tgt) + edge-aware smoothness
    bi             + the reverse direction (tgt->ref): bidirectional photometric, eq. 1
    bi_occ         + forward-backward camera-flow occlusion mask M_occ, eq. 3-4
    bi_occ_dsc     + bidirectional depth-structure consistency L_dsc, eq. 6
    bi_occ_dsc_aw  + adaptive weights W_aw on the photometric error, eq. 2
    full           + bidirectional feature-perception loss L_feat, eq. 5  (= the paper's method)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bwdp_core.errors import ConfigError


@dataclass
class LossConfig:
    """Switches and weights of the total loss (eq. 7).  Defaults = the full method."""

    # which terms (Table II)
    bidirectional: bool = True         # eq. 1: add tgt->ref to ref->tgt (and to L_dsc / L_feat)
    occlusion: bool = True             # eq. 3-4: drop pixels flagged by the forward-backward flow check
    depth_consistency: bool = True     # eq. 6: L_dsc
    adaptive_weights: bool = True      # eq. 2: weight the photometric error by W_aw = 1 - D_diff
    feature_perception: bool = True    # eq. 5: L_feat
    # how
    # T_{r->t} = invert_pose(T_{t->r}) instead of a second PoseNet pass.  Off by default: in bench/pose_direction.py
    # (full method, synth 32x96, 4 seeds x 150 Adam steps) the inverse gave a worse median-scaled AbsRel in every seed
    # (mean: training frames 0.354 vs 0.311, held-out 0.485 vs 0.436), though a lower scale-aligned translation error
    # (held-out 0.31 vs 0.58); it is cheaper (no second PoseNet pass, ~19 % per step) and exactly consistent.
    inverse_pose: bool = False
    auto_mask: bool = False            # keep pixels whose warped error < unwarped error (SC-Release / monodepth2)
    min_valid_fraction: float = 0.0    # a sample with fewer valid pixels than this fraction is left out of a term
    # weights (SC defaults; w_feat is not given by the paper)
    w_photo: float = 1.0
    w_smooth: float = 0.1
    w_dsc: float = 0.5
    w_feat: float = 0.05
    # photometric error (eq. 1)
    ssim_weight: float = 0.85
    # occlusion check (eq. 3-4), UnFlow constants, flows in pixels of the loss resolution
    alpha1: float = 0.01
    alpha2: float = 0.5
    # which pose pair the flow check compares: "consistent" = the pose that warps the pair and its exact inverse
    # (whatever T_r->t the photometric loss uses); "loss" = the loss's own pair (with a second PoseNet pass, a
    # 0.1-0.2 deg disagreement between the passes flags pixels that are not occluded — the former behaviour)
    occlusion_pose_pair: str = "consistent"
    # guard against an implausibly large mask (more than max_occluded_fraction of a pair's in-view pixels):
    # "cap" keeps only that fraction of the most inconsistent pixels flagged (graded), "drop" removes the whole
    # mask of that pair (the former all-or-nothing switch), "off" applies the mask as computed
    occlusion_guard: str = "cap"
    max_occluded_fraction: float = 0.5
    # eq. 6 is averaged over the valid pixels that the flow check does not flag (true), or over every in-view pixel
    # (false).  The slides leave the mask open; measured on the demo's synth street (full preset, 32x96, 600 steps,
    # held-out street, sim(3) ATE, seeds 0 / 1): masked 0.88 / 1.34 m, unmasked 20.9 / 5.31 m
    # (bench/results/demo_variants.json).  An occluded pixel cannot have consistent depths, and forcing them pulls the
    # pose and depth of the whole pair (README "Results": the demo's odometry regression).
    dsc_occlusion_mask: bool = True
    # multi-scale: number of decoder scales used (1 = SC-Release: full-resolution disparity only); coarser scales
    # are upsampled to full resolution for the warping terms
    num_scales: int = 1
    # scale-invariant warping: every depth of a snippet is divided by the mean depth of its target frame (with the
    # gradient through the mean) before any warp, so a common scale of all depths changes no loss term and gets no
    # gradient; PoseNet's translation carries the scale.  Eq. 2 and 6 are ratios of two depths of a pair and do not
    # change.  Off by default: on its own it did not stop the collapse (issue 13; README "Why depth went flat").
    scale_invariant_warp: bool = False
    # order of the edge-aware smoothness: 1 = the paper / SC-SfMLearner (|first derivative| of the mean-normalised
    # disparity), 2 = |second derivative|, which does not penalise planes (a road's disparity is linear in the row)
    smoothness_order: int = 1
    # encoder levels for L_feat (0 = conv1 output at 1/2 resolution, 64 channels)
    feature_levels: tuple = field(default=(0,))

    def validate(self) -> "LossConfig":
        """Raise ConfigError naming the key when a value is out of range; return self."""
        if not 1 <= int(self.num_scales) <= 4:
            raise ConfigError(f"loss.num_scales must be 1..4, got {self.num_scales}")
        if not 0.0 <= float(self.min_valid_fraction) < 1.0:
            raise ConfigError(f"loss.min_valid_fraction must be in [0, 1), got {self.min_valid_fraction}")
        if not 0.0 < float(self.max_occluded_fraction) <= 1.0:
            raise ConfigError(f"loss.max_occluded_fraction must be in (0, 1], got {self.max_occluded_fraction}")
        if self.occlusion_pose_pair not in ("consistent", "loss"):
            raise ConfigError("loss.occlusion_pose_pair must be 'consistent' or 'loss', "
                              f"got {self.occlusion_pose_pair!r}")
        if self.occlusion_guard not in ("cap", "drop", "off"):
            raise ConfigError(f"loss.occlusion_guard must be 'cap', 'drop' or 'off', got {self.occlusion_guard!r}")
        if int(self.smoothness_order) not in (1, 2):
            raise ConfigError(f"loss.smoothness_order must be 1 or 2, got {self.smoothness_order}")
        self.smoothness_order = int(self.smoothness_order)
        if not 0.0 <= float(self.ssim_weight) <= 1.0:
            raise ConfigError(f"loss.ssim_weight must be in [0, 1], got {self.ssim_weight}")
        for key in ("w_photo", "w_smooth", "w_dsc", "w_feat", "alpha1", "alpha2"):
            if float(getattr(self, key)) < 0:
                raise ConfigError(f"loss.{key} must be >= 0, got {getattr(self, key)}")
        levels = tuple(self.feature_levels)
        if not levels or any(int(level) not in range(5) for level in levels):
            raise ConfigError(f"loss.feature_levels must be encoder levels in 0..4, got {self.feature_levels}")
        self.feature_levels = tuple(int(level) for level in levels)
        return self

    def to_dict(self) -> dict:
        """Plain (yaml-able) dict of every field."""
        out = dataclasses.asdict(self)
        out["feature_levels"] = list(self.feature_levels)
        return out


_TERMS = ("bidirectional", "occlusion", "depth_consistency", "adaptive_weights", "feature_perception")


def _preset(*enabled: str) -> dict:
    return {term: term in enabled for term in _TERMS}


#: Table II rows, cumulative: each preset names exactly the term switches it turns on.
PRESETS: dict[str, dict] = {
    "baseline": _preset(),
    "bi": _preset("bidirectional"),
    "bi_occ": _preset("bidirectional", "occlusion"),
    "bi_occ_dsc": _preset("bidirectional", "occlusion", "depth_consistency"),
    "bi_occ_dsc_aw": _preset("bidirectional", "occlusion", "depth_consistency", "adaptive_weights"),
    "full": _preset("bidirectional", "occlusion", "depth_consistency", "adaptive_weights", "feature_perception"),
}


def loss_config(preset: str = "full", **overrides) -> LossConfig:
    """The LossConfig of a Table II preset, with keyword overrides.  ConfigError on an unknown preset or key."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown loss preset {preset!r}; choose one of {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(LossConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown loss config key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = dict(PRESETS[preset])
    values.update(overrides)
    return LossConfig(**values).validate()
