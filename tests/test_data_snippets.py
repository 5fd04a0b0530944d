"""SnippetDataset sample format, exact intrinsics under resize / flip / scale-crop, determinism."""
import cv2
import numpy as np
import pytest
import torch

from bwdp_core.data.augment import (
    AugmentParams,
    apply_augment,
    draw_augment_params,
    flip_horizontal,
    resize_image,
    resize_intrinsics,
    scale_crop,
)
from bwdp_core.data.snippets import SnippetDataset, snippet_offsets
from bwdp_core.data.sources import FrameSource
from bwdp_core.data.synth_source import SynthSource
from bwdp_core.synth.render import render_sequence

H, W = 48, 64


@pytest.fixture(scope="module")
def seq():
    return render_sequence(7, 64, 192, seed=11)


def _ramp(h=H, w=W):
    """R = 4x, G = 4y: the image value tells the source pixel it came from (linear, so bilinear resampling is exact)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([4 * x, 4 * y, np.full_like(x, 100)], axis=2).astype(np.uint8)


def _bilinear(image, x, y):
    return cv2.remap(image.astype(np.float32), np.float32([[x]]), np.float32([[y]]), cv2.INTER_LINEAR)[0, 0]


def _project(K, X):
    p = K @ X
    return p[0] / p[2], p[1] / p[2]


K0 = np.array([[40.0, 0.0, 30.3], [0.0, 42.0, 22.8], [0.0, 0.0, 1.0]])
POINTS = [np.array(v) for v in ([0.1, -0.05, 2.0], [-0.3, 0.2, 3.0], [0.25, 0.15, 1.5], [0.0, 0.0, 5.0])]


def test_resize_intrinsics_matches_opencv_resampling():
    image = _ramp()
    for size in ((4 * H, 4 * W), (H // 2 * 3, W // 2 * 3)):
        big = cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR)
        K = resize_intrinsics(K0, (H, W), size)
        for X in POINTS:
            x0, y0 = _project(K0, X)
            x1, y1 = _project(K, X)
            value = _bilinear(big, x1, y1)
            assert abs(value[0] - 4 * x0) < 0.6 and abs(value[1] - 4 * y0) < 0.6, (size, value, x0, y0)


def test_flip_twice_is_identity_and_flip_mirrors_the_world():
    image, depth = _ramp(), np.random.default_rng(0).random((H, W)).astype(np.float32)
    (once,), K1, d1 = flip_horizontal([image], K0, depth)
    (twice,), K2, d2 = flip_horizontal([once], K1, d1)
    np.testing.assert_array_equal(twice, image)
    np.testing.assert_array_equal(d2, depth)
    np.testing.assert_allclose(K2, K0)
    assert K1[0, 2] == pytest.approx(W - 1 - K0[0, 2])
    for X in POINTS:  # a flipped image is the view of the mirrored world (x -> -x)
        x0, y0 = _project(K0, X)
        x1, y1 = _project(K1, X * [-1, 1, 1])
        value = _bilinear(once, x1, y1)
        assert abs(value[0] - 4 * x0) < 0.6 and abs(value[1] - 4 * y0) < 0.6
        assert d1[int(round(y1)), int(round(x1))] == depth[int(round(y0)), int(round(x0))]


@pytest.mark.parametrize("scale, offset", [(1.5, (7, 5)), (2.0, (30, 0)), (1.1, (3, 2))])
def test_scale_crop_keeps_projection(scale, offset):
    image = _ramp()
    depth = np.fromfunction(lambda y, x: 1 + y * W + x, (H, W), dtype=np.float32)  # unique value per pixel
    (out,), K, d = scale_crop([image], K0, depth, scale, offset)
    assert out.shape == image.shape and d.shape == depth.shape
    for X in POINTS:
        x0, y0 = _project(K0, X)
        x1, y1 = _project(K, X)
        if not (0 <= x1 <= W - 1 and 0 <= y1 <= H - 1):
            continue
        value = _bilinear(out, x1, y1)
        assert abs(value[0] - 4 * x0) < 0.6 and abs(value[1] - 4 * y0) < 0.6, (value, x0, y0)
    # nearest-neighbour depth: the depth pixel under the projection came from the source pixel under it
    for yy in range(0, H, 7):
        for xx in range(0, W, 9):
            src = d[yy, xx] - 1
            sx, sy = src % W, src // W
            # the crop pixel (xx, yy) back in source coordinates, via K
            bx = (xx - K[0, 2]) / K[0, 0] * K0[0, 0] + K0[0, 2]
            by = (yy - K[1, 2]) / K[1, 1] * K0[1, 1] + K0[1, 2]
            assert abs(sx - bx) <= 0.5 + 1e-6 and abs(sy - by) <= 0.5 + 1e-6


def test_sample_format_and_reference_order(seq):
    source = SynthSource(seq)
    ds = SnippetDataset([source], 32, 96, snippet_length=5, stride=1)
    assert snippet_offsets(5, 1) == [-2, -1, 1, 2] and snippet_offsets(3, 2) == [-2, 2]
    assert len(ds) == len(seq.images) - 4 and ds.has_depth
    item = ds[1]
    assert item["tgt_img"].shape == (3, 32, 96) and item["tgt_img"].dtype == torch.float32
    assert item["ref_imgs"].shape == (4, 3, 32, 96)
    assert item["intrinsics"].shape == (3, 3) and item["intrinsics"].dtype == torch.float32
    assert item["depth_gt"].shape == (1, 32, 96) and item["depth_gt"].dtype == torch.float32
    assert item["index"] == 1 and item["frame_index"] == 3 and item["source_index"] == 0
    assert 0.0 <= item["tgt_img"].min() and item["tgt_img"].max() <= 1.0
    for k, frame in enumerate([1, 2, 4, 5]):
        expected = torch.from_numpy(resize_image(seq.images[frame], (32, 96))).permute(2, 0, 1).float() / 255
        torch.testing.assert_close(item["ref_imgs"][k], expected)
    torch.testing.assert_close(item["intrinsics"],
                               torch.tensor(resize_intrinsics(seq.K, (64, 192), (32, 96)), dtype=torch.float32))
    strided = SnippetDataset([source], 32, 96, snippet_length=3, stride=3)
    assert len(strided) == 1 and strided[0]["frame_index"] == 3


class _NoDepth(FrameSource):
    def __init__(self, images, K):
        self.images, self.intrinsics, self.image_size, self.name = images, K, images.shape[1:3], "nodepth"

    def __len__(self):
        return len(self.images)

    def load_image(self, i):
        return self.images[i]


def test_mixed_sources_always_collate(seq):
    ds = SnippetDataset([SynthSource(seq), _NoDepth(seq.images, seq.K)], 32, 96)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    assert batch["depth_gt"].shape == (len(ds), 1, 32, 96)
    no_depth = batch["source_index"] == 1
    assert batch["depth_gt"][no_depth].abs().sum() == 0 and batch["depth_gt"][~no_depth].gt(0).any()
    only = SnippetDataset([_NoDepth(seq.images, seq.K)], 32, 96)
    assert "depth_gt" not in only[0]


class _Counting(_NoDepth):
    """A source that counts how often each frame is decoded."""

    def __init__(self, images, K):
        super().__init__(images, K)
        self.loads = {}

    def load_image(self, i):
        self.loads[i] = self.loads.get(i, 0) + 1
        return self.images[i]


def test_frame_cache_decodes_each_frame_once_and_changes_no_sample(seq):
    frame_bytes = 32 * 96 * 3
    plain_src, cached_src, small_src = (_Counting(seq.images, seq.K) for _ in range(3))
    plain = SnippetDataset([plain_src], 32, 96, augment=True, seed=2)
    cached = SnippetDataset([cached_src], 32, 96, augment=True, seed=2, cache_bytes=len(seq.images) * frame_bytes)
    small = SnippetDataset([small_src], 32, 96, augment=True, seed=2, cache_bytes=2 * frame_bytes)
    for epoch in range(2):
        for ds in (plain, cached, small):
            ds.set_epoch(epoch)
        for i in range(len(plain)):
            a, b, c = plain[i], cached[i], small[i]
            for key in ("tgt_img", "ref_imgs", "intrinsics"):  # augmentation in place must not reach the cache
                assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), (epoch, i, key)
    # 5 snippets x 3 frames x 2 epochs = 30 reads of 7 frames: all decoded once with the cache, every read without
    assert sum(plain_src.loads.values()) == 30 and set(cached_src.loads.values()) == {1}
    assert cached._cached_bytes == len(seq.images) * frame_bytes
    # a cache of two frames evicts (least recently used first) and stays within its size
    assert 7 < sum(small_src.loads.values()) < 30 and small._cached_bytes <= 2 * frame_bytes


def test_augmentation_is_deterministic_per_seed_epoch_index(seq):
    ds = SnippetDataset([SynthSource(seq)], 32, 96, augment=True, seed=3)
    a, b = ds[2], ds[2]
    torch.testing.assert_close(a["tgt_img"], b["tgt_img"], rtol=0, atol=0)
    draws = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        draws.add(tuple(ds[2]["intrinsics"].flatten().tolist()))
    assert len(draws) > 1
    ds.set_epoch(0)
    torch.testing.assert_close(ds[2]["intrinsics"], a["intrinsics"])
    other = SnippetDataset([SynthSource(seq)], 32, 96, augment=True, seed=4)
    assert not torch.equal(other[2]["intrinsics"], a["intrinsics"]) or not torch.equal(other[2]["tgt_img"],
                                                                                       a["tgt_img"])


def _warp_error(tgt, ref, depth, K, T_ref_tgt):
    """Median |tgt - ref warped into tgt| over pixels with depth, using depth + pose + K (numpy, bilinear)."""
    h, w = depth.shape
    ys, xs = np.nonzero(depth > 0)
    rays = np.linalg.inv(K) @ np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    X = rays * depth[ys, xs]
    Xr = T_ref_tgt[:3, :3] @ X + T_ref_tgt[:3, 3:4]
    p = K @ Xr
    u, v = p[0] / p[2], p[1] / p[2]
    inside = (Xr[2] > 0.1) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    warped = cv2.remap(ref, u[inside].astype(np.float32)[None], v[inside].astype(np.float32)[None],
                       cv2.INTER_LINEAR)[0]
    return float(np.median(np.abs(warped - tgt[ys[inside], xs[inside]])))


def test_augmented_snippet_is_geometrically_consistent(seq):
    """After resize + scale-crop (+ flip), warping a reference frame into the target with the GT depth, the GT pose and
    the sample's K reproduces the target; the un-updated K does not."""
    source = SynthSource(seq)
    ds = SnippetDataset([source], 48, 144, augment=True, seed=0, max_scale=1.3)
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    checked = {True: 0, False: 0}
    errors_good, errors_plain = [], []
    for index in range(len(ds)):
        for epoch in range(3):
            ds.set_epoch(epoch)
            item = ds[index]
            rng = np.random.default_rng([0, epoch, index])
            params = draw_augment_params(rng, (48, 144), 1.3)
            t = item["frame_index"]
            T = np.linalg.inv(seq.poses[t + 1]) @ seq.poses[t]  # target camera -> frame t+1 camera
            if params.flip:
                T = mirror @ T @ mirror
            tgt = item["tgt_img"].permute(1, 2, 0).numpy()
            ref = np.ascontiguousarray(item["ref_imgs"][1].permute(1, 2, 0).numpy())
            depth = item["depth_gt"][0].numpy()
            K = item["intrinsics"].numpy().astype(np.float64)
            good = _warp_error(tgt, ref, depth, K, T)
            plain_K = resize_intrinsics(seq.K, (64, 192), (48, 144))
            assert good < 0.03, (index, epoch, params, good)
            if params.scale > 1.1:
                errors_good.append(good)
                errors_plain.append(_warp_error(tgt, ref, depth, plain_K, T))
            checked[params.flip] += 1
    assert checked[True] and checked[False] and len(errors_good) >= 3
    # smooth synthetic textures make photometric errors small overall; the un-updated K is still clearly worse
    assert np.mean(errors_plain) > 1.2 * np.mean(errors_good), (np.mean(errors_plain), np.mean(errors_good))


