"""Geometry: pose algebra, pixel <-> point round trips, grid_sample normalisation, warping with known motion."""

import math

import pytest
import torch
import torch.nn.functional as F

from bwdp_core.geometry import (
    back_project,
    camera_flow,
    euler_to_rotation,
    inverse_warp,
    invert_pose,
    mat_to_pose_vec,
    pixel_grid,
    pose_vec_to_mat,
    project,
    sample_at_pixels,
    scale_intrinsics,
    transform_points,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _K(batch=1, f=50.0, h=24, w=40, dtype=torch.float32):
    K = torch.tensor([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    return K.expand(batch, 3, 3).clone()


def _axis_rotation(axis, angle):
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)
    if axis == "y":
        return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def test_euler_order_is_rx_ry_rz():
    angles = torch.tensor([[0.3, -0.2, 0.7]], dtype=torch.float64)
    expected = _axis_rotation("x", 0.3) @ _axis_rotation("y", -0.2) @ _axis_rotation("z", 0.7)
    assert torch.allclose(euler_to_rotation(angles)[0], expected, atol=1e-12)


def test_pose_vec_to_mat_round_trip_and_rigid():
    g = torch.Generator().manual_seed(0)
    vec = torch.cat([torch.randn(16, 3, generator=g), (torch.rand(16, 3, generator=g) - 0.5) * 2.0], 1).double()
    mat = pose_vec_to_mat(vec)
    assert mat.shape == (16, 4, 4)
    rotation = mat[:, :3, :3]
    assert torch.allclose(rotation @ rotation.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(16, 3, 3),
                          atol=1e-12)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(16, dtype=torch.float64))
    assert torch.equal(mat[:, 3], torch.tensor([0, 0, 0, 1.0], dtype=torch.float64).expand(16, 4))
    assert torch.allclose(mat_to_pose_vec(mat), vec, atol=1e-10)


def test_pose_compose_inverse_is_identity():
    g = torch.Generator().manual_seed(1)
    mat = pose_vec_to_mat(torch.randn(8, 6, generator=g))
    eye = torch.eye(4).expand(8, 4, 4)
    assert torch.allclose(mat @ invert_pose(mat), eye, atol=1e-5)
    assert torch.allclose(invert_pose(mat) @ mat, eye, atol=1e-5)
    assert torch.allclose(invert_pose(mat), torch.linalg.inv(mat), atol=1e-5)


def test_back_project_then_project_returns_pixels():
    g = torch.Generator().manual_seed(2)
    depth = torch.rand(2, 1, 24, 40, generator=g) * 20 + 0.5
    K = _K(2)
    points = back_project(depth, torch.inverse(K))
    pixels, z = project(points, K)
    grid = pixel_grid(24, 40)[:2].expand(2, 2, 24, 40)
    assert torch.allclose(pixels, grid, atol=1e-3)
    assert torch.allclose(z, depth, rtol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
def test_identity_sampling_is_exact(align_corners):
    """Sampling at the pixel grid must give back the image: catches the half-pixel normalisation bug."""
    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 17, 29, generator=g)
    grid = pixel_grid(17, 29)[:2].expand(2, 2, 17, 29)
    assert torch.allclose(sample_at_pixels(image, grid, align_corners=align_corners), image, atol=1e-5)


def test_half_pixel_bug_would_be_detected():
    """The baseline's mix (2x/(W-1)-1 with align_corners=False) visibly changes the image: the test above bites."""
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 17, 29, generator=g)
    grid = pixel_grid(17, 29)[:2].unsqueeze(0)
    u = 2 * grid[:, 0] / 28 - 1
    v = 2 * grid[:, 1] / 16 - 1
    buggy = F.grid_sample(image, torch.stack([u, v], -1), align_corners=False)
    assert (buggy - image).abs().mean() > 0.05


def test_subpixel_sampling_interpolates_linearly():
    ramp = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 1, 4, 10).contiguous()
    pixels = torch.tensor([2.25, 1.0]).view(1, 2, 1, 1)
    assert torch.allclose(sample_at_pixels(ramp, pixels), torch.tensor(2.25))


def test_identity_pose_warp_is_exact():
    g = torch.Generator().manual_seed(4)
    image = torch.rand(2, 3, 24, 40, generator=g)
    depth = torch.rand(2, 1, 24, 40, generator=g) * 10 + 1
    eye = torch.eye(4).expand(2, 4, 4)
    result = inverse_warp(image, depth, depth, eye, _K(2))
    assert torch.allclose(result.warped, image, atol=1e-4)
    assert torch.allclose(result.projected_depth, depth, atol=1e-3)
    assert torch.allclose(result.computed_depth, depth, atol=1e-4)
    assert result.valid_mask.min() == 1
    assert result.flow.abs().max() < 1e-3


