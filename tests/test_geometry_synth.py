"""Geometry and masks against the renderer's ground truth (bwdp synth): GT depth + GT pose reproduce the target,
wrong pose / depth scale do not, the camera-flow occlusion mask matches the z-buffer, W_aw ≈ 1 where depths agree."""

import pytest
import torch

from bwdp_core.geometry import inverse_warp, invert_pose
from bwdp_core.losses.adaptive import adaptive_weights, depth_difference
from bwdp_core.losses.occlusion import occlusion_mask
from bwdp_core.losses.photometric import photometric_error
from bwdp_core.synth.render import render_sequence

SKY_DEPTH = 1000.0  # the renderer marks sky with depth 0; for warping it is simply very far


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Frames:
    def __init__(self, seq):
        self.seq = seq
        self.images = torch.from_numpy(seq.images).permute(0, 3, 1, 2).float() / 255
        self.sky = torch.from_numpy(seq.depths) == 0
        depth = torch.from_numpy(seq.depths).clone()
        depth[self.sky] = SKY_DEPTH
        self.depths = depth[:, None]
        self.poses = torch.from_numpy(seq.poses).float()
        self.K = torch.from_numpy(seq.K).float()[None]

    def T(self, i, j):
        """T_{i->j}: points of camera i into camera j (poses are camera-to-world)."""
        return (torch.linalg.inv(self.poses[j]) @ self.poses[i])[None]

    def warp(self, i, j, T=None, depth_scale=1.0):
        """Frame j warped into frame i."""
        T = self.T(i, j) if T is None else T
        return inverse_warp(self.images[j:j + 1], self.depths[i:i + 1] * depth_scale,
                            self.depths[j:j + 1] * depth_scale, T, self.K)


@pytest.fixture(scope="module")
def street():
    return Frames(render_sequence(3, 64, 192, seed=1))


def _photometric_on(frames, i, result, pixels):
    return photometric_error(frames.images[i:i + 1], result.warped)[0, 0][pixels].mean().item()


@pytest.mark.parametrize("ref", [0, 2])
def test_gt_depth_and_pose_reproduce_target(street, ref):
    tgt = 1
    gt = street.warp(tgt, ref)
    occluded = torch.from_numpy(street.seq.occlusion(tgt, ref))
    pixels = (gt.valid_mask[0, 0] > 0) & ~street.sky[tgt] & ~occluded
    assert pixels.float().mean() > 0.5
    error_gt = _photometric_on(street, tgt, gt, pixels)
    assert error_gt < 0.07

    wrong_translation = street.T(tgt, ref).clone()
    wrong_translation[0, :3, 3] *= 0.5
    wrong_rotation = street.T(tgt, ref) @ torch.tensor([[[0.9995, 0, 0.0300, 0], [0, 1, 0, 0],
                                                         [-0.0300, 0, 0.9995, 0], [0, 0, 0, 1]]])
    for bad in (street.warp(tgt, ref, T=wrong_translation), street.warp(tgt, ref, T=wrong_rotation),
                street.warp(tgt, ref, depth_scale=2.0), street.warp(tgt, ref, depth_scale=0.5)):
        assert _photometric_on(street, tgt, bad, pixels) > 1.8 * error_gt


def test_w_aw_is_one_where_depths_agree(street):
    gt = street.warp(1, 2)
    pixels = (gt.valid_mask[0, 0] > 0) & ~street.sky[1] & ~torch.from_numpy(street.seq.occlusion(1, 2))
    weights = adaptive_weights(depth_difference(gt.computed_depth, gt.projected_depth))[0, 0]
    assert weights[pixels].mean() > 0.98
    assert (weights[pixels] > 0.95).float().mean() > 0.95
    # a wrong depth scale on one side breaks the agreement
    bad = inverse_warp(street.images[2:3], street.depths[1:2], 2 * street.depths[2:3], street.T(1, 2), street.K)
    bad_weights = adaptive_weights(depth_difference(bad.computed_depth, bad.projected_depth))[0, 0]
    assert bad_weights[pixels].mean() < 0.8


def _flow_check(frames, i, j):
    forward = inverse_warp(frames.depths[j:j + 1], frames.depths[i:i + 1], None, frames.T(i, j), frames.K)
    backward = inverse_warp(frames.depths[i:i + 1], frames.depths[j:j + 1], None, invert_pose(frames.T(i, j)),
                            frames.K)
    mask = occlusion_mask(forward.flow, backward.flow)[0, 0] > 0
    region = (forward.valid_mask[0, 0] > 0) & ~frames.sky[i]  # the z-buffer GT leaves out-of-view pixels out
    return mask & region, region


def test_occlusion_mask_matches_zbuffer_occlusion(street):
    intersection = union = gt_count = 0
    for i, j in ((0, 2), (2, 0)):
        mask, region = _flow_check(street, i, j)
        gt = torch.from_numpy(street.seq.occlusion(i, j)) & region
        gt_count += gt.sum().item()
        intersection += (mask & gt).sum().item()
        union += (mask | gt).sum().item()
    assert gt_count > 0.02 * 2 * 64 * 192  # the scene has occluders
    assert intersection / union >= 0.5


def test_occlusion_mask_empty_for_static_camera():
    frames = Frames(render_sequence(2, 32, 96, seed=2, static=True))
    mask, _ = _flow_check(frames, 0, 1)
    assert mask.float().mean() < 0.001
    assert not frames.seq.occlusion(0, 1).any()
