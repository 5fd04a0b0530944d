"""Loss terms (eq. 1-7): values on known inputs, presets, finiteness on degenerate input, gradients to both nets."""

import dataclasses

import pytest
import torch

from bwdp_core.errors import ConfigError
from bwdp_core.geometry import invert_pose, pose_vec_to_mat
from bwdp_core.losses import PRESETS, LossConfig, loss_config
from bwdp_core.losses.adaptive import adaptive_weights, depth_difference
from bwdp_core.losses.consistency import depth_structure_consistency
from bwdp_core.losses.feature import feature_perception_error, normalise_features
from bwdp_core.losses.occlusion import occlusion_mask
from bwdp_core.losses.photometric import photometric_error, ssim
from bwdp_core.losses.smoothness import edge_aware_smoothness
from bwdp_core.losses.total import total_loss
from bwdp_core.model import SnippetPrediction, predict_snippet

H, W, B = 32, 96, 2
LOSS_TERMS = {"photometric", "smoothness", "depth_consistency", "feature"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _K(batch=B, h=H, w=W):
    K = torch.tensor([[0.6 * w, 0.0, (w - 1) / 2], [0.0, 0.6 * w * h / h, (h - 1) / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).clone()


def _prediction(disp_value=None, pose_vec=None, num_refs=2, seed=0, requires_grad=True):
    """A hand-made SnippetPrediction whose tensors are leaves (to check gradients / degenerate values)."""
    g = torch.Generator().manual_seed(seed)
    frames = (1 + num_refs) * B
    disps = []
    for s in range(4):
        shape = (frames, 1, H >> s, W >> s)
        d = torch.full(shape, float(disp_value)) if disp_value is not None else torch.rand(shape, generator=g) + 0.1
        disps.append(d.requires_grad_(requires_grad))
    features = [torch.randn(frames, c, H >> (i + 1), W >> (i + 1), generator=g).requires_grad_(requires_grad)
                for i, c in enumerate((64, 64, 128, 256, 512))]
    if pose_vec is None:
        pose_vec = torch.randn(num_refs * B, 6, generator=g) * 0.01
    pose_vec = pose_vec.clone().requires_grad_(requires_grad)
    fwd = pose_vec_to_mat(pose_vec)
    return SnippetPrediction(disps=disps, features=features, pose_vecs=pose_vec, poses_tgt_to_ref=fwd,
                             poses_ref_to_tgt=invert_pose(fwd), num_refs=num_refs, batch_size=B)


def _images(seed=0, num_refs=2, constant=None):
    g = torch.Generator().manual_seed(seed)
    if constant is not None:
        return torch.full((B, 3, H, W), constant), [torch.full((B, 3, H, W), constant) for _ in range(num_refs)]
    return torch.rand(B, 3, H, W, generator=g), [torch.rand(B, 3, H, W, generator=g) for _ in range(num_refs)]


# ---------------------------------------------------------------------------------------------------- single terms

def test_ssim_and_photometric_error_basic_values():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 20, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones_like(x), atol=1e-5)
    assert photometric_error(x, x).abs().max() < 1e-5
    rho = photometric_error(x, torch.rand(2, 3, 16, 20, generator=g))
    assert rho.shape == (2, 1, 16, 20)
    assert 0.1 < rho.mean() < 1 and rho.min() >= 0 and rho.max() <= 1
    # pure L1 part: 0.15 * |diff| when SSIM is switched off -> weight 0 gives plain L1
    assert torch.allclose(photometric_error(x, x + 0.1, ssim_weight=0.0), torch.full((2, 1, 16, 20), 0.1), atol=1e-5)


def test_occlusion_mask_consistent_flows_are_not_occluded():
    flow = torch.zeros(1, 2, 10, 30)
    flow[:, 0] = 3.0
    assert occlusion_mask(flow, -flow).sum() == 0
    # the reverse flow disagrees by 4 px on the right half of the reference image -> the target pixels that land
    # there are flagged; û is read at p + u, i.e. 3 px further right
    reverse = -flow.clone()
    reverse[..., 15:] += 4.0
    mask = occlusion_mask(flow, reverse)
    assert mask[..., 12:27].min() == 1 and mask[..., :12].max() == 0
    # alpha2 is the tolerance in pixels²: a 0.5 px disagreement passes, but not with alpha2 = 0.1
    reverse = -flow + 0.5
    assert occlusion_mask(flow, reverse).sum() == 0
    assert occlusion_mask(flow, reverse, alpha1=0.0, alpha2=0.1).min() == 1
    assert not occlusion_mask(flow.requires_grad_(), reverse).requires_grad


def test_depth_difference_and_adaptive_weights():
    d = torch.rand(1, 1, 4, 5) + 1
    assert torch.allclose(adaptive_weights(depth_difference(d, d)), torch.ones_like(d))
    assert torch.allclose(depth_difference(d, 3 * d), torch.full_like(d, 0.5))
    assert depth_difference(d, torch.zeros_like(d)).max() <= 1
    valid = torch.zeros_like(d)
    assert depth_structure_consistency(depth_difference(d, 3 * d), valid) == 0
    valid[..., 0] = 1
    assert torch.allclose(depth_structure_consistency(depth_difference(d, 3 * d), valid), torch.tensor(0.5))


def test_feature_normalisation_is_detached_and_scale_free():
    f = (torch.randn(2, 8, 4, 5) * 7).requires_grad_()
    n = normalise_features(f)
    assert not n.requires_grad
    assert torch.allclose(n.pow(2).mean(1), torch.ones(2, 4, 5), atol=1e-4)
    assert torch.allclose(normalise_features(f * 100), n, atol=1e-4)
    assert feature_perception_error(n, n).abs().max() == 0


def test_smoothness_zero_for_constant_disp_and_scale_invariant():
    image = torch.rand(1, 3, 8, 9)
    assert edge_aware_smoothness(torch.full((1, 1, 8, 9), 0.3), image) == 0
    disp = torch.rand(1, 1, 8, 9) + 0.1
    assert torch.allclose(edge_aware_smoothness(disp, image), edge_aware_smoothness(disp * 5, image), atol=1e-6)



def test_second_order_smoothness_leaves_a_planar_road_unpenalised():
    """The disparity of a ground plane seen by a level camera grows linearly with the row below the horizon: order 1
    pulls that ramp flat (its gradient lowers the bottom rows' disparity and raises the top's), order 2 gives it zero
    loss (its minimum: nothing to pull), and still penalises a kink (a depth step inside untextured road) and stays
    scale-free."""
    rows = torch.arange(16, dtype=torch.float32).view(1, 1, 16, 1)
    ramp = (0.05 + 0.02 * rows).expand(1, 1, 16, 12).clone().requires_grad_()  # 1/Z = (v - v_h) h / f
    image = torch.full((1, 3, 16, 12), 0.5)
    first = edge_aware_smoothness(ramp, image, order=1)
    first.backward()
    assert first > 0 and ramp.grad[..., -1, :].mean() > 0 > ramp.grad[..., 0, :].mean()  # descent flattens it
    assert edge_aware_smoothness(ramp, image, order=2) < 1e-6
    kinked = ramp.detach().clone()
    kinked[..., 8:, :] += 0.1
    assert edge_aware_smoothness(kinked, image, order=2) > 1e-3
    assert torch.allclose(edge_aware_smoothness(kinked, image, 2), edge_aware_smoothness(kinked * 3, image, 2))
    with pytest.raises(ConfigError, match="smoothness_order"):
        loss_config("full", smoothness_order=3)

# --------------------------------------------------------------------------------------------------------- presets

def test_presets_are_cumulative_one_switch_each():
    order = ["baseline", "bi", "bi_occ", "bi_occ_dsc", "bi_occ_dsc_aw", "full"]
    assert list(PRESETS) == order
    added = ["bidirectional", "occlusion", "depth_consistency", "adaptive_weights", "feature_perception"]
    for previous, current, switch in zip(order, order[1:], added):
        a, b = dataclasses.asdict(loss_config(previous)), dataclasses.asdict(loss_config(current))
        assert {k for k in a if a[k] != b[k]} == {switch} and b[switch] is True
    assert not any(dataclasses.asdict(loss_config("baseline"))[s] for s in added)
    assert dataclasses.asdict(loss_config("full")) == dataclasses.asdict(LossConfig())


def test_loss_config_overrides_and_errors():
    cfg = loss_config("bi", inverse_pose=True, alpha2=0.3, w_feat=0.2)
    assert cfg.inverse_pose and cfg.alpha2 == 0.3 and cfg.bidirectional and not cfg.occlusion
    with pytest.raises(ConfigError, match="nope"):
        loss_config("nope")
    with pytest.raises(ConfigError, match="w_fet"):
        loss_config("full", w_fet=1.0)
    with pytest.raises(ConfigError, match="num_scales"):
        loss_config("full", num_scales=7)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_computes_exactly_its_terms(preset):
    cfg = loss_config(preset)
    tgt, refs = _images()
    pred = _prediction(seed=1, pose_vec=torch.tensor([[0.0, 0.0, 0.3, 0.0, 0.02, 0.0]]).repeat(2 * B, 1))
    total, terms, visuals = total_loss(cfg, tgt, refs, _K(), pred)
    expected = {"photometric", "smoothness"}
    expected |= {"depth_consistency"} if cfg.depth_consistency else set()
    expected |= {"feature"} if cfg.feature_perception else set()
    assert set(terms) & LOSS_TERMS == expected
    recombined = cfg.w_photo * terms["photometric"] + cfg.w_smooth * terms["smoothness"] \
        + cfg.w_dsc * terms.get("depth_consistency", 0) + cfg.w_feat * terms.get("feature", 0)
    assert torch.allclose(total, recombined)
    assert visuals["occlusion"].shape == (B, 1, H, W) and visuals["depth"].shape == (B, 1, H, W)
    if not cfg.occlusion:
        assert visuals["occlusion"].sum() == 0 and terms["occluded_fraction"] == 0


def test_switches_change_the_values_they_name():
    tgt, refs = _images()
    pred = _prediction(disp_value=0.2, pose_vec=torch.tensor([[0.3, 0.0, 0.3, 0.0, 0.02, 0.0]]).repeat(2 * B, 1))
    with torch.no_grad():  # a near box in the target only: its pixels disagree with the reverse flow (occluded)
        pred.disps[0][:B, :, 8:20, 30:50] = 1.0
    values = {name: total_loss(loss_config(name), tgt, refs, _K(), pred)[1] for name in PRESETS}
    # reverse direction adds a second, positive photometric term
    assert values["bi"]["photometric"] > 1.5 * values["baseline"]["photometric"]
    # occlusion removes pixels: the valid fraction drops
    assert values["bi_occ"]["valid_fraction"] < values["bi"]["valid_fraction"]
    assert 0.01 < values["bi_occ"]["occluded_fraction"] < 0.2 and values["bi"]["occluded_fraction"] == 0
    # adaptive weights (< 1) lower the photometric term, other terms unchanged
    assert values["bi_occ_dsc_aw"]["photometric"] < values["bi_occ_dsc"]["photometric"]
    assert torch.allclose(values["bi_occ_dsc_aw"]["depth_consistency"], values["bi_occ_dsc"]["depth_consistency"])
    assert torch.allclose(values["full"]["photometric"], values["bi_occ_dsc_aw"]["photometric"])
    # auto-mask only ever removes pixels -> photometric error per remaining pixel is lower
    auto = total_loss(loss_config("bi", auto_mask=True), tgt, refs, _K(), pred)[1]
    assert auto["photometric"] < values["bi"]["photometric"]


def test_multi_scale_config_uses_every_scale():
    tgt, refs = _images()
    pred = _prediction(seed=2)
    total, _, _ = total_loss(loss_config("full", num_scales=4), tgt, refs, _K(), pred)
    total.backward()
    assert all(d.grad is not None and d.grad.abs().sum() > 0 for d in pred.disps)
    pred = _prediction(seed=2)
    total_loss(loss_config("full", num_scales=1), tgt, refs, _K(), pred)[0].backward()
    assert pred.disps[0].grad.abs().sum() > 0
    # unused scales get an exact zero gradient (in the graph, so DistributedDataParallel sees every head used)
    assert all(d.grad is not None and d.grad.abs().sum() == 0 for d in pred.disps[1:])


# ------------------------------------------------------------------------------------------------------ degenerate

def _assert_finite(total, terms, leaves):
    assert torch.isfinite(total)
    assert all(torch.isfinite(v) for v in terms.values())
    total.backward()
    for leaf in leaves:
        assert leaf.grad is None or torch.isfinite(leaf.grad).all()


@pytest.mark.parametrize("disp_value", [0.01, 10.01])
@pytest.mark.parametrize("preset", ["baseline", "full"])
def test_finite_at_depth_clamp_limits_and_constant_images(disp_value, preset):
    tgt, refs = _images(constant=0.5)
    pred = _prediction(disp_value=disp_value)
    total, terms, _ = total_loss(loss_config(preset, num_scales=2, auto_mask=True), tgt, refs, _K(), pred)
    _assert_finite(total, terms, pred.disps + [pred.pose_vecs])


def test_no_valid_pixels_gives_zero_terms_with_graph():
    tgt, refs = _images()
    aside = torch.tensor([[1000.0, 0.0, 0.0, 0.0, 0.0, 0.0]]).repeat(2 * B, 1)  # leaves the view both ways
    pred = _prediction(pose_vec=aside)
    cfg = loss_config("full", min_valid_fraction=0.1)
    total, terms, _ = total_loss(cfg, tgt, refs, _K(), pred)
    assert terms["valid_fraction"] == 0
    assert terms["photometric"] == 0 and terms["depth_consistency"] == 0 and terms["feature"] == 0
    assert total.requires_grad
    _assert_finite(total, terms, pred.disps + [pred.pose_vecs])


def test_min_valid_fraction_guard_drops_samples():
    tgt, refs = _images()
    vec = torch.tensor([[0.0, 0.0, 0.2, 0.0, 0.0, 0.0]]).repeat(2 * B, 1)
    vec[0, 0] = 6.0  # first sample of ref 0: depth 5, shifted ~70 px sideways -> ~27 % of its pixels valid
    pred = _prediction(disp_value=0.2, pose_vec=vec)
    loose = total_loss(loss_config("bi"), tgt, refs, _K(), pred)[1]
    strict = total_loss(loss_config("bi", min_valid_fraction=0.5), tgt, refs, _K(), pred)[1]
    assert strict["valid_fraction"] < loose["valid_fraction"]
    # that sample and its reverse (2 of the 8 pair rows, each ~27 % valid) are left out
    assert 0.04 < loose["valid_fraction"] - strict["valid_fraction"] < 0.09
    assert torch.isfinite(strict["photometric"]) and strict["photometric"] > 0


@pytest.mark.parametrize("inverse_pose", [False, True])
def test_gradients_reach_both_networks(inverse_pose):
    from bwdp_core.nets.disp_net import DispNet
    from bwdp_core.nets.pose_net import PoseNet

    torch.manual_seed(0)
    disp_net, pose_net = DispNet(18), PoseNet(18)
    cfg = loss_config("full", inverse_pose=inverse_pose)
    for tgt, refs in (_images(seed=3), _images(constant=0.3)):
        disp_net.zero_grad()
        pose_net.zero_grad()
        pred = predict_snippet(disp_net, pose_net, tgt, refs, cfg)
        assert pred.poses_tgt_to_ref.shape == (2 * B, 4, 4) and len(pred.disps) == 4
        total, terms, _ = total_loss(cfg, tgt, refs, _K(), pred)
        assert torch.isfinite(total) and all(torch.isfinite(v) for v in terms.values())
        total.backward()
        for net in (disp_net, pose_net):
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads)
            assert sum(g.abs().sum() for g in grads) > 0
    if inverse_pose:
        assert torch.allclose(pred.poses_ref_to_tgt @ pred.poses_tgt_to_ref, torch.eye(4).expand(2 * B, 4, 4),
                              atol=1e-5)


def test_feature_term_sends_no_gradient_into_features():
    tgt, refs = _images()
    pred = _prediction(seed=4)
    _, terms, _ = total_loss(loss_config("full"), tgt, refs, _K(), pred)
    terms["feature"].backward()
    assert all(f.grad is None for f in pred.features)
    assert pred.disps[0].grad.abs().sum() > 0 and pred.pose_vecs.grad.abs().sum() > 0


def _street_pair(height=256, width=832, second_pass_deg=0.2):
    """A static scene seen from two exact poses (tgt and the next frame, 1 m further on, plus the previous one):
    a flat road 1.65 m below the camera and a wall 30 m ahead (the ref's depths are exact too), KITTI-like K.
    The second-pass T_r->t is the exact inverse turned by ``second_pass_deg`` about a tilted axis — what an
    independent PoseNet pass gives.  -> (tgt, refs, K, SnippetPrediction with B = 1)."""
    from bwdp_core.geometry import euler_to_rotation

    f = 0.57 * width
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]).unsqueeze(0)
    rows = torch.arange(height, dtype=torch.float32).view(-1, 1).expand(height, width) - height / 2

    def depth(wall):
        road = torch.where(rows > 0, 1.65 * f / rows.clamp(min=1e-3), torch.full_like(rows, 1e4))
        return torch.minimum(road, torch.full_like(rows, wall)).view(1, 1, height, width)

    depths = torch.cat([depth(30.0), depth(31.0), depth(29.0)])  # tgt, ref t-1, ref t+1
    fwd = torch.eye(4).repeat(2, 1, 1)
    fwd[0, 2, 3], fwd[1, 2, 3] = 1.0, -1.0  # T_{t->r}: points 1 m further from t-1, 1 m nearer to t+1
    bwd = invert_pose(fwd)
    turn = euler_to_rotation(torch.full((2, 3), float(torch.deg2rad(torch.tensor(second_pass_deg))) / 3 ** 0.5))
    bwd[:, :3, :3] = turn @ bwd[:, :3, :3]
    disps = [1.0 / depths] + [torch.nn.functional.interpolate(1.0 / depths, scale_factor=0.5 ** s, mode="area")
                              for s in (1, 2, 3)]
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, height, width, generator=g)
    pred = SnippetPrediction(disps=disps, features=[], pose_vecs=torch.zeros(2, 6), poses_tgt_to_ref=fwd,
                             poses_ref_to_tgt=bwd, num_refs=2, batch_size=1)
    return images[:1], [images[1:2], images[2:3]], K, pred


