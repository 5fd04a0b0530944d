"""Camera geometry for view synthesis: pure, batched, differentiable functions (tensors in, tensors out).

Conventions (see /plan INTERFACES and notes/method.md):
- pixel grid x in 0..W-1, y in 0..H-1, homogeneous p = [x, y, 1]; optical axes (x right, y down, z forward);
- ``T_a_b`` (4x4) maps points of camera b into camera a; PoseNet(tgt, ref) predicts T_{t->r} = T_ref_tgt;
- intrinsics K [B,3,3] at the resolution of the tensor they are used with.

Every function follows the device and dtype of its inputs and loops over nothing but the batch-free tensor algebra.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

#: Smallest camera-space depth a point may have before the projection divides by it (metres, up to scale).
MIN_DEPTH = 1e-3


# ----------------------------------------------------------------------------------------------------------------------
# poses
# ----------------------------------------------------------------------------------------------------------------------

def euler_to_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices R = Rx(rx) · Ry(ry) · Rz(rz) from Euler angles (radians).

    angles: [B,3] (rx, ry, rz) -> [B,3,3].
    """
    rx, ry, rz = angles.unbind(-1)
    cx, sx = torch.cos(rx), torch.sin(rx)
    cy, sy = torch.cos(ry), torch.sin(ry)
    cz, sz = torch.cos(rz), torch.sin(rz)
    # R = Rx Ry Rz written out (rows).
    r00 = cy * cz
    r01 = -cy * sz
    r02 = sy
    r10 = cx * sz + sx * sy * cz
    r11 = cx * cz - sx * sy * sz
    r12 = -sx * cy
    r20 = sx * sz - cx * sy * cz
    r21 = sx * cz + cx * sy * sz
    r22 = cx * cy
    return torch.stack([r00, r01, r02, r10, r11, r12, r20, r21, r22], dim=-1).reshape(angles.shape[:-1] + (3, 3))


