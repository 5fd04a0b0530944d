"""Metric scale from the camera height: the ground-plane fit on rendered depth, the temporal filter, and the pipeline
and `bwdp vo` applying it (networks replaced by an oracle knowing the rendered depth and motion, at a wrong scale)."""
import hashlib

import cv2
import numpy as np
import pytest
import torch

from bwdp_core.commands import cli
from bwdp_core.errors import ConfigError
from bwdp_core.eval.trajectory_io import read_trajectory
from bwdp_core.frames import OPTICAL_RPY, transform_from_xyz_rpy
from bwdp_core.inference.ground_scale import (
    GroundScale,
    GroundScaleConfig,
    ScaleFilter,
    backproject_ground_region,
    fit_ground_plane,
    ground_up_vector,
    motion_aligned_normal,
    plane_distance_from_homography,
    plane_homography,
)
from bwdp_core.inference.vo_pipeline import VisualOdometry, VOConfig
from bwdp_core.synth.render import render_sequence
from bwdp_core.synth.scene import CAMERA_HEIGHT

MOUNT = transform_from_xyz_rpy((0, 0, 0), OPTICAL_RPY)  # forward-looking camera, as the renderer's
UNIT = 0.37  # the oracle's depth unit: 1 unit = 1 / 0.37 m, i.e. the true metres-per-unit scale is 1 / UNIT


@pytest.fixture(scope="module")
def street():
    return render_sequence(12, 64, 224, seed=3)


@pytest.fixture(scope="module")
def fine_street():
    """The road homography needs road texture: at 64x224 the renderer's tiled road texture repeats within the search
    range of the distance (measured: 1.19-1.64 m for 1.6 m), at 192x640 it does not (1.57-1.62 m)."""
    return render_sequence(12, 192, 640, seed=3)


FLAT_K = np.array([[300.0, 0, 320.0], [0, 300.0, 96.0], [0, 0, 1]])