def test_occlusion_mask_uses_a_consistent_pose_pair():
    """Static scene, exact poses, second pass 0.2 deg off: nothing is occluded.  The flow check on the loss's own
    (second-pass) pair flags a large part of the image; on the consistent pair (default) at most 5 %."""
    tgt, refs, K, pred = _street_pair()
    terms = total_loss(loss_config("bi_occ"), tgt, refs, K, pred)[1]
    assert terms["occluded_fraction_pre_guard"] <= 0.05 and terms["occluded_fraction"] <= 0.05
    assert terms["occlusion_guard_rate"] == 0
    assert 0.15 < terms["pose_pair_disagreement_deg"] < 0.25  # the loss itself still sees the second pass
    old = total_loss(loss_config("bi_occ", occlusion_pose_pair="loss", occlusion_guard="off"), tgt, refs, K, pred)[1]
    assert old["occluded_fraction_pre_guard"] > 0.25


def test_graded_occlusion_guard_and_its_statistics():
    """A row whose mask flags more than max_occluded_fraction keeps that fraction of its most inconsistent pixels
    (graded, not all-or-nothing); the pre-guard fraction and the firing rate are reported per row."""
    from bwdp_core.losses.occlusion import limit_occlusion

    ratio = torch.zeros(3, 1, 4, 10)
    ratio[0] = torch.linspace(0.1, 8.0, 40).view(1, 4, 10)  # 35 of 40 pixels above 1, graded inconsistency
    ratio[1, ..., :2] = 5.0  # 20 % flagged: plausible
    ratio[2, ..., :6] = 2.0  # 60 % flagged, all equally inconsistent
    valid = torch.ones_like(ratio)
    capped = limit_occlusion(ratio, valid, 0.5, "cap")
    assert torch.allclose(capped.flagged_fraction, torch.tensor([0.875, 0.2, 0.6]))
    assert capped.guard_fired.tolist() == [1.0, 0.0, 1.0]
    assert capped.occluded[0].mean() == 0.5 and capped.occluded[0].flatten()[-20:].min() == 1  # the worst half
    assert torch.equal(capped.occluded[1], (ratio[1] >= 1).float())
    assert capped.occluded[2].mean() >= 0.5  # ties at the threshold stay flagged
    dropped = limit_occlusion(ratio, valid, 0.5, "drop")  # the former all-or-nothing switch
    assert dropped.occluded[0].sum() == 0 and dropped.occluded[2].sum() == 0
    assert torch.equal(limit_occlusion(ratio, valid, 0.5, "off").occluded, (ratio >= 1).float())
    # in the total loss: disagreeing poses (the same vector both ways) flag nearly everything on the loss pair
    tgt, refs = _images()
    vec = torch.tensor([[0.0, 0.0, 0.3, 0.0, 0.0, 0.0]]).repeat(2 * B, 1)
    pred = _prediction(disp_value=0.2, pose_vec=vec)
    pred.poses_ref_to_tgt = pose_vec_to_mat(vec)
    terms = total_loss(loss_config("full", occlusion_pose_pair="loss"), tgt, refs, _K(), pred)[1]
    assert terms["occluded_fraction_pre_guard"] > 0.8 and terms["occlusion_guard_rate"] == 1
    assert 0.45 < terms["valid_fraction"] < 0.55 and terms["photometric"] > 0