def rotation_to_euler(rotation: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_to_rotation` for |ry| < pi/2.  rotation: [B,3,3] -> [B,3] (rx, ry, rz)."""
    ry = torch.asin(rotation[..., 0, 2].clamp(-1.0, 1.0))
    rz = torch.atan2(-rotation[..., 0, 1], rotation[..., 0, 0])
    rx = torch.atan2(-rotation[..., 1, 2], rotation[..., 2, 2])
    return torch.stack([rx, ry, rz], dim=-1)


def pose_vec_to_mat(vec: torch.Tensor) -> torch.Tensor:
    """6-DoF pose vector (tx, ty, tz, rx, ry, rz) -> homogeneous 4x4 matrix [[R, t], [0, 1]], R = Rx·Ry·Rz.

    vec: [B,6] -> [B,4,4].  This is how PoseNet's output T_{t->r} is turned into a transform.
    """
    batch = vec.shape[0]
    rotation = euler_to_rotation(vec[:, 3:])
    top = torch.cat([rotation, vec[:, :3].unsqueeze(-1)], dim=-1)  # [B,3,4]
    bottom = vec.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(batch, 1, 4)
    return torch.cat([top, bottom], dim=1)


def mat_to_pose_vec(mat: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pose_vec_to_mat` (|ry| < pi/2).  mat: [B,4,4] -> [B,6]."""
    return torch.cat([mat[:, :3, 3], rotation_to_euler(mat[:, :3, :3])], dim=-1)


def invert_pose(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of a rigid transform: [[R, t], [0, 1]]^-1 = [[R^T, -R^T t], [0, 1]].  transform: [B,4,4] -> [B,4,4]."""
    rotation_t = transform[:, :3, :3].transpose(1, 2)
    translation = -rotation_t @ transform[:, :3, 3:]
    top = torch.cat([rotation_t, translation], dim=-1)
    bottom = transform[:, 3:, :]  # [0, 0, 0, 1], keeps device/dtype/graph
    return torch.cat([top, bottom.detach()], dim=1)


# ----------------------------------------------------------------------------------------------------------------------
# pixels and points
# ----------------------------------------------------------------------------------------------------------------------

def pixel_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Homogeneous pixel coordinates [x, y, 1] of every pixel: [3,H,W] (x in 0..W-1, y in 0..H-1)."""
    ys = torch.arange(height, device=device, dtype=dtype or torch.float32)
    xs = torch.arange(width, device=device, dtype=dtype or torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=0)


def back_project(depth: torch.Tensor, K_inv: torch.Tensor) -> torch.Tensor:
    """X = D(p) · K^-1 p for every pixel p.  depth: [B,1,H,W], K_inv: [B,3,3] -> camera points [B,3,H,W]."""
    batch, _, height, width = depth.shape
    pixels = pixel_grid(height, width, device=depth.device, dtype=depth.dtype).reshape(1, 3, -1)
    rays = K_inv @ pixels  # [B,3,H*W]
    return (rays * depth.reshape(batch, 1, -1)).reshape(batch, 3, height, width)


def transform_points(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """X' = R X + t.  points: [B,3,H,W], transform: [B,4,4] -> [B,3,H,W]."""
    batch, _, height, width = points.shape
    flat = points.reshape(batch, 3, -1)
    moved = transform[:, :3, :3] @ flat + transform[:, :3, 3:]
    return moved.reshape(batch, 3, height, width)


def project(points: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """p' = K X / X_z with X_z clamped to >= MIN_DEPTH.

    points: [B,3,H,W], K: [B,3,3] -> (pixels [B,2,H,W] (x, y), depth X_z [B,1,H,W], unclamped).
    """
    batch, _, height, width = points.shape
    image = K @ points.reshape(batch, 3, -1)  # [B,3,H*W]
    z = image[:, 2:3].clamp(min=MIN_DEPTH)
    pixels = (image[:, :2] / z).reshape(batch, 2, height, width)
    return pixels, points[:, 2:3]


def scale_intrinsics(K: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Intrinsics for an image resized by (sx, sy): fx, cx scale by sx and fy, cy by sy.  K: [B,3,3] -> [B,3,3].

    Uses the same convention as the data loaders (principal point scaled with the image; the sub-pixel
    centre-convention offset 0.5·(s−1) is ignored everywhere alike).
    """
    scale = K.new_tensor([[sx, sx, sx], [sy, sy, sy], [1.0, 1.0, 1.0]])
    return K * scale


# ----------------------------------------------------------------------------------------------------------------------
# sampling and warping
# ----------------------------------------------------------------------------------------------------------------------

def normalise_pixels(pixels: torch.Tensor, height: int, width: int, align_corners: bool = True) -> torch.Tensor:
    """Pixel coordinates [B,2,H,W] -> grid_sample grid [B,H,W,2] in [-1, 1], consistent with ``align_corners``.

    align_corners=True : -1/+1 are the CENTRES of the first/last pixel -> u = 2x/(W-1) - 1.
    align_corners=False: -1/+1 are the outer EDGES of the image        -> u = (2x+1)/W - 1.
    (Mixing the first formula with align_corners=False, as SC-SfMLearner/monodepth2 do, shifts every sample by up
    to half a pixel; we do not.)
    """
    x, y = pixels[:, 0], pixels[:, 1]
    if align_corners:
        u = 2.0 * x / max(width - 1, 1) - 1.0
        v = 2.0 * y / max(height - 1, 1) - 1.0
    else:
        u = (2.0 * x + 1.0) / width - 1.0
        v = (2.0 * y + 1.0) / height - 1.0
    return torch.stack([u, v], dim=-1)


def sample_at_pixels(image: torch.Tensor, pixels: torch.Tensor, align_corners: bool = True,
                     padding_mode: str = "zeros") -> torch.Tensor:
    """Bilinearly sample ``image`` at (sub)pixel positions.

    image: [B,C,H,W]; pixels: [B,2,Ho,Wo] (x, y) in the image's pixel coordinates -> [B,C,Ho,Wo].
    The grid normalisation matches ``align_corners`` (see :func:`normalise_pixels`): sampling at the pixel grid
    itself returns the image exactly — the half-pixel bug of the baseline code bases is NOT reproduced.
    """
    height, width = image.shape[-2:]
    grid = normalise_pixels(pixels, height, width, align_corners).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=align_corners)


def _full_precision(*tensors: torch.Tensor):
    """Half/bfloat16 tensors as float32 (pixel coordinates up to ~10^3 need more than fp16's 11 bits)."""
    return [t.float() if t is not None and t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors]


def _autocast_off(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


def camera_flow(depth: torch.Tensor, transform: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera (rigid) flow u(p) = p' − p, p' = proj(K · T · D(p) K^-1 p).

    depth: [B,1,H,W] of the source camera, transform: [B,4,4] source->other camera, K: [B,3,3]
    -> flow in pixels [B,2,H,W].  With tgt depth and T_{t->r} this is u^{ref->tgt} of eq. 3.
    Runs in at least float32 even under autocast.
    """
    with _autocast_off(depth.device):
        depth, transform, K = _full_precision(depth, transform, K)
        return _camera_flow(depth, transform, K)


def _camera_flow(depth: torch.Tensor, transform: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    pixels, _ = project(transform_points(back_project(depth, torch.inverse(K)), transform), K)
    grid = pixel_grid(depth.shape[-2], depth.shape[-1], device=depth.device, dtype=depth.dtype)[:2]
    return pixels - grid.unsqueeze(0)


class WarpResult(NamedTuple):
    """Result of warping a reference frame into the target view (all at the target's pixels, [B,*,H,W]).

    warped:          ref image (or features) sampled at p' ............................. [B,C,H,W]
    valid_mask:      1 where p' lies inside the reference image and X'_z > MIN_DEPTH ....... [B,1,H,W] float
    projected_depth: ref depth sampled at p' (D_proj), None when no ref depth was given .... [B,1,H,W]
    computed_depth:  X'_z, the target point's depth seen from ref (D_comp), >= MIN_DEPTH .. [B,1,H,W]
    flow:            camera flow p' − p in pixels ...................................... [B,2,H,W]
    """

    warped: torch.Tensor
    valid_mask: torch.Tensor
    projected_depth: Optional[torch.Tensor]
    computed_depth: torch.Tensor
    flow: torch.Tensor


def inverse_warp(ref_img: torch.Tensor, tgt_depth: torch.Tensor, ref_depth: Optional[torch.Tensor],
                 T_tgt_to_ref: torch.Tensor, K: torch.Tensor) -> WarpResult:
    """Synthesise the target view from the reference frame (view synthesis by inverse warping).

    ref_img: [B,C,H,W] (image or feature map); tgt_depth: [B,1,H,W]; ref_depth: [B,1,H,W] or None;
    T_tgt_to_ref: [B,4,4] (T_{t->r}); K: [B,3,3] at this resolution -> :class:`WarpResult`.
    The reference image and depth are sampled in one grid_sample call.  Runs in at least float32 even under
    autocast (half-precision inputs are upcast; the results are float32 then).
    """
    with _autocast_off(tgt_depth.device):
        return _inverse_warp(*_full_precision(ref_img, tgt_depth, ref_depth, T_tgt_to_ref, K))


def _inverse_warp(ref_img, tgt_depth, ref_depth, T_tgt_to_ref, K) -> WarpResult:
    batch, channels, height, width = ref_img.shape
    points = transform_points(back_project(tgt_depth, torch.inverse(K)), T_tgt_to_ref)
    pixels, z = project(points, K)
    grid = pixel_grid(height, width, device=tgt_depth.device, dtype=tgt_depth.dtype)[:2].unsqueeze(0)
    flow = pixels - grid

    x, y = pixels[:, 0:1], pixels[:, 1:2]
    slack = 1e-3  # pixels: absorbs float rounding at the image border (an identity warp keeps every pixel)
    valid = (x >= -slack) & (x <= width - 1 + slack) & (y >= -slack) & (y <= height - 1 + slack) & (z > MIN_DEPTH)

    source = ref_img if ref_depth is None else torch.cat([ref_img, ref_depth.to(ref_img.dtype)], dim=1)
    sampled = sample_at_pixels(source, pixels, align_corners=True, padding_mode="zeros")
    warped = sampled[:, :channels]
    projected_depth = None if ref_depth is None else sampled[:, channels:]
    return WarpResult(warped=warped, valid_mask=valid.to(ref_img.dtype), projected_depth=projected_depth,
                      computed_depth=z.clamp(min=MIN_DEPTH), flow=flow)


#: depth std / mean below which a depth map counts as near-constant ("collapsed", issue 13). Collapsed training runs
#: measured 0.000-0.002 and a random-init DispNet 0.02; a weakly structured model 0.08 and real street depth ~0.5+
#: (README, "Why depth went flat, and the fix"), so 0.05 separates them with a margin on both sides.
NEAR_CONSTANT_DEPTH = 0.05


def depth_std_over_mean(depth: torch.Tensor) -> torch.Tensor:
    """Depth-structure statistic per map: std / mean (0 = constant).  [B,1,H,W] or [B,H,W] -> [B]; no gradient."""
    flat = depth.detach().flatten(1).double()
    return (flat.std(1) / flat.mean(1).abs().clamp(min=1e-12)).to(depth.dtype)


def near_constant_depth_message(std_over_mean: float, what: str) -> str | None:
    """The one warning line for a near-constant depth (std/mean < NEAR_CONSTANT_DEPTH), or None when structured."""
    if std_over_mean >= NEAR_CONSTANT_DEPTH:
        return None
    return (f"warning: {what} predicts near-constant depth (std/mean {std_over_mean:.4f} < {NEAR_CONSTANT_DEPTH}): "
            "the depth network has collapsed; its depth (and poses trained with it) are not trustworthy")
