"""bwdp synth: the procedural street renderer, its ground truth, the KITTI-layout writer and the CLI."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bwdp_core.errors import ConfigError
from bwdp_core.synth import (
    SynthSequence,
    kitti_intrinsics,
    make_scene,
    read_poses,
    render_frame,
    render_layers,
    render_sequence,
    write_kitti_odometry,
)
from bwdp_core.synth.render import GROUND
from bwdp_core.synth.scene import CAMERA_HEIGHT

REPO = Path(__file__).resolve().parents[1]
H, W = 32, 96


@pytest.fixture(scope="module")
def seq() -> SynthSequence:
    return render_sequence(8, 48, 144, seed=0)


def bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Plain numpy bilinear sampler (the test's own, independent of bwdp_core.geometry)."""
    height, width = image.shape[:2]
    x0 = np.clip(np.floor(u).astype(np.int64), 0, width - 2)
    y0 = np.clip(np.floor(v).astype(np.int64), 0, height - 2)
    fx, fy = (u - x0)[..., None], (v - y0)[..., None]
    img = image.astype(np.float64)
    return (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
            + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)


def warp_error(images, depths, poses, K, i, j, mask_fn=None):
    """Mean |I_i - I_j(warp)| over pixels of i that land inside j (and pass mask_fn), warping with depth_i and poses."""
    depth = depths[i].astype(np.float64)
    height, width = depth.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    pts = np.stack([(xs - K[0, 2]) / K[0, 0] * depth, (ys - K[1, 2]) / K[1, 1] * depth, depth, np.ones_like(depth)])
    T = np.linalg.inv(poses[j]) @ poses[i]
    q = np.einsum("ab,bhw->ahw", T, pts)
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = K[0, 0] * q[0] / q[2] + K[0, 2], K[1, 1] * q[1] / q[2] + K[1, 2]
    ok = (depth > 0) & (q[2] > 0.1) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    if mask_fn is not None:
        ok &= mask_fn
    return float(np.abs(bilinear(images[j], u[ok], v[ok]) - images[i][ok]).mean()), int(ok.sum())


def test_shapes_and_dtypes(seq):
    n, h, w = 8, 48, 144
    assert seq.images.shape == (n, h, w, 3) and seq.images.dtype == np.uint8
    assert seq.depths.shape == (n, h, w) and seq.depths.dtype == np.float32
    assert seq.poses.shape == (n, 4, 4) and seq.poses.dtype == np.float64
    assert seq.K.shape == (3, 3) and seq.K.dtype == np.float64
    assert seq.occlusion(0, 1).shape == (h, w) and seq.occlusion(0, 1).dtype == bool
    assert seq.out_of_view(0, 1).dtype == bool
    np.testing.assert_allclose(seq.poses[0], np.eye(4), atol=1e-9)  # KITTI convention: first pose = identity
    assert np.isfinite(seq.depths).all() and (seq.depths >= 0).all()
    # sky on top, ground at the bottom; images are not flat
    assert (seq.depths[:, -1] > 0).all()
    assert (seq.depths[0] == 0).any()
    assert seq.images.std() > 20


def test_deterministic_per_seed():
    a = render_sequence(3, H, W, seed=5, moving_object=True)
    b = render_sequence(3, H, W, seed=5, moving_object=True)
    c = render_sequence(3, H, W, seed=6, moving_object=True)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.depths, b.depths)
    assert np.array_equal(a.poses, b.poses)
    assert not np.array_equal(a.images, c.images)


def test_longer_sequence_extends_shorter():
    short, long = render_sequence(2, H, W, seed=2), render_sequence(4, H, W, seed=2)
    assert np.array_equal(short.images, long.images[:2])