def test_depth_consistency_is_masked_by_occlusion_by_default():
    """Eq. 6 averages D_diff over the valid pixels the flow check does not flag (the default, chosen by the demo's
    held-out ATE): the occluded box's depth disagreement gives no L_dsc gradient.  ``dsc_occlusion_mask: false``
    averages over every in-view pixel: then L_dsc equals the loss without an occlusion mask at all."""
    tgt, refs = _images()
    vec = torch.tensor([[0.3, 0.0, 0.3, 0.0, 0.02, 0.0]]).repeat(2 * B, 1)
    grads, values = {}, {}
    for name, overrides in (("default", {}), ("no_occlusion", {"occlusion": False}),
                            ("unmasked", {"dsc_occlusion_mask": False})):
        pred = _prediction(disp_value=0.2, pose_vec=vec)
        with torch.no_grad():  # a near box in the target only: occluded, and its depths disagree
            pred.disps[0][:B, :, 8:20, 30:50] = 1.0
        terms = total_loss(loss_config("bi_occ_dsc", **overrides), tgt, refs, _K(), pred)[1]
        terms["depth_consistency"].backward()
        grads[name], values[name] = pred.disps[0].grad.clone(), terms
    assert values["default"]["occluded_fraction"] > 0.01
    assert torch.allclose(values["unmasked"]["depth_consistency"], values["no_occlusion"]["depth_consistency"])
    assert torch.allclose(grads["unmasked"], grads["no_occlusion"])
    box = grads["unmasked"][:B, :, 8:20, 30:50].abs().sum()
    assert box > 0 and grads["default"][:B, :, 8:20, 30:50].abs().sum() < 0.9 * box
    assert not torch.allclose(values["default"]["depth_consistency"], values["unmasked"]["depth_consistency"])