def _ground_texture(seed=0, contrast=1.0, texel=0.05, half_width=20.0, length=80.0):
    """A random ground texture (5 cm texels over 40 x 80 m), blurred more along the road (rows): the ground is
    foreshortened there, and point-sampled texels would alias. ``contrast`` scales it about its mean."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (int(length / texel), int(2 * half_width / texel))),
                               (0, 0), sigmaX=3.0, sigmaY=10.0)
    return (texture.mean() + contrast * (texture - texture.mean())).astype(np.float32)


def _plane_view(texture, R, origin, distance, texel=0.05, half_width=20.0):
    """float32 grey [192, 640] of a horizontal plane ``distance`` below the first camera, seen from a camera at
    ``origin`` with rotation R (both in the first camera's optical frame), and the lateral coordinate x (m, first
    camera's frame) of the plane point each pixel sees (NaN above the horizon, where the image is 0)."""
    ys, xs = np.mgrid[0:192, 0:640].astype(np.float64)
    rays = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ np.linalg.inv(FLAT_K).T @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (distance - origin[1]) / rays[..., 1]
    s = np.where((rays[..., 1] > 0) & (s > 0), s, np.nan)
    x = origin[0] + s * rays[..., 0]
    u, v = (x + half_width) / texel, (origin[2] + s * rays[..., 2]) / texel
    image = cv2.remap(texture, np.nan_to_num(u, nan=-1).astype(np.float32),
                      np.nan_to_num(v, nan=-1).astype(np.float32), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return image, x


def _textured_pair(T_prev_cur, distance=1.5, seed=0):
    """Two views of a textured ground plane ``distance`` below the first camera: the previous frame and the current
    one after the camera moved by T_prev_cur (optical axes), float32 grey [192, 640]; above the horizon 0."""
    texture = _ground_texture(seed)
    return (_plane_view(texture, np.eye(3), np.zeros(3), distance)[0],
            _plane_view(texture, T_prev_cur[:3, :3], T_prev_cur[:3, 3], distance)[0])


def _forward(metres, yaw_deg=0.0):
    T = transform_from_xyz_rpy((0, 0, 0), (0, np.deg2rad(yaw_deg), 0))  # about optical y (down): a turn
    T[2, 3] = metres
    return T


def test_plane_homography_maps_a_ground_point_to_where_the_moved_camera_sees_it():
    T = _forward(0.8, 3.0)
    X_prev = np.array([0.7, 1.5, 6.0])                 # on the ground 1.5 below the camera: n . X + d = 0
    X_cur = np.linalg.inv(T) @ np.append(X_prev, 1.0)
    H = plane_homography(FLAT_K, T, np.array([0.0, -1.0, 0.0]), 1.5)
    p = H @ (FLAT_K @ X_prev)
    assert np.allclose(p[:2] / p[2], (FLAT_K @ X_cur[:3])[:2] / X_cur[2], atol=1e-9)


def test_homography_recovers_the_plane_distance_in_the_translations_unit():
    cfg = GroundScaleConfig(camera_height=1.5)
    up = np.array([0.0, -1.0, 0.0])
    prev, cur = _textured_pair(_forward(0.8, 2.0))
    d = plane_distance_from_homography(prev, cur, FLAT_K, _forward(0.8, 2.0), up, d0=2.5, cfg=cfg)  # a poor guess
    assert d is not None and abs(d / 1.5 - 1) < 0.01
    half = _forward(0.4, 2.0)                            # the same motion in a unit twice as large: half the distance
    assert abs(plane_distance_from_homography(prev, cur, FLAT_K, half, up, d0=1.0, cfg=cfg) / 0.75 - 1) < 0.01
    still = plane_distance_from_homography(prev, prev, FLAT_K, _forward(0.0), up, d0=1.5, cfg=cfg)
    assert still is None                                 # no motion, no parallax: nothing to measure
    noise = np.random.default_rng(1).uniform(0, 255, prev.shape).astype(np.float32)
    assert plane_distance_from_homography(prev, noise, FLAT_K, _forward(0.8), up, d0=1.5, cfg=cfg) is None


def test_a_raised_strip_in_one_column_does_not_pull_the_road_distance():
    """A kerb-like strip 0.3 m above the road (x < -0.9 m, twice the road's contrast) covers most of the patch's left
    column. Aligned as one patch, its texture wins and the distance reads 9 % short; the median of the three columns
    keeps the road's."""
    T, up = _forward(0.8), np.array([0.0, -1.0, 0.0])
    road, kerb = _ground_texture(0), _ground_texture(5, contrast=2.0)

    def view(R, origin):
        ground = _plane_view(road, R, origin, 1.5)[0]
        raised, x = _plane_view(kerb, R, origin, 1.2)
        return np.where((x > -4.0) & (x < -0.9), raised, ground).astype(np.float32)

    prev, cur = view(np.eye(3), np.zeros(3)), view(T[:3, :3], T[:3, 3])
    whole = plane_distance_from_homography(prev, cur, FLAT_K, T, up, 1.5, GroundScaleConfig(1.5, patch_columns=1))
    columns = plane_distance_from_homography(prev, cur, FLAT_K, T, up, 1.5, GroundScaleConfig(1.5))
    assert whole is not None and whole / 1.5 < 0.95
    assert columns is not None and abs(columns / 1.5 - 1) < 0.01


def test_patch_columns_must_be_positive():
    with pytest.raises(ConfigError, match="patch_columns"):
        GroundScaleConfig(camera_height=1.5, patch_columns=0).validate()


def test_road_normal_is_up_made_perpendicular_to_the_travel_direction():
    up = np.array([0.0, -1.0, 0.0])
    pitch = np.deg2rad(1.5)                             # camera pitched down: travel points up in the image
    travel = np.array([0.0, -np.sin(pitch), np.cos(pitch)])
    normal = motion_aligned_normal(up, [travel] * 5, max_tilt_deg=15.0)
    assert abs(normal @ travel) < 1e-12 and np.degrees(np.arccos(normal @ up)) == pytest.approx(1.5)
    assert np.array_equal(motion_aligned_normal(up, [], 15.0), up)                      # nothing seen yet
    steep = np.array([0.0, -np.sin(0.5), np.cos(0.5)])                                  # 29 deg: not a road
    assert np.array_equal(motion_aligned_normal(up, [steep], 15.0), up)


def _depth_in_units(depth_m):
    depth = depth_m * UNIT
    depth[depth <= 0] = np.nan  # sky
    return depth


def test_up_vector_of_the_default_mount_is_optical_minus_y():
    assert np.allclose(ground_up_vector(MOUNT), [0, -1, 0], atol=1e-12)


def test_recovers_the_known_camera_height_from_rendered_depth_within_2_percent(street):
    scale = GroundScale(GroundScaleConfig(camera_height=CAMERA_HEIGHT), MOUNT)
    for depth in street.depths:
        measured = scale.measure(_depth_in_units(depth), street.K)
        assert measured is not None
        assert abs(measured * UNIT - 1.0) < 0.02
        assert abs(scale.last_plane.distance / UNIT - CAMERA_HEIGHT) < 0.02 * CAMERA_HEIGHT


def test_pitched_mount_plane_is_found_only_with_the_right_mount():
    """A camera pitched 12 deg down over flat ground at 1.5 m: the fit needs the mount's pitch to accept the plane."""
    h, w = 64, 224
    K = np.array([[120.0, 0, 112.0], [0, 120.0, 32.0], [0, 0, 1]])
    pitch = np.deg2rad(12.0)
    mount = transform_from_xyz_rpy((0, 0, 1.5), (OPTICAL_RPY[0], pitch, OPTICAL_RPY[2]))
    up = ground_up_vector(mount)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], axis=-1)
    t = -1.5 / (rays @ up)                 # ray z = 1, so t is the optical depth at which the ray meets the ground
    depth = np.where(t > 0, t, np.nan)
    cfg = GroundScaleConfig(camera_height=1.5, max_tilt_deg=5.0)
    points = backproject_ground_region(depth, K, cfg.region_top, cfg.region_side)
    plane = fit_ground_plane(points, up, cfg)
    assert plane is not None and abs(plane.distance - 1.5) < 1e-6
    assert fit_ground_plane(points, ground_up_vector(MOUNT), cfg) is None  # level mount: 12 deg > 5 deg tilt


