"""Metric scale from the camera height: the ground-plane fit on rendered depth, the temporal filter, and the pipeline
and `bwdp vo` applying it (networks replaced by an oracle knowing the rendered depth and motion, at a wrong scale)."""
import hashlib

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
)
from bwdp_core.inference.vo_pipeline import VisualOdometry, VOConfig
from bwdp_core.synth.render import render_sequence
from bwdp_core.synth.scene import CAMERA_HEIGHT

MOUNT = transform_from_xyz_rpy((0, 0, 0), OPTICAL_RPY)  # forward-looking camera, as the renderer's
UNIT = 0.37  # the oracle's depth unit: 1 unit = 1 / 0.37 m, i.e. the true metres-per-unit scale is 1 / UNIT


@pytest.fixture(scope="module")
def street():
    return render_sequence(12, 64, 224, seed=3)


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


def test_keeps_the_previous_scale_on_frames_without_ground(street):
    scale = GroundScale(GroundScaleConfig(camera_height=CAMERA_HEIGHT), MOUNT)
    good = scale.update(_depth_in_units(street.depths[0]), street.K)
    assert good.initialised and good.frames_since_good == 0 and abs(good.scale * UNIT - 1) < 0.02
    wall = np.full((64, 224), 3.0)            # a wall 3 units ahead fills the view: a plane, but vertical
    sky = np.full((64, 224), np.nan)          # nothing valid at all
    statuses = [scale.update(wall, street.K), scale.update(sky, street.K), scale.update(wall, street.K)]
    assert [s.measurement for s in statuses] == [None, None, None]
    assert [s.scale for s in statuses] == [good.scale] * 3
    assert [s.frames_since_good for s in statuses] == [1, 2, 3]
    events = [s.event for s in statuses]
    assert events[0] and "no ground plane" in events[0] and events[1:] == [None, None]  # said once
    back = scale.update(_depth_in_units(street.depths[1]), street.K)
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


def test_pipeline_publishes_metres_with_camera_height(street):
    vo = VisualOdometry(OracleEstimator(street), VOConfig(camera_height=CAMERA_HEIGHT))
    frames = [vo.process(img, street.K, i * 100_000_000) for i, img in enumerate(street.images)]
    assert frames[0].event and "ground found" in frames[0].event
    assert all(abs(f.scale * UNIT - 1) < 0.02 for f in frames)
    assert all(f.frames_since_ground == 0 for f in frames)
    gt_length = _path_length(street.poses)
    assert abs(_path_length([f.T_start_camera for f in frames]) / gt_length - 1) < 0.02
    valid = np.isfinite(frames[5].depth)
    assert np.allclose(frames[5].depth[valid], street.depths[5][valid], rtol=0.02)    # depth in metres
    assert abs(np.linalg.norm(frames[5].linear_velocity) - 10.0) < 0.2                 # 1 m per 0.1 s
    without = VisualOdometry(OracleEstimator(street), VOConfig())                       # off: network units
    assert abs(without.process(street.images[0], street.K, 0).scale - 1.0) < 1e-12


def test_bwdp_vo_camera_height_gives_a_trajectory_within_5_percent_of_gt_length(street, tmp_path, monkeypatch,
                                                                                  capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "synth"), "--frames", "12", "--height", "64", "--width",
                     "224", "--seed", "3"]) == 0
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
