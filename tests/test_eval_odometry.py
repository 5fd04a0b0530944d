"""KITTI t_err / r_err, evo ATE / RPE and alignment on trajectories with a known, injected error."""
import json
import subprocess
import sys

import numpy as np
import pytest

from bwdp_core.errors import DataError
from bwdp_core.eval.odometry import evaluate_odometry, kitti_odometry_errors, segment_lengths_for, trajectory_distances
from bwdp_core.eval.trajectory_io import read_trajectory, write_trajectory


def rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def drive(n, step=1.0, yaw_per_frame=0.0):
    """Camera-to-world poses of a camera moving ``step`` m along its own z axis each frame, turning ``yaw_per_frame``
    rad about its y axis (optical frame: y down) after each step."""
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(1, n):
        poses[i, :3, 3] = poses[i - 1, :3, 3] + poses[i - 1, :3, :3] @ np.array([0.0, 0.0, step])
        poses[i, :3, :3] = poses[i - 1, :3, :3] @ rot_y(yaw_per_frame)
    return poses


def test_perfect_prediction_has_zero_error():
    gt = drive(1000, yaw_per_frame=0.002)
    result = evaluate_odometry(gt.copy(), gt, align="none")
    assert result["kitti"]["t_err_percent"] == pytest.approx(0.0, abs=1e-9)
    assert result["kitti"]["r_err_deg_per_100m"] == pytest.approx(0.0, abs=1e-4)
    assert result["ate_m"]["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert result["kitti"]["segment_lengths_m"] == [100.0 * k for k in range(1, 9)]
    assert result["kitti"]["segment_lengths_scaled"] is False


def test_constant_scale_error_gives_known_t_err():
    gt = drive(1000)  # straight, 999 m
    pred = gt.copy()
    pred[:, :3, 3] *= 1.1
    k = evaluate_odometry(pred, gt, align="none")["kitti"]
    # |1 - s| of every segment; the devkit's segment ends at the first frame beyond L (L + 1 m here)
    assert k["t_err_percent"] == pytest.approx(10.0, rel=0.01)
    assert k["r_err_deg_per_100m"] == pytest.approx(0.0, abs=1e-6)
    assert k["per_length"]["800"]["t_err_percent"] == pytest.approx(10.0 * 801 / 800, rel=1e-6)


def test_constant_yaw_drift_gives_known_r_err():
    gt = drive(1000)
    omega = np.radians(0.01)  # 0.01 deg per metre -> 1 deg / 100 m
    pred = drive(1000, yaw_per_frame=omega)
    k = kitti_odometry_errors(gt, pred)
    assert k["r_err_deg_per_100m"] == pytest.approx(1.0, rel=0.015)
    assert k["per_length"]["100"]["r_err_deg_per_100m"] == pytest.approx(101 / 100, rel=1e-6)
    rpe = evaluate_odometry(pred, gt, align="none")["rpe_rot_deg"]  # evo: 0.01 deg of extra turn every frame
    assert rpe["mean"] == pytest.approx(0.01, rel=1e-4) and rpe["max"] == pytest.approx(0.01, rel=1e-4)


def test_ate_of_constant_offset_and_se3_alignment_removes_it():
    gt = drive(300, yaw_per_frame=0.01)
    pred = gt.copy()
    pred[:, :3, 3] += np.array([0.3, 0.0, 0.4])
    raw = evaluate_odometry(pred, gt, align="none")
    assert raw["ate_m"]["rmse"] == pytest.approx(0.5, abs=1e-9)
    assert raw["rpe_trans_m"]["rmse"] == pytest.approx(0.0, abs=1e-9)  # relative motion is untouched
    aligned = evaluate_odometry(pred, gt, align="se3")
    assert aligned["ate_m"]["rmse"] == pytest.approx(0.0, abs=1e-6)


def test_sim3_alignment_removes_a_pure_scale():
    gt = drive(400, yaw_per_frame=0.005)
    pred = gt.copy()
    pred[:, :3, 3] *= 0.25  # monocular: right shape, wrong scale
    none = evaluate_odometry(pred, gt, align="none")
    assert none["kitti"]["t_err_percent"] > 50
    for mode in ("sim3", "scale"):
        result = evaluate_odometry(pred, gt, align=mode)
        assert result["alignment"]["scale"] == pytest.approx(4.0, rel=1e-6)
        assert result["kitti"]["t_err_percent"] == pytest.approx(0.0, abs=1e-6)
        assert result["ate_m"]["rmse"] == pytest.approx(0.0, abs=1e-6)
    se3 = evaluate_odometry(pred, gt, align="se3")
    assert se3["ate_m"]["rmse"] > 1.0


def test_collinear_trajectory_falls_back_to_origin_and_scale():
    gt = drive(200)
    pred = gt.copy()
    pred[:, :3, 3] *= 2.0
    result = evaluate_odometry(pred, gt, align="sim3")
    assert "degenerate" in result["alignment"]["method"]
    assert result["alignment"]["scale"] == pytest.approx(0.5)
    assert result["ate_m"]["rmse"] == pytest.approx(0.0, abs=1e-9)
    backward = gt.copy()
    backward[:, :3, 3] *= -3.0  # drives the other way: no positive scale fits, the path-length ratio is used
    result = evaluate_odometry(backward, gt, align="sim3")
    assert "path-length ratio" in result["alignment"]["method"]
    assert result["alignment"]["scale"] == pytest.approx(1 / 3)
    assert result["kitti"]["t_err_percent"] == pytest.approx(200.0, rel=0.02)


def test_short_trajectory_scales_segment_lengths():
    gt = drive(60, step=0.5)  # 29.5 m
    lengths, scaled = segment_lengths_for(float(trajectory_distances(gt)[-1]))
    assert scaled and lengths[-1] == pytest.approx(0.8 * 29.5)
    pred = gt.copy()
    pred[:, :3, 3] *= 1.2
    k = evaluate_odometry(pred, gt, align="none")["kitti"]
    assert k["segment_lengths_scaled"] is True and "note" in k
    assert k["num_segments"] > 0
    assert k["t_err_percent"] == pytest.approx(20.0, rel=0.1)


def test_length_mismatch_is_a_data_error():
    gt = drive(50)
    with pytest.raises(DataError, match="lengths differ"):
        evaluate_odometry(gt[:40], gt)
    with pytest.raises(DataError, match="unknown alignment"):
        evaluate_odometry(gt, gt, align="affine")


def test_tum_files_are_associated_by_timestamp(tmp_path):
    gt = drive(100, yaw_per_frame=0.01)
    stamps = 1000.0 + 0.1 * np.arange(100)
    write_trajectory(tmp_path / "gt.txt", gt, "tum", stamps)
    # prediction: every second frame, stamps jittered by 2 ms, offset by 1 m
    pred = gt[::2].copy()
    pred[:, :3, 3] += np.array([1.0, 0.0, 0.0])
    write_trajectory(tmp_path / "pred.txt", pred, "tum", stamps[::2] + 0.002)
    result = evaluate_odometry(read_trajectory(tmp_path / "pred.txt"), read_trajectory(tmp_path / "gt.txt"),
                               align="none")
    assert result["num_poses"] == 50
    assert result["ate_m"]["rmse"] == pytest.approx(1.0, abs=1e-6)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "bwdp_core.commands.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_eval_odom_cli_writes_json_and_plot(tmp_path):
    gt = drive(120, yaw_per_frame=0.02)
    pred = gt.copy()
    pred[:, :3, 3] *= 0.5
    write_trajectory(tmp_path / "gt.txt", gt, "kitti")
    write_trajectory(tmp_path / "pred.txt", pred, "kitti")
    out = tmp_path / "out"
    proc = run_cli("eval-odom", "--pred", str(tmp_path / "pred.txt"), "--gt", str(tmp_path / "gt.txt"),
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "t_err" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["alignment"]["mode"] == "sim3"
    assert metrics["ate_m"]["rmse"] < 1e-6
    assert (out / "trajectory.png").stat().st_size > 1000


def test_eval_odom_cli_bad_inputs_exit_2(tmp_path):
    gt = drive(20)
    write_trajectory(tmp_path / "gt.txt", gt, "kitti")
    write_trajectory(tmp_path / "short.txt", gt[:10], "kitti")
    (tmp_path / "bad.txt").write_text("1 2 3\n4 5 6\n")
    cases = [(tmp_path / "short.txt", "lengths differ"), (tmp_path / "bad.txt", "expected 12"),
             (tmp_path / "missing.txt", "not found")]
    for pred, message in cases:
        proc = run_cli("eval-odom", "--pred", str(pred), "--gt", str(tmp_path / "gt.txt"))
        assert proc.returncode == 2
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "Traceback" not in proc.stderr


def test_static_ground_truth_has_no_kitti_segments_but_still_ate():
    gt = np.tile(np.eye(4), (20, 1, 1))
    pred = drive(20, step=0.1)
    result = evaluate_odometry(pred, gt, align="sim3")
    assert result["kitti"]["t_err_percent"] is None and result["kitti"]["num_segments"] == 0
    assert result["alignment"]["scale"] == 1.0
    assert result["ate_m"]["max"] == pytest.approx(1.9, abs=1e-9)  # the origin-aligned prediction's last frame
