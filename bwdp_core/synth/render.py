"""Analytic ray casting of the procedural street (numpy, CPU, single thread) and ground-truth sequences.

Every pixel's ray is intersected with the ground plane, every box (slab test in the box's frame) and every pillar
(ray/cylinder quadratic) whose screen rectangle covers it; the nearest hit gives depth exactly. Rays are built with
camera-frame direction (x, y, 1), so the ray parameter t *is* the optical depth z (not the ray length).

Depth convention: float32 metres, z in the optical frame; sky pixels (no surface) have depth 0 = invalid, and get a
sky gradient in the image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from bwdp_core.errors import ConfigError
from bwdp_core.synth import textures as tx
from bwdp_core.synth.scene import GROUND_Y, START_S, STEP_M, Boxes, Scene, make_scene

NEAR = 0.05  # metres: nearer hits are ignored
CULL_DISTANCE = 250.0  # metres: objects farther from the camera are not tested
SUN = np.array([0.45, -0.75, 0.5]) / np.linalg.norm([0.45, -0.75, 0.5])  # towards the sun (y is down)
SKY, GROUND, BOX, CYLINDER = 0, 1, 2, 3
OCCLUSION_TOLERANCE = 0.01  # relative depth margin of the z-buffer test
# images up to this size get 3 x 3 samples per pixel (measured: GT-warp error 3.1 -> 2.8 grey levels at 32x96 while
# wrong-pose/scale errors rise; no gain at 64x192, so larger images keep one sample per pixel)
SUPERSAMPLE_MAX_PIXELS = 48 * 160
LOD_BIAS = 0.5  # mip level bias: a little blur trades aliasing (frame-to-frame flicker) for texture detail

_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])  # 12 box edges


def kitti_intrinsics(height: int, width: int) -> np.ndarray:
    """KITTI-like pinhole: fx = fy = 0.58 W (about 81 deg horizontal field of view), principal point at the centre."""
    f = 0.58 * width
    return np.array([[f, 0.0, 0.5 * width], [0.0, f, 0.5 * height], [0.0, 0.0, 1.0]])


@dataclass
class FrameRender:
    """One rendered view: image uint8 [H,W,3] RGB, depth float32 [H,W] (0 = sky), surface kind int8 [H,W]
    (SKY/GROUND/BOX/CYLINDER), moving bool [H,W] (pixels of the moving object)."""

    image: np.ndarray
    depth: np.ndarray
    kind: np.ndarray
    moving: np.ndarray


@dataclass
class SynthSequence:
    """A rendered sequence with its ground truth.

    images uint8 [N,H,W,3] RGB; depths float32 [N,H,W] metres (optical z, 0 = sky/invalid); poses float64 [N,4,4]
    camera-to-world, optical axes; K float64 [3,3]; moving bool [N,H,W] pixels of the moving object (all False
    without one); scene: the Scene they were rendered from.
    """

    images: np.ndarray
    depths: np.ndarray
    poses: np.ndarray
    K: np.ndarray
    moving: np.ndarray
    seed: int = 0
    scene: Scene | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def _reproject(self, i: int, j: int):
        """Frame i's pixels moved into frame j with i's depth and the poses: (u, v, z in j, valid in i, in view)."""
        depth = self.depths[i].astype(np.float64)
        height, width = depth.shape
        K = self.K
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        X = (xs - K[0, 2]) / K[0, 0] * depth
        Y = (ys - K[1, 2]) / K[1, 1] * depth
        T = np.linalg.inv(self.poses[j]) @ self.poses[i]  # frame i -> frame j
        R, t = T[:3, :3], T[:3, 3]
        xj = R[0, 0] * X + R[0, 1] * Y + R[0, 2] * depth + t[0]
        yj = R[1, 0] * X + R[1, 1] * Y + R[1, 2] * depth + t[1]
        zj = R[2, 0] * X + R[2, 1] * Y + R[2, 2] * depth + t[2]
        valid = depth > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            u = K[0, 0] * xj / zj + K[0, 2]
            v = K[1, 1] * yj / zj + K[1, 2]
        eps = 1e-6  # a point that maps exactly onto the border pixel stays in view despite rounding
        in_view = valid & (zj > NEAR) & (u >= -eps) & (u <= width - 1 + eps) & (v >= -eps) & (v <= height - 1 + eps)
        return np.clip(u, 0, width - 1), np.clip(v, 0, height - 1), zj, valid, in_view

    def out_of_view(self, i: int, j: int) -> np.ndarray:
        """bool [H,W]: valid pixels of frame i whose 3D point falls outside frame j's image (or behind its camera)."""
        _, _, _, valid, in_view = self._reproject(i, j)
        return valid & ~in_view

    def occlusion(self, i: int, j: int) -> np.ndarray:
        """bool [H,W]: pixels of frame i whose 3D point projects inside frame j but is hidden there (z-buffer test).

        The point's depth in j is compared with j's depth at the 4 pixels around its projection; it is occluded when
        all of them are nearer by more than 1 % (for a plane, the depth inside a pixel square never exceeds the largest
        corner depth, so visible points pass). Sky in j counts as infinitely far. Out-of-view and sky pixels of i are
        not flagged (see out_of_view). Pixels of the moving object are tested like static ones.
        """
        u, v, z, _, in_view = self._reproject(i, j)
        height, width = self.depths[j].shape
        depth_j = np.where(self.depths[j] > 0, self.depths[j].astype(np.float64), np.inf)
        u = np.where(in_view, u, 0.0)
        v = np.where(in_view, v, 0.0)
        x0 = np.floor(u).astype(np.int64)
        y0 = np.floor(v).astype(np.int64)
        x1 = np.minimum(x0 + 1, width - 1)
        y1 = np.minimum(y0 + 1, height - 1)
        farthest = np.maximum(np.maximum(depth_j[y0, x0], depth_j[y0, x1]),
                              np.maximum(depth_j[y1, x0], depth_j[y1, x1]))
        return in_view & (farthest < z * (1.0 - OCCLUSION_TOLERANCE))