def test_keeps_the_previous_scale_on_frames_without_ground():
    scale = GroundScale(GroundScaleConfig(camera_height=1.5), MOUNT)
    T = _forward(0.8 * UNIT)                  # the motion in a network unit of 1 / UNIT m
    prev, cur = _textured_pair(_forward(0.8))
    ground = np.full((192, 640), np.nan)
    ground[100:] = 1.5 * UNIT * FLAT_K[1, 1] / (np.arange(100, 192) - FLAT_K[1, 2])[:, None]  # depth of the plane

    def step(depth):
        scale.measure(depth, FLAT_K)
        return scale.update_motion(prev, cur, FLAT_K, T)

    good = step(ground)
    assert good.initialised and good.frames_since_good == 0 and abs(good.scale * UNIT - 1) < 0.01
    wall = np.full((192, 640), 3.0)           # a wall 3 units ahead fills the view: a plane, but vertical
    sky = np.full((192, 640), np.nan)         # nothing valid at all
    statuses = [step(wall), step(sky), step(wall)]
    assert [s.measurement for s in statuses] == [None, None, None]
    assert [s.scale for s in statuses] == [good.scale] * 3
    assert [s.frames_since_good for s in statuses] == [1, 2, 3]
    events = [s.event for s in statuses]
    assert events[0] and "no ground plane" in events[0] and events[1:] == [None, None]  # said once
    back = step(ground)
    assert back.frames_since_good == 0 and "visible again" in back.event


def test_filter_never_jumps_rejects_an_outlier_and_follows_a_real_change():
    f = ScaleFilter(window=10, max_step=0.02, gate=0.25)
    assert f.update(1.0).scale == 1.0                              # first fit sets the scale
    assert f.update(5.0).scale == 1.0                              # one wild measurement: rejected
    scales = [f.update(1.2).scale for _ in range(40)]               # the scale really changed by 20 %
    steps = np.abs(np.diff([1.0, *scales])) / np.array([1.0, *scales[:-1]])
    assert np.all(steps <= 0.02 + 1e-12)                            # never more than max_step per frame
    assert abs(scales[-1] - 1.2) < 1e-9                             # and it gets there
    assert f.spread == 0.0