def test_feature_warp_depth_on_the_stride_two_grid():
    """Eq. 5 warps conv1 features (stride 2: feature pixel i sits on input pixel 2i) with K/2; the depth must be
    read at 2i too.  Analytic scene: a plane slanted in depth, a texture painted on it, two exact poses; the
    features of each view are the texture at the view's even pixels.  Warping the ref features with the depth on
    the stride grid reproduces the target features up to bilinear interpolation; the former bilinear resize
    (align_corners=False, i.e. depth at 2i + 0.5) leaves a clearly larger error."""
    import torch.nn.functional as F

    from bwdp_core.geometry import inverse_warp, scale_intrinsics
    from bwdp_core.losses.feature import depth_on_feature_grid

    height, width = 48, 160
    f = 0.6 * width
    K = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]).unsqueeze(0)
    normal, offset = torch.tensor([0.55, 0.0, 1.0]), 3.0  # plane n·X = c: depth from ~2 m (right) to ~5.5 m
    T = torch.eye(4).unsqueeze(0)
    T[0, 0, 3] = 1.0  # T_{t->r}: 1 m sideways, a large parallax that depends on depth

    def view(transform):
        """Depth [1,1,H,W] of the plane in a camera at T·(tgt) and the texture [1,4,H,W] at every pixel."""
        R, t = transform[0, :3, :3], transform[0, :3, 3]
        n_cam, c_cam = R @ normal, offset + (R @ normal) @ t
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
        rays = torch.linalg.inv(K[0]) @ torch.stack([xs, ys, torch.ones_like(xs)]).reshape(3, -1)
        lam = c_cam / (n_cam @ rays)
        points = R.T @ (rays * lam - t.view(3, 1))  # back to the tgt camera's coordinates (the plane's frame)
        u, v = points[0], points[1]  # smooth texture: bilinear sampling of it is nearly exact
        texture = torch.stack([torch.sin(u), torch.cos(u + v), torch.sin(v), torch.cos(2 * u)])
        return (rays[2] * lam).reshape(1, 1, height, width), texture.reshape(1, 4, height, width) + 1.5

    tgt_depth, tgt_texture = view(torch.eye(4).unsqueeze(0))
    _, ref_texture = view(T)
    f_tgt, f_ref = tgt_texture[..., ::2, ::2], ref_texture[..., ::2, ::2]  # stride-2 features
    K_half = scale_intrinsics(K, 0.5, 0.5)

    def warp_error(depth_small):
        warp = inverse_warp(f_ref, depth_small, None, T, K_half)
        interior = warp.valid_mask.bool().expand_as(f_tgt).clone()
        interior[..., :2, :] = interior[..., -2:, :] = interior[..., :, :2] = interior[..., :, -2:] = False
        return (warp.warped - f_tgt).abs()[interior].mean()

    on_grid = depth_on_feature_grid(tgt_depth, f_tgt.shape[-2:])
    assert torch.equal(on_grid, tgt_depth[..., ::2, ::2])
    new = warp_error(on_grid)
    old = warp_error(F.interpolate(tgt_depth, size=f_tgt.shape[-2:], mode="bilinear", align_corners=False))
    assert new < 0.35 * old and new < 1e-3, (float(new), float(old))


