"""VisualOdometry (the node's and `bwdp replay`'s processing class) with a checkpoint whose motion is known."""
import numpy as np
import pytest
import torch

from bwdp_core.errors import CheckpointError, ConfigError, DataError
from bwdp_core.frames import OPTICAL_RPY, transform_from_xyz_rpy
from bwdp_core.inference import settings
from bwdp_core.inference.backends import resolve_backend
from bwdp_core.inference.vo_pipeline import (
    VO_SETTINGS,
    DepthPoseEstimator,
    VisualOdometry,
    VOConfig,
    scale_intrinsics_to,
)
from bwdp_tools.fixtures import make_constant_motion_checkpoint

H, W = 64, 192
K_IMG = np.array([[200.0, 0, 190.0], [0, 200.0, 60.0], [0, 0, 1]])  # for 128x384 images


@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    torch.set_num_threads(1)
    path = make_constant_motion_checkpoint(tmp_path_factory.mktemp("ckpt") / "fwd.pt", H, W,
                                           motion=(0, 0, 0.1, 0, 0, 0), depth=5.0)
    return DepthPoseEstimator(path, device="cpu", warmup_iterations=1)


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, size=(128, 384, 3), dtype=np.uint8) for _ in range(n)]


def test_constant_optical_z_motion_advances_base_x_at_the_expected_rate(estimator):
    vo = VisualOdometry(estimator, VOConfig(metric_scale=2.0))
    out = [vo.process(img, K_IMG, i * 100_000_000) for i, img in enumerate(_frames(6))]  # 10 Hz
    assert out[0].tracking == "initialising" and all(f.tracking == "ok" for f in out[1:])
    # 0.1 per frame x metric_scale 2 = 0.2 m per 0.1 s -> x = 0.2 * i, 2 m/s
    for i, f in enumerate(out):
        assert np.allclose(f.T_odom_base[:3, 3], [0.2 * i, 0, 0], atol=1e-6)
        assert np.allclose(f.T_odom_base[:3, :3], np.eye(3), atol=1e-6)
        assert np.allclose(f.T_start_camera[:3, 3], [0, 0, 0.2 * i], atol=1e-6)
    assert np.allclose(out[-1].linear_velocity, [2.0, 0, 0], atol=1e-5)
    assert np.allclose(out[-1].angular_velocity, 0, atol=1e-6)


def test_depth_scaled_intrinsics_and_invalid_as_nan(estimator):
    vo = VisualOdometry(estimator, VOConfig(metric_scale=2.0))
    f = vo.process(_frames(1)[0], K_IMG, 0)
    assert f.depth.shape == (H, W) and f.depth.dtype == np.float32
    assert np.allclose(f.depth, 10.0, rtol=1e-4)  # constant 5 x metric_scale 2
    assert np.allclose(f.K_depth, [[100, 0, 95], [0, 100, 30], [0, 0, 1]])
    vo.update_config(max_depth=8.0)
    assert np.isnan(vo.process(_frames(1)[0], K_IMG, 1).depth).all()
    vo.update_config(max_depth=0.0, min_depth=1.0)
    assert not np.isnan(vo.process(_frames(1)[0], K_IMG, 2).depth).any()


def test_stamps_backwards_reset_and_explicit_reset(estimator):
    vo = VisualOdometry(estimator)
    frames = _frames(4)
    for i in range(3):
        vo.process(frames[i], K_IMG, (10 + i) * 100_000_000)
    assert vo.T_odom_base[0, 3] == pytest.approx(0.2)
    back = vo.process(frames[3], K_IMG, 5 * 100_000_000)
    assert back.event and "backwards" in back.event and back.tracking == "initialising"
    assert np.allclose(back.T_odom_base, np.eye(4))
    vo.process(frames[0], K_IMG, 6 * 100_000_000)
    vo.reset()
    assert np.allclose(vo.process(frames[1], K_IMG, 7 * 100_000_000).T_odom_base, np.eye(4))


def test_gap_and_speed_limit_mark_tracking_lost_and_hold_the_pose(estimator):
    vo = VisualOdometry(estimator, VOConfig(max_frame_gap=0.5, max_speed=0.5))
    frames = _frames(3)
    vo.process(frames[0], K_IMG, 0)
    lost = vo.process(frames[1], K_IMG, 2_000_000_000)  # 2 s gap
    assert lost.tracking_lost and "max_frame_gap" in lost.event and np.allclose(lost.T_odom_base, np.eye(4))
    fast = vo.process(frames[2], K_IMG, 2_100_000_000)  # 0.1 in 0.1 s = 1 m/s > 0.5
    assert fast.tracking_lost and "max_speed" in fast.event