def test_ground_depth_matches_plane_intersection():
    scene = make_scene(1, path_length=120.0)
    K = kitti_intrinsics(H, W)
    pose = scene.camera_pose(40.0)  # yaw only: the camera's y axis is the world's (down)
    out = render_layers(scene, pose, K, H, W)
    ground = out.kind == GROUND
    assert ground.sum() > 0.2 * H * W
    rows = np.broadcast_to(np.arange(H)[:, None], (H, W))
    with np.errstate(divide="ignore"):
        expected = CAMERA_HEIGHT / ((rows - K[1, 2]) / K[1, 1])  # z where the ray meets the plane 1.6 m below
    np.testing.assert_allclose(out.depth[ground], expected[ground], rtol=1e-4)
    assert (out.depth[out.kind != 0] > 0).all() and (out.depth[out.kind == 0] == 0).all()


def test_render_frame_from_chosen_pose_matches_sequence(seq):
    image, depth = render_frame(seq.scene, seq.poses[3], seq.K, 48, 144, frame_index=3)
    assert np.array_equal(image, seq.images[3]) and np.array_equal(depth, seq.depths[3])


def test_supersampling_keeps_depth_exact_at_pixel_centres():
    scene = make_scene(0, path_length=100.0)
    pose, K = scene.camera_pose(45.0), kitti_intrinsics(H, W)
    one, three = render_layers(scene, pose, K, H, W, supersample=1), render_layers(scene, pose, K, H, W, supersample=3)
    same = np.isclose(one.depth, three.depth, rtol=1e-5)
    assert same.mean() > 0.995  # (a ray grazing an edge may flip on the last bit)
    assert ((one.depth == 0) == (three.depth == 0)).mean() > 0.995
    diff = np.abs(one.image.astype(int) - three.image.astype(int))
    assert 0 < diff.mean() < 20  # same scene, box-filtered
    with pytest.raises(ConfigError):
        render_layers(scene, pose, K, H, W, supersample=2)


def test_warp_with_ground_truth_reproduces_frame(seq):
    for i in range(0, 6, 2):
        visible = ~seq.occlusion(i, i + 1)
        good, count = warp_error(seq.images, seq.depths, seq.poses, seq.K, i, i + 1, visible)
        assert count > 0.5 * seq.depths[i].size  # consecutive frames overlap strongly
        assert good < 6.0
        wrong_pose = seq.poses.copy()
        wrong_pose[i + 1, :3, 3] += 0.5 * wrong_pose[i + 1, :3, 2]  # half a metre further forward
        bad_pose, _ = warp_error(seq.images, seq.depths, wrong_pose, seq.K, i, i + 1, visible)
        bad_scale, _ = warp_error(seq.images, seq.depths * 1.5, seq.poses, seq.K, i, i + 1, visible)
        assert bad_pose > 1.5 * good and bad_scale > 1.5 * good


def test_occlusion_nonempty_with_occluders_and_empty_when_static(seq):
    total = sum(int(seq.occlusion(i, i + 1).sum()) for i in range(len(seq) - 1))
    assert total > 0
    assert seq.out_of_view(0, 1).any()  # moving forward: the image border leaves the view
    static = render_sequence(3, H, W, seed=0, static=True)
    assert np.allclose(static.poses, static.poses[0])
    assert np.array_equal(static.images[0], static.images[2])
    assert not static.occlusion(0, 1).any() and not static.out_of_view(0, 2).any()


@pytest.mark.parametrize("seed", [0, 5])
def test_short_sequences_from_the_start_have_occlusions(seed):
    seq = render_sequence(3, H, W, seed=seed)
    for i, j in ((0, 1), (1, 2), (1, 0)):
        assert seq.occlusion(i, j).sum() >= 0.004 * H * W


def test_occluded_pixels_are_behind_something():
    """An occluded pixel's point lies behind j's surface: j sees it nearer than the point's depth."""
    seq = render_sequence(4, 64, 192, seed=3)
    occ = seq.occlusion(0, 2)
    assert occ.sum() > 0
    u, v, z, _, _ = seq._reproject(0, 2)
    seen = seq.depths[2][np.round(v[occ]).astype(int), np.round(u[occ]).astype(int)]
    seen = np.where(seen > 0, seen, np.inf)
    assert np.mean(seen < z[occ]) > 0.9