def test_lateral_translation_shifts_by_focal_times_baseline_over_depth():
    """Fronto-parallel plane at depth 5, camera moved 0.2 right: every pixel moves f·t/D = 2 px to the left."""
    g = torch.Generator().manual_seed(5)
    h, w, f = 24, 40, 50.0
    ref = torch.rand(1, 3, h, w, generator=g)
    depth = torch.full((1, 1, h, w), 5.0)
    T = torch.eye(4).unsqueeze(0).clone()
    T[0, 0, 3] = -0.2  # points move left in ref's camera when the camera moves right
    result = inverse_warp(ref, depth, depth, T, _K(1, f, h, w))
    assert torch.allclose(result.flow[:, 0], torch.full((1, h, w), -2.0), atol=1e-4)
    assert torch.allclose(result.flow[:, 1], torch.zeros(1, h, w), atol=1e-4)
    assert torch.allclose(result.warped[..., 2:], ref[..., :-2], atol=1e-4)
    assert result.valid_mask[..., :2].sum() == 0 and result.valid_mask[..., 2:].min() == 1
    assert torch.allclose(camera_flow(depth, T, _K(1, f, h, w)), result.flow, atol=1e-5)


def test_points_behind_camera_are_invalid():
    depth = torch.full((1, 1, 8, 8), 1.0)
    T = torch.eye(4).unsqueeze(0).clone()
    T[0, 2, 3] = -2.0  # everything ends up behind the reference camera
    result = inverse_warp(torch.rand(1, 3, 8, 8), depth, depth, T, _K(1, 5.0, 8, 8))
    assert result.valid_mask.sum() == 0
    assert torch.isfinite(result.warped).all() and torch.isfinite(result.flow).all()


def test_transform_points_matches_matrix_product():
    g = torch.Generator().manual_seed(6)
    points = torch.randn(3, 3, 4, 5, generator=g)
    T = pose_vec_to_mat(torch.randn(3, 6, generator=g))
    expected = torch.einsum("bij,bjhw->bihw", T[:, :3, :3], points) + T[:, :3, 3].view(3, 3, 1, 1)
    assert torch.allclose(transform_points(points, T), expected, atol=1e-5)


def test_scale_intrinsics():
    K = _K(1, 100.0, 128, 416)
    half = scale_intrinsics(K, 0.5, 0.25)
    assert torch.allclose(half[0], torch.tensor([[50.0, 0, 103.75], [0, 25.0, 63.5 / 4], [0, 0, 1]]))


def test_gradients_flow_to_depth_and_pose_in_float64():
    g = torch.Generator().manual_seed(7)
    image = torch.rand(1, 3, 12, 16, generator=g, dtype=torch.float64)
    depth = (torch.rand(1, 1, 12, 16, generator=g, dtype=torch.float64) + 2).requires_grad_()
    vec = (torch.randn(1, 6, generator=g, dtype=torch.float64) * 0.01).requires_grad_()
    result = inverse_warp(image, depth, depth, pose_vec_to_mat(vec), _K(1, 10.0, 12, 16, torch.float64))
    assert result.warped.dtype == torch.float64
    (result.warped * result.valid_mask).sum().backward()
    assert depth.grad.abs().sum() > 0 and vec.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_warp_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(8)
    image = torch.rand(2, 3, 24, 40, generator=g)
    depth = torch.rand(2, 1, 24, 40, generator=g) * 10 + 1
    T = pose_vec_to_mat(torch.randn(2, 6, generator=g) * 0.05)
    cpu = inverse_warp(image, depth, depth, T, _K(2))
    gpu = inverse_warp(image.cuda(), depth.cuda(), depth.cuda(), T.cuda(), _K(2).cuda())
    assert gpu.warped.device.type == "cuda"
    assert torch.allclose(gpu.warped.cpu(), cpu.warped, atol=1e-3)


def test_warp_under_autocast_keeps_pixel_precision():
    """Under bfloat16 autocast the geometry still runs in float32: a 0.25 px shift at x≈400 survives."""
    image = torch.arange(416.0).view(1, 1, 1, 416).expand(1, 1, 4, 416).contiguous()
    depth = torch.full((1, 1, 4, 416), 10.0)
    T = torch.eye(4).unsqueeze(0).clone()
    T[0, 0, 3] = 0.25 * 10.0 / 100.0  # f = 100 -> flow +0.25 px
    K = _K(1, 100.0, 4, 416)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = inverse_warp(image, depth.bfloat16(), None, T, K)  # matmuls would run in bf16 here
    assert result.warped.dtype == torch.float32
    assert torch.allclose(result.warped[..., 390:400], image[..., 390:400] + 0.25, atol=1e-3)