def test_tilted_mount_expresses_motion_in_base_link(estimator):
    # camera pitched down by 0.3 rad: forward optical motion has a -z component in base_link
    # (base_link -> camera_link pitched by +0.3, then camera_link -> optical)
    mount = transform_from_xyz_rpy((0.5, 0, 1.0), (0, 0.3, 0)) @ transform_from_xyz_rpy((0, 0, 0), OPTICAL_RPY)
    vo = VisualOdometry(estimator, VOConfig(T_base_camera=mount))
    frames = _frames(2)
    vo.process(frames[0], K_IMG, 0)
    f = vo.process(frames[1], K_IMG, 100_000_000)
    assert np.allclose(f.T_odom_base[:3, 3], 0.1 * np.array([np.cos(0.3), 0, -np.sin(0.3)]), atol=1e-6)


def test_bad_inputs_raise_without_changing_state(estimator):
    vo = VisualOdometry(estimator)
    vo.process(_frames(1)[0], K_IMG, 0)
    with pytest.raises(DataError):
        vo.process(np.zeros((10, 10), np.uint8), K_IMG, 1)
    with pytest.raises(DataError):
        vo.process(_frames(1)[0], np.zeros((3, 3)), 1)
    with pytest.raises(DataError, match="last row must be 0 0 1"):  # the one camera-matrix rule (intrinsics.py)
        vo.process(_frames(1)[0], K_IMG * 2, 1)
    assert vo.frames_since_reset == 1
    with pytest.raises(ConfigError):
        VOConfig(metric_scale=0).validate()


def test_vo_config_takes_defaults_and_checks_from_the_settings_table():
    cfg = VOConfig()
    for name in VO_SETTINGS:
        assert getattr(cfg, name) == settings.SETTING_BY_NAME[name].default, name
    assert np.allclose(cfg.T_base_camera, transform_from_xyz_rpy(settings.default("camera_xyz"),
                                                                 settings.default("camera_rpy")))
    assert cfg.T_base_camera[0, 2] == pytest.approx(1.0)  # optical z -> base x
    assert settings.SETTING_BY_NAME["metric_scale"].range.exclusive_minimum
    assert settings.SETTING_BY_NAME["max_speed"].range.range_text == ">= 0"
    with pytest.raises(ConfigError, match="'metric_scale' must be a finite number > 0"):
        VOConfig(metric_scale=float("nan")).validate()
    with pytest.raises(ConfigError, match="'max_speed' must be a finite number >= 0"):
        VOConfig(max_speed=-1.0).validate()
    cfg = VOConfig.from_settings({"metric_scale": 2, "camera_xyz": [0.5, 0.0, 1.0], "odom_frame": "ignored"})
    assert cfg.metric_scale == 2.0 and cfg.T_base_camera[0, 3] == 0.5
    with pytest.raises(ConfigError, match="camera_rpy"):
        VOConfig.from_settings({"camera_rpy": [0.0, 0.0]})


def test_scale_intrinsics_and_device_and_checkpoint_errors(tmp_path):
    assert np.allclose(scale_intrinsics_to(K_IMG, (128, 384), (64, 192))[:2], K_IMG[:2] / 2)
    with pytest.raises(CheckpointError):
        DepthPoseEstimator(tmp_path / "missing.pt", device="cpu")
    with pytest.raises(ConfigError):
        DepthPoseEstimator(tmp_path / "missing.pt", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError):
            DepthPoseEstimator(tmp_path / "missing.pt", device="cuda")


def test_fast_backend_matches_eager(estimator, tmp_path):
    eager = DepthPoseEstimator(estimator.checkpoint, device="cpu", warmup_iterations=0, backend="eager")
    assert estimator.backend == resolve_backend("auto", "cpu") and eager.backend == "eager"
    frames = _frames(2, seed=5)
    x0, x1 = estimator.to_tensor(frames[0]), estimator.to_tensor(frames[1])
    assert np.allclose(estimator.depth(x1), eager.depth(x1), rtol=1e-4)
    assert np.allclose(estimator.relative_pose(x1, x0), eager.relative_pose(x1, x0), atol=1e-6)