class _StaticRamp(FrameSource):
    """Identical ramp frames (R = 4x, G = 4y at native size) and a depth that encodes the pixel index."""

    def __init__(self):
        self.name, self.intrinsics, self.image_size = "ramp", K0, (H, W)

    def __len__(self):
        return 5

    @property
    def has_depth(self):
        return True

    def load_image(self, i):
        return _ramp()

    def load_depth(self, i):
        return np.fromfunction(lambda y, x: 1 + y * W + x, (H, W), dtype=np.float32)


def test_dataset_applies_one_transform_to_all_frames_and_depth():
    ds = SnippetDataset([_StaticRamp()], H, W, snippet_length=5, augment=True, seed=1, max_scale=1.5)
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[0]
        for ref in item["ref_imgs"]:
            torch.testing.assert_close(ref, item["tgt_img"], rtol=0, atol=0)
        K = item["intrinsics"].double().numpy()
        img = (item["tgt_img"] * 255).permute(1, 2, 0).numpy()
        depth = item["depth_gt"][0].numpy()
        for v in range(2, H - 2, 5):
            for u in range(2, W - 2, 7):
                # native pixel seen at (u, v): from the ramp, and from K (the ray through (u, v) in the native camera)
                xs, ys = img[v, u, 0] / 4, img[v, u, 1] / 4
                ray = np.linalg.inv(K) @ [u, v, 1.0]
                # a flipped sample sees the mirrored world: pick the reading that the ramp agrees with
                mirrored = abs(K0[0, 0] * -ray[0] / ray[2] + K0[0, 2] - xs) < \
                    abs(K0[0, 0] * ray[0] / ray[2] + K0[0, 2] - xs)
                rx = -ray[0] if mirrored else ray[0]
                bx, by = K0[0, 0] * rx / ray[2] + K0[0, 2], K0[1, 1] * ray[1] / ray[2] + K0[1, 2]
                assert abs(bx - xs) < 0.3 and abs(by - ys) < 0.3, (epoch, u, v, bx, xs, by, ys)
                src = int(depth[v, u]) - 1
                assert abs(src % W - bx) <= 0.5 + 1e-6 and abs(src // W - by) <= 0.5 + 1e-6


def test_apply_augment_on_all_frames_identically():
    frames = [_ramp(), _ramp()[::-1].copy()]
    params = AugmentParams(flip=True, scale=1.4, offset=(5, 3))
    out, K, _ = apply_augment(frames, K0, None, params)
    ref, Kr, _ = scale_crop(frames, K0, None, 1.4, (5, 3))
    ref, Kr, _ = flip_horizontal(ref, Kr)
    for a, b in zip(out, ref):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(K, Kr)