@pytest.mark.parametrize("height", [-1.0, float("nan"), 1e4])
def test_absurd_camera_height_is_a_config_error(height):
    with pytest.raises(ConfigError, match="camera_height"):
        GroundScaleConfig(camera_height=height).validate()


class OracleEstimator:
    """Stands in for DepthPoseEstimator: the renderer's depth and motion of each frame, in a network's unknown unit
    (1 unit = 1 / UNIT m). Frames are recognised by their pixels."""

    def __init__(self, seq):
        self.seq = seq
        self.height, self.width = seq.depths.shape[1:]
        self.device = torch.device("cpu")
        self.index = {hashlib.sha1(img.tobytes()).hexdigest(): i for i, img in enumerate(seq.images)}

    def to_tensor(self, image):
        return torch.tensor([[[[float(self.index[hashlib.sha1(image.tobytes()).hexdigest()])]]]])

    def depth(self, x):
        depth = self.seq.depths[int(x.item())] * np.float32(UNIT)
        depth[depth <= 0] = np.nan
        return depth

    def relative_pose(self, x_cur, x_prev):
        poses = self.seq.poses
        T = np.linalg.inv(poses[int(x_prev.item())]) @ poses[int(x_cur.item())]
        T[:3, 3] *= UNIT
        return T


def _path_length(poses):
    return float(np.sum(np.linalg.norm(np.diff(np.asarray(poses)[:, :3, 3], axis=0), axis=1)))


def test_pipeline_publishes_metres_with_camera_height(fine_street):
    street = fine_street
    vo = VisualOdometry(OracleEstimator(street), VOConfig(camera_height=CAMERA_HEIGHT))
    frames = [vo.process(img, street.K, i * 100_000_000) for i, img in enumerate(street.images)]
    assert frames[0].scale == 1.0                      # one frame, no motion yet: nothing measured, metric_scale
    assert frames[1].event and "ground found" in frames[1].event
    assert all(abs(f.scale * UNIT - 1) < 0.03 for f in frames[1:])
    assert all(f.frames_since_ground == 0 for f in frames[1:])
    gt_length = _path_length(street.poses)
    assert abs(_path_length([f.T_start_camera for f in frames]) / gt_length - 1) < 0.03
    valid = np.isfinite(frames[5].depth)
    assert np.allclose(frames[5].depth[valid], street.depths[5][valid], rtol=0.03)    # depth in metres
    assert abs(np.linalg.norm(frames[5].linear_velocity) - 10.0) < 0.3                 # 1 m per 0.1 s
    without = VisualOdometry(OracleEstimator(street), VOConfig())                       # off: network units
    assert abs(without.process(street.images[0], street.K, 0).scale - 1.0) < 1e-12


def test_bwdp_vo_camera_height_gives_a_trajectory_within_5_percent_of_gt_length(fine_street, tmp_path,
                                                                                  monkeypatch, capsys):
    street = fine_street
    assert cli.main(["synth", "--out", str(tmp_path / "synth"), "--frames", "12", "--height", "192", "--width",
                     "640", "--seed", "3"]) == 0
    monkeypatch.setattr("bwdp_core.commands.vo.DepthPoseEstimator", lambda *a, **k: OracleEstimator(street))
    out = tmp_path / "traj.txt"
    code = cli.main(["vo", "--checkpoint", "unused.pt", "--kitti-seq", str(tmp_path / "synth" / "sequences" / "00"),
                     "--camera-height", str(CAMERA_HEIGHT), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "ground-plane scale" in capsys.readouterr().out
    poses = read_trajectory(out).poses
    assert abs(_path_length(poses) / _path_length(street.poses) - 1) < 0.05


def test_bwdp_vo_rejects_a_negative_camera_height(street, tmp_path, monkeypatch, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "synth"), "--frames", "2", "--height", "32", "--width",
                     "96"]) == 0
    code = cli.main(["vo", "--checkpoint", "unused.pt", "--kitti-seq", str(tmp_path / "synth" / "sequences" / "00"),
                     "--camera-height", "-1.6", "--out", str(tmp_path / "t.txt")])
    assert code == 2 and "camera_height" in capsys.readouterr().err