@lru_cache(maxsize=8)
def _camera_rays(height: int, width: int, fx: float, fy: float, cx: float, cy: float):
    """Camera-frame ray directions with z = 1 (so ray parameter = optical depth): x [H,W], y [H,W] float32."""
    xs = ((np.arange(width, dtype=np.float64) - cx) / fx).astype(np.float32)
    ys = ((np.arange(height, dtype=np.float64) - cy) / fy).astype(np.float32)
    rays_x = np.broadcast_to(xs[None, :], (height, width)).copy()
    rays_y = np.broadcast_to(ys[:, None], (height, width)).copy()
    rays_x.setflags(write=False)  # cached and shared between calls
    rays_y.setflags(write=False)
    return rays_x, rays_y


def _screen_rects(corners: np.ndarray, pose: np.ndarray, K: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel rectangles [n, 4] (row0, row1, col0, col1; empty when row0 >= row1) covering boxes given by world
    corners [n, 8, 3]. The box is clipped at the near plane first, so the rectangle is exact for boxes that straddle
    the camera plane."""
    R, o = pose[:3, :3], pose[:3, 3]
    cam = (corners - o) @ R  # world -> camera: R^T (p - o)
    a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]
    za, zb = a[..., 2], b[..., 2]
    crosses = (za - NEAR) * (zb - NEAR) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(crosses, (NEAR - za) / (zb - za), 0.0)
    cut = a + frac[..., None] * (b - a)
    pts = np.concatenate([cam, cut], axis=1)
    ok = np.concatenate([cam[..., 2] >= NEAR, crosses], axis=1)
    z = np.where(ok, pts[..., 2], 1.0)
    u = K[0, 0] * pts[..., 0] / z + K[0, 2]
    v = K[1, 1] * pts[..., 1] / z + K[1, 2]
    inf = np.inf
    col0 = np.floor(np.where(ok, u, inf).min(1)) - 1
    col1 = np.ceil(np.where(ok, u, -inf).max(1)) + 2
    row0 = np.floor(np.where(ok, v, inf).min(1)) - 1
    row1 = np.ceil(np.where(ok, v, -inf).max(1)) + 2
    rects = np.stack([np.clip(row0, 0, height), np.clip(row1, 0, height), np.clip(col0, 0, width),
                      np.clip(col1, 0, width)], axis=1)
    rects[~ok.any(1)] = 0
    return rects.astype(np.int64)


def _visible(corners: np.ndarray, pose, K, height, width) -> tuple[np.ndarray, np.ndarray]:
    """Indices of boxes near enough and on screen, with their rectangles."""
    if len(corners) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.int64)
    o = pose[:3, 3]
    centre = corners.mean(1)
    near = np.flatnonzero(np.hypot(centre[:, 0] - o[0], centre[:, 2] - o[2]) < CULL_DISTANCE)
    rects = _screen_rects(corners[near], pose, K, height, width)
    keep = (rects[:, 0] < rects[:, 1]) & (rects[:, 2] < rects[:, 3])
    return near[keep], rects[keep]


def render_frame(scene: Scene, pose: np.ndarray, K: np.ndarray, height: int, width: int,
                 frame_index: int = 0, supersample: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one view: (image uint8 [H,W,3] RGB, depth float32 [H,W], 0 = sky). ``pose``: camera-to-world 4x4
    (optical axes); ``frame_index`` only places the moving object; ``supersample``: see render_layers."""
    out = render_layers(scene, pose, K, height, width, frame_index, supersample)
    return out.image, out.depth


def default_supersample(height: int, width: int) -> int:
    """Samples per pixel side: 3 for tiny images (up to SUPERSAMPLE_MAX_PIXELS), where one sample per pixel aliases
    edges and textures visibly; 1 above."""
    return 3 if height * width <= SUPERSAMPLE_MAX_PIXELS else 1


def render_layers(scene: Scene, pose: np.ndarray, K: np.ndarray, height: int, width: int,
                  frame_index: int = 0, supersample: int | None = None) -> FrameRender:
    """Render one view with its per-pixel layers (see FrameRender).

    supersample (odd, default: default_supersample): the image is the mean of s x s samples per pixel (a box-filtered,
    anti-aliased image like a real sensor's); depth, kind and moving come from the sample at the pixel centre, so the
    depth stays exact at pixel centres.
    """
    s = default_supersample(height, width) if supersample is None else int(supersample)
    if s < 1 or s % 2 == 0:
        raise ConfigError(f"supersample must be an odd integer >= 1, got {supersample!r}")
    K = np.asarray(K, dtype=np.float64)
    if s == 1:
        image, depth, kind, moving = _render(scene, pose, K, height, width, frame_index)
    else:
        # fine grid: sample (s*x + s//2, s*y + s//2) is pixel (x, y)'s centre
        K_fine = K.copy()
        K_fine[:2, :2] *= s
        K_fine[:2, 2] = K[:2, 2] * s + s // 2
        image, depth, kind, moving = _render(scene, pose, K_fine, height * s, width * s, frame_index)
        image = image.reshape(height, s, width, s, 3).mean(axis=(1, 3))
        centre = (slice(s // 2, None, s), slice(s // 2, None, s))
        depth, kind, moving = depth[centre], kind[centre], moving[centre]
    image = np.clip(image * np.float32(255.0) + np.float32(0.5), 0, 255).astype(np.uint8)
    return FrameRender(image=image, depth=np.ascontiguousarray(depth), kind=np.ascontiguousarray(kind),
                       moving=np.ascontiguousarray(moving))


def _render(scene: Scene, pose, K, height: int, width: int, frame_index: int):
    """One ray per pixel: (image float32 [H,W,3] in [0,1], depth float32 [H,W], kind int8 [H,W], moving bool [H,W])."""
    f32 = np.float32
    pose = np.asarray(pose, dtype=np.float64)
    cxr, cyr = _camera_rays(height, width, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    R = pose[:3, :3].astype(f32)
    ox, oy, oz = (float(c) for c in pose[:3, 3])
    dx = R[0, 0] * cxr + R[0, 1] * cyr + R[0, 2]
    dy = R[1, 0] * cxr + R[1, 1] * cyr + R[1, 2]
    dz = R[2, 0] * cxr + R[2, 1] * cyr + R[2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_dy = f32(1.0) / dy

    # ground plane y = GROUND_Y
    t_ground = (f32(GROUND_Y - oy)) * inv_dy
    ground = (dy > 1e-6) & (t_ground > NEAR)
    t_best = np.where(ground, t_ground, f32(np.inf)).astype(f32)
    kind = np.where(ground, GROUND, SKY).astype(np.int8)
    index = np.full((height, width), -1, dtype=np.int32)

    moving = scene.moving_box(frame_index)
    boxes = scene.boxes.concat(moving) if len(moving) else scene.boxes
    corners = np.concatenate([scene.box_corners, moving.corners()]) if len(moving) else scene.box_corners
    ids, rects = _visible(corners, pose, K, height, width)
    for k, (r0, r1, c0, c1) in zip(ids, rects):
        _intersect_box(boxes, int(k), (ox, oy, oz), dx[r0:r1, c0:c1], dy[r0:r1, c0:c1], dz[r0:r1, c0:c1],
                       inv_dy[r0:r1, c0:c1], t_best[r0:r1, c0:c1], kind[r0:r1, c0:c1], index[r0:r1, c0:c1])
    ids, rects = _visible(scene.cylinder_corners, pose, K, height, width)
    for k, (r0, r1, c0, c1) in zip(ids, rects):
        _intersect_cylinder(scene, int(k), (ox, oy, oz), dx[r0:r1, c0:c1], dy[r0:r1, c0:c1], dz[r0:r1, c0:c1],
                            inv_dy[r0:r1, c0:c1], t_best[r0:r1, c0:c1], kind[r0:r1, c0:c1], index[r0:r1, c0:c1])

    image = _sky(dx, dy, dz)
    f_mean = float(np.sqrt(K[0, 0] * K[1, 1]))
    hit = kind != SKY
    t = t_best[hit]
    px, py, pz = ox + t * dx[hit], oy + t * dy[hit], oz + t * dz[hit]
    rays = (dx[hit], dy[hit], dz[hit])
    colours = np.empty((t.size, 3), dtype=f32)
    k_hit, i_hit = kind[hit], index[hit]
    for surface, shade_fn in ((GROUND, _shade_ground), (BOX, _shade_box), (CYLINDER, _shade_cylinder)):
        sel = k_hit == surface
        if sel.any():
            colours[sel] = shade_fn(scene, boxes, i_hit[sel], px[sel], py[sel], pz[sel], t[sel],
                                    tuple(r[sel] for r in rays), pose, f_mean)
    image[hit] = colours
    depth = np.where(hit, t_best, f32(0.0)).astype(f32)
    moving_mask = (kind == BOX) & (index >= len(scene.boxes))
    return image, depth, kind, moving_mask


def _intersect_box(boxes: Boxes, k, origin, dx, dy, dz, inv_dy, t_best, kind, index):
    """Slab test of box k for the rays of one screen rectangle; updates t_best/kind/index views in place."""
    f32 = np.float32
    cxb, cyb, czb = boxes.centre[k]
    c, s = np.cos(boxes.yaw[k]), np.sin(boxes.yaw[k])
    hx, hy, hz = boxes.half[k]
    ox, oy, oz = origin[0] - cxb, origin[1] - cyb, origin[2] - czb
    lox, loz = c * ox - s * oz, s * ox + c * oz  # origin in the box frame
    ldx = f32(c) * dx - f32(s) * dz
    ldz = f32(s) * dx + f32(c) * dz
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ix, iz = f32(1.0) / ldx, f32(1.0) / ldz
        ax, bx = f32(-hx - lox) * ix, f32(hx - lox) * ix
        ay, by = f32(-hy - oy) * inv_dy, f32(hy - oy) * inv_dy
        az, bz = f32(-hz - loz) * iz, f32(hz - loz) * iz
        t_near = np.maximum(np.maximum(np.minimum(ax, bx), np.minimum(ay, by)), np.minimum(az, bz))
        t_far = np.minimum(np.minimum(np.maximum(ax, bx), np.maximum(ay, by)), np.maximum(az, bz))
        hit = (t_near <= t_far) & (t_near > NEAR) & (t_near < t_best)
    t_best[hit] = t_near[hit]
    kind[hit] = BOX
    index[hit] = k


def _intersect_cylinder(scene: Scene, k, origin, dx, dy, dz, inv_dy, t_best, kind, index):
    """Vertical cylinder k (side and top cap) for the rays of one screen rectangle; updates the views in place."""
    f32 = np.float32
    ax_, az_ = scene.cylinders.axis[k]
    r, top = scene.cylinders.radius[k], scene.cylinders.top[k]
    px, pz = origin[0] - ax_, origin[2] - az_
    c = px * px + pz * pz - r * r
    if c <= 0:  # camera inside the pillar
        return
    a = dx * dx + dz * dz
    b = f32(2 * px) * dx + f32(2 * pz) * dz
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = b * b - f32(4 * c) * a
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (f32(2.0) * a)
        y = f32(origin[1]) + t_side * dy
        side = (disc >= 0) & (t_side > NEAR) & (y >= f32(top)) & (y <= f32(GROUND_Y))
        t_hit = np.where(side, t_side, f32(np.inf))
        if origin[1] < top:  # camera above the top: the cap is visible
            t_cap = f32(top - origin[1]) * inv_dy
            qx, qz = f32(px) + t_cap * dx, f32(pz) + t_cap * dz
            cap = (t_cap > NEAR) & (qx * qx + qz * qz <= f32(r * r))
            t_hit = np.where(cap, np.minimum(t_hit, t_cap), t_hit)
    hit = t_hit < t_best
    t_best[hit] = t_hit[hit]
    kind[hit] = CYLINDER
    index[hit] = k


def _sky(dx, dy, dz) -> np.ndarray:
    """Sky gradient by elevation of the ray (float32 [H,W,3] in [0,1])."""
    elevation = -dy / np.sqrt(dx * dx + dy * dy + dz * dz)
    mix = np.clip(elevation * 2.5 + 0.1, 0, 1)[..., None]
    horizon = np.array([0.78, 0.84, 0.9], dtype=np.float32)
    zenith = np.array([0.32, 0.5, 0.82], dtype=np.float32)
    return (horizon + (zenith - horizon) * mix).astype(np.float32)


def _lod(t, cos_incidence, f_mean):
    """Mip level: log2 of texels per pixel (footprint t / f metres, stretched by 1/sqrt(cos) on slanted surfaces)."""
    footprint = t * np.float32(tx.TEXELS_PER_METRE / f_mean) / np.sqrt(np.maximum(cos_incidence, np.float32(0.05)))
    return np.log2(np.maximum(footprint, np.float32(1e-6))) + np.float32(LOD_BIAS)


def _lambert(nx, ny, nz):
    return np.float32(0.5) + np.float32(0.6) * np.maximum(nx * SUN[0] + ny * SUN[1] + nz * SUN[2], 0).astype(np.float32)


def _ray_cos(nx, ny, nz, rays):
    rx, ry, rz = rays
    return np.abs(nx * rx + ny * ry + nz * rz) / np.sqrt(rx * rx + ry * ry + rz * rz)


def _shade_ground(scene: Scene, boxes, _index, px, py, pz, t, rays, pose, f_mean):
    """Road (markings, curb), pavement slabs, and dirt beyond, chosen by the point's road coordinates (s, d)."""
    f32 = np.float32
    s_cam = _camera_arc_length(scene, pose)
    s, d, found = scene.path.road_coordinates(px, pz, s_cam - 40.0, s_cam + CULL_DISTANCE, FACADE_LIMIT)
    ad = np.abs(d)
    road = found & (ad < tx.ROAD_HALF_WIDTH + tx.CURB_WIDTH)
    material = np.where(road, tx.ROAD, np.where(found, tx.PAVEMENT, tx.DIRT)).astype(np.int64)
    tpm = f32(tx.TEXELS_PER_METRE)
    u = np.where(found, s, px).astype(f32) * tpm
    v = np.where(road, d + f32(tx.ROAD_TILE_OFFSET), np.where(found, d, pz)).astype(f32) * tpm
    cos = np.abs(rays[1]) / np.sqrt(rays[0] ** 2 + rays[1] ** 2 + rays[2] ** 2)
    colour = tx.sample(scene.atlas, material, u, v, _lod(t, cos, f_mean))
    return colour * _lambert(f32(0), f32(-1), f32(0))


FACADE_LIMIT = 8.5  # metres from the centre line: beyond, the ground is dirt (alleys, gaps between buildings)


def _camera_arc_length(scene: Scene, pose) -> float:
    """Arc length of the road point nearest the camera (for choosing the road pieces to test)."""
    s, _, found = scene.path.road_coordinates(np.array([pose[0, 3]], np.float32), np.array([pose[2, 3]], np.float32),
                                              -np.inf, np.inf, 1e9)
    return float(s[0]) if found[0] else START_S


def _shade_box(scene: Scene, boxes: Boxes, index, px, py, pz, t, rays, pose, f_mean):
    f32 = np.float32
    centre = boxes.centre[index]
    yaw = boxes.yaw[index]
    c, s = np.cos(yaw).astype(f32), np.sin(yaw).astype(f32)
    half = boxes.half[index].astype(f32)
    qx, qy, qz = (px - centre[:, 0]).astype(f32), (py - centre[:, 1]).astype(f32), (pz - centre[:, 2]).astype(f32)
    lx, lz = c * qx - s * qz, s * qx + c * qz
    rx, ry, rz = np.abs(lx) / half[:, 0], np.abs(qy) / half[:, 1], np.abs(lz) / half[:, 2]
    face_x = (rx >= ry) & (rx >= rz)
    face_z = ~face_x & (rz >= ry)
    face_y = ~face_x & ~face_z
    nlx = np.where(face_x, np.sign(lx), f32(0))
    nlz = np.where(face_z, np.sign(lz), f32(0))
    ny = np.where(face_y, np.sign(qy), f32(0))
    nx, nz = c * nlx + s * nlz, -s * nlx + c * nlz
    height = (f32(GROUND_Y) - py).astype(f32)
    u_off = boxes.u_offset[index].astype(f32)
    u = np.where(face_x, lz, lx) + u_off + np.where(face_z, f32(3.7), f32(0))
    v = np.where(face_y, lz, height)
    tpm = f32(tx.TEXELS_PER_METRE)
    lod = _lod(t, _ray_cos(nx, ny, nz, rays), f_mean)
    colour = tx.sample(scene.atlas, boxes.material[index], u * tpm, v * tpm, lod)
    return colour * boxes.tint[index].astype(f32) * _lambert(nx, ny, nz)[:, None]


def _shade_cylinder(scene: Scene, _boxes, index, px, py, pz, t, rays, pose, f_mean):
    f32 = np.float32
    cyl = scene.cylinders
    axis = cyl.axis[index]
    radius = cyl.radius[index].astype(f32)
    qx, qz = (px - axis[:, 0]).astype(f32), (pz - axis[:, 1]).astype(f32)
    cap = np.abs(py - cyl.top[index]) < 1e-3 * np.maximum(t, 1.0)
    nx = np.where(cap, f32(0), qx / radius)
    nz = np.where(cap, f32(0), qz / radius)
    ny = np.where(cap, f32(-1), f32(0))
    u = np.where(cap, qx, np.arctan2(qz, qx) * radius) + cyl.u_offset[index].astype(f32)
    v = np.where(cap, qz, f32(GROUND_Y) - py)
    tpm = f32(tx.TEXELS_PER_METRE)
    colour = tx.sample(scene.atlas, cyl.material[index], u.astype(f32) * tpm, v.astype(f32) * tpm,
                       _lod(t, _ray_cos(nx, ny, nz, rays), f_mean))
    return colour * cyl.tint[index].astype(f32) * _lambert(nx, ny, nz)[:, None]


def camera_poses(scene: Scene, frames: int, static: bool = False) -> np.ndarray:
    """Camera-to-world poses [N,4,4]: 1 m per frame along the right lane from START_S (all the first one if static)."""
    s = START_S + (0.0 if static else STEP_M) * np.arange(frames)
    return np.stack([scene.camera_pose(float(si)) for si in s])


def check_size(frames: int, height: int, width: int) -> None:
    """ConfigError for sizes the renderer cannot use."""
    for name, value, minimum in (("frames", frames, 2), ("height", height, 1), ("width", width, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_seed(seed: int) -> None:
    """ConfigError unless seed is a non-negative integer."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")


def render_sequence(frames: int, height: int, width: int, seed: int = 0, moving_object: bool = False,
                    static: bool = False) -> SynthSequence:
    """Render ``frames`` views of the street for ``seed`` (see SynthSequence). ``static``: the camera does not move
    (every pose identical). ``moving_object``: an oncoming car in the left lane."""
    check_size(frames, height, width)
    check_seed(seed)
    scene = make_scene(seed, path_length=START_S + STEP_M * frames + CULL_DISTANCE, moving_object=moving_object)
    K = kitti_intrinsics(height, width)
    poses = camera_poses(scene, frames, static)
    images = np.empty((frames, height, width, 3), dtype=np.uint8)
    depths = np.empty((frames, height, width), dtype=np.float32)
    moving = np.zeros((frames, height, width), dtype=bool)
    for n, pose in enumerate(poses):
        out = render_layers(scene, pose, K, height, width, frame_index=n)
        images[n], depths[n], moving[n] = out.image, out.depth, out.moving
    return SynthSequence(images=images, depths=depths, poses=poses, K=K, moving=moving, seed=seed, scene=scene)