def test_one_direction_with_occlusion_uses_only_ref_to_tgt():
    tgt, refs = _images()
    pred = _prediction(disp_value=0.2, pose_vec=torch.tensor([[0.3, 0.0, 0.3, 0.0, 0.02, 0.0]]).repeat(2 * B, 1))
    with torch.no_grad():
        pred.disps[0][:B, :, 8:20, 30:50] = 1.0
    one = total_loss(loss_config("baseline", occlusion=True, depth_consistency=True, feature_perception=True),
                     tgt, refs, _K(), pred)[1]
    both = total_loss(loss_config("full"), tgt, refs, _K(), pred)[1]
    assert one["occluded_fraction"] > 0
    for name in ("depth_consistency", "feature"):
        assert 0 < one[name] < both[name]


def test_distributed_data_parallel_sees_every_parameter_used(tmp_path):
    """DDP (without find_unused_parameters) needs a gradient for every parameter, also the decoder heads of scales
    the loss does not use (num_scales = 1)."""
    import dataclasses as dc

    import torch.distributed as dist

    from bwdp_core.nets.disp_net import DispNet
    from bwdp_core.nets.pose_net import PoseNet

    class Snippet(torch.nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.disp_net, self.pose_net, self.cfg = DispNet(18), PoseNet(18), cfg

        def forward(self, tgt, refs):
            pred = predict_snippet(self.disp_net, self.pose_net, tgt, refs, self.cfg)
            return {f.name: getattr(pred, f.name) for f in dc.fields(pred)}

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        cfg = loss_config("full", num_scales=1)
        model = torch.nn.parallel.DistributedDataParallel(Snippet(cfg))
        tgt, refs = _images(seed=5)
        for _ in range(2):  # the second iteration is where DDP complains about unused parameters
            total = total_loss(cfg, tgt, refs, _K(), SnippetPrediction(**model(tgt, refs)))[0]
            total.backward()
        assert torch.isfinite(total)
    finally:
        dist.destroy_process_group()
