"""The demo's own pure pieces: settings, the checkpoint cache key, the trivial baselines, the plot alignment."""
from __future__ import annotations

import numpy as np
import pytest

from bwdp_core.errors import ConfigError
from bwdp_core.eval.trajectory_io import read_trajectory, write_trajectory
from bwdp_tools.demo_scoring import constant_velocity_baseline, relative_to_first
from bwdp_tools.demo_training import DemoSettings, config_hash, loss_defaults
from bwdp_tools.processes import ManagedProcess


def _pose(yaw: float, t) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]  # rotation about the optical y axis (a turn on the ground)
    T[:3, 3] = t
    return T


def test_both_profiles_load_and_hold_out_a_different_street():
    full = DemoSettings.load("demo")
    toy = DemoSettings.load("toy")
    for s in (full, toy):
        assert s.heldout_seed != s.train_seed
        assert s.height % 32 == 0 and s.width % 32 == 0  # the ResNet encoder needs multiples of 32
    assert toy.iterations < full.iterations and toy.train_frames < full.train_frames


def test_bad_settings_name_the_problem(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text("demo: {height: 32}\n")
    with pytest.raises(ConfigError, match="missing keys"):
        DemoSettings.load("demo", path)
    with pytest.raises(ConfigError, match="no 'toy' section"):
        DemoSettings.load("toy", path)


def test_cache_key_changes_with_what_changes_the_model():
    s = DemoSettings.load("toy")
    key = config_hash(s, "train: {}")
    assert key == config_hash(s, "train: {}")  # stable
    assert key != config_hash(s, "train: {lr: 1}")  # config/train.yaml edited
    changed = DemoSettings(**{**s.__dict__, "iterations": s.iterations + 1})
    assert key != config_hash(changed, "train: {}")
    other_rate = DemoSettings(**{**s.__dict__, "rate_hz": s.rate_hz * 2})  # streaming does not change the model
    assert key == config_hash(other_rate, "train: {}")
    # a loss default changed in code (not in train.yaml) retrains too: the eq. 6 mask default once did not
    defaults = loss_defaults()
    assert key == config_hash(s, "train: {}", defaults)
    defaults["full"]["dsc_occlusion_mask"] = "False"
    assert key != config_hash(s, "train: {}", defaults)


def test_constant_velocity_repeats_the_first_motion():
    gt = np.stack([_pose(0.05 * i * i, [0.1 * i * i, 0, i]) for i in range(6)])
    cv = constant_velocity_baseline(gt)
    step = np.linalg.inv(gt[0]) @ gt[1]
    np.testing.assert_allclose(cv[:2], gt[:2], atol=1e-12)
    for i in range(1, len(cv)):
        np.testing.assert_allclose(np.linalg.inv(cv[i - 1]) @ cv[i], step, atol=1e-9)


def test_relative_to_first_and_kitti_round_trip(tmp_path):
    poses = np.stack([_pose(0.1 * i, [i, 0.5, 2 * i]) for i in range(4)])
    rel = relative_to_first(poses)
    np.testing.assert_allclose(rel[0], np.eye(4), atol=1e-12)
    write_trajectory(tmp_path / "p.txt", rel, "kitti")
    np.testing.assert_allclose(read_trajectory(tmp_path / "p.txt", "kitti").poses, rel, atol=1e-7)


def test_managed_process_stops_the_whole_group(tmp_path):
    import sys
    import time

    # a child that ignores SIGINT and starts a grandchild in its group: both must be gone after stop()
    script = ("import signal, subprocess, sys, time; signal.signal(signal.SIGINT, signal.SIG_IGN);"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(60)")
    pid_file = tmp_path / "grandchild"
    managed = ManagedProcess([sys.executable, "-c", script, str(pid_file)])
    with managed as proc:
        deadline = time.monotonic() + 20
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        grandchild = int(pid_file.read_text())
        managed.stop(grace_s=0.5)
    assert proc.poll() is not None
    time.sleep(0.2)
    try:
        state = open(f"/proc/{grandchild}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = "gone"
    assert state in ("gone", "Z"), f"grandchild still {state}"