def test_moving_object_moves_and_is_marked():
    seq = render_sequence(4, 64, 192, seed=0, moving_object=True)
    assert seq.moving.any()
    assert seq.moving[0].sum() != seq.moving[3].sum() or not np.array_equal(seq.moving[0], seq.moving[3])
    assert not render_sequence(2, H, W, seed=0).moving.any()


def test_path_turns_and_steps_one_metre():
    scene = make_scene(0, path_length=200.0)
    from bwdp_core.synth.render import camera_poses
    poses = camera_poses(scene, 80)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert np.all(np.abs(steps - 1.0) < 0.1)
    yaw = np.degrees(np.arctan2(poses[:, 0, 2], poses[:, 2, 2]))
    assert np.ptp(yaw) > 15.0
    assert np.allclose(poses[:, 1, 3], 0.0) and np.allclose(poses[:, 1, 1], 1.0)  # flat road, camera 1.6 m up


def test_write_kitti_odometry_layout_and_round_trip(tmp_path):
    import cv2

    seq = render_sequence(3, H, W, seed=4)
    seq_dir = write_kitti_odometry(seq, tmp_path, sequence="07")
    assert seq_dir == tmp_path / "sequences" / "07"
    for i in range(3):
        bgr = cv2.imread(str(seq_dir / "image_2" / f"{i:06d}.png"), cv2.IMREAD_COLOR)
        assert np.array_equal(bgr[..., ::-1], seq.images[i])
        depth = np.load(seq_dir / "depth" / f"{i:06d}.npy")
        assert depth.dtype == np.float32 and np.array_equal(depth, seq.depths[i])
    np.testing.assert_allclose(read_poses(tmp_path / "poses" / "07.txt"), seq.poses, atol=1e-9)
    calib = dict(line.split(":", 1) for line in (seq_dir / "calib.txt").read_text().splitlines())
    assert {"P0", "P1", "P2", "P3", "Tr"} <= set(calib)
    P2 = np.array(calib["P2"].split(), dtype=float).reshape(3, 4)
    np.testing.assert_allclose(P2[:, :3], seq.K) and np.testing.assert_allclose(P2[:, 3], 0)
    times = np.loadtxt(seq_dir / "times.txt")
    assert times.shape == (3,) and np.all(np.diff(times) > 0)


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "bwdp_core.commands.cli", "synth", *args], capture_output=True,
                          text=True,
                          timeout=120, cwd=REPO, env=env)


def test_cli_writes_layout(tmp_path):
    result = _cli("--out", str(tmp_path), "--frames", "3", "--height", "24", "--width", "64", "--seed", "1",
                  "--moving-object")
    assert result.returncode == 0, result.stderr
    assert "3 frames" in result.stdout and len(result.stdout.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "sequences" / "00" / "image_2").iterdir()) == [
        "000000.png", "000001.png", "000002.png"]
    assert len(list((tmp_path / "sequences" / "00" / "depth").glob("*.npy"))) == 3
    assert read_poses(tmp_path / "poses" / "00.txt").shape == (3, 4, 4)
    # a shorter run into the same folder leaves no stale frames behind
    assert _cli("--out", str(tmp_path), "--frames", "2", "--height", "24", "--width", "64").returncode == 0
    assert len(list((tmp_path / "sequences" / "00" / "image_2").glob("*.png"))) == 2
    assert len(list((tmp_path / "sequences" / "00" / "depth").glob("*.npy"))) == 2


@pytest.mark.parametrize("bad", [("--frames", "1"), ("--height", "0"), ("--width", "-3"), ("--seed", "-1")])
def test_cli_rejects_bad_sizes(tmp_path, bad):
    args = {"--out": str(tmp_path), "--frames": "3", "--height": "24", "--width": "64", "--seed": "0"}
    args[bad[0]] = bad[1]
    result = _cli(*(x for kv in args.items() for x in kv))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and bad[0].lstrip("-") in result.stderr


def test_render_sequence_rejects_bad_sizes():
    with pytest.raises(ConfigError):
        render_sequence(1, H, W)
    with pytest.raises(ConfigError):
        render_sequence(3, 0, W)
    with pytest.raises(ConfigError):
        render_sequence(3, H, W, seed=-2)
