"""Long chains of network poses stay on SO(3) through `bwdp vo`'s chaining, and `bwdp eval-odom` scores trajectories
whose rotations drifted (it projects them, and says so) instead of crashing in evo."""
import numpy as np
import torch

from bwdp_core.commands.cli import main as cli_main
from bwdp_core.eval.odometry import evaluate_odometry
from bwdp_core.eval.trajectory_io import read_trajectory, write_trajectory
from bwdp_core.eval.vo import chain_relative_poses
from bwdp_core.frames import project_to_so3, so3_deviation
from bwdp_core.geometry import pose_vec_to_mat

FRAMES = 1200


def drive_vectors(n: int, seed: int = 0) -> np.ndarray:
    """[n, 6] KITTI-like frame-to-frame motion T_(i-1)<-i: 0.8 m forward, left and right turns of up to 3.4 deg per
    frame, pitch/roll jitter (what PoseNet outputs for a car at 10 Hz)."""
    rng = np.random.default_rng(seed)
    vec = np.zeros((n, 6))
    vec[:, 2] = 0.8 + 0.05 * rng.standard_normal(n)
    vec[:, :2] = 0.01 * rng.standard_normal((n, 2))
    yaw_rate = np.radians(3.4) * np.sin(np.arange(n) / 60.0) ** 3
    vec[:, 4] = yaw_rate + np.radians(0.05) * rng.standard_normal(n)
    vec[:, 3] = np.radians(0.1) * rng.standard_normal(n)
    vec[:, 5] = np.radians(0.1) * rng.standard_normal(n)
    return vec


def network_relative_poses(vec: np.ndarray) -> np.ndarray:
    """As run_vo gets them: float32 pose_vec_to_mat on the network's float32 output, then cast to float64."""
    return pose_vec_to_mat(torch.from_numpy(vec).float()).double().numpy()


def naive_chain(relative: np.ndarray) -> np.ndarray:
    poses = [np.eye(4)]
    for step in relative:
        poses.append(poses[-1] @ step)
    return np.stack(poses)


def test_project_to_so3_is_nearest_rotation():
    rng = np.random.default_rng(1)
    R = project_to_so3(rng.standard_normal((5, 3, 3)))
    assert so3_deviation(R) < 1e-12
    assert np.allclose(np.linalg.det(R), 1.0)
    exact = pose_vec_to_mat(torch.tensor([[0.0, 0, 0, 0.3, -0.2, 0.1]], dtype=torch.float64))[0, :3, :3].numpy()
    np.testing.assert_allclose(project_to_so3(exact), exact, atol=1e-14)


def test_vo_chain_of_1200_network_poses_stays_orthonormal():
    relative = network_relative_poses(drive_vectors(FRAMES))
    assert so3_deviation(naive_chain(relative)[:, :3, :3]) > 1e-6  # what bwdp vo wrote before: evo refuses it
    poses = chain_relative_poses(relative)
    assert poses.shape == (FRAMES + 1, 4, 4)
    assert so3_deviation(poses[:, :3, :3]) < 1e-12
    np.testing.assert_allclose(poses[:, 3], np.tile([0.0, 0, 0, 1], (FRAMES + 1, 1)))
    # projection changes the trajectory only at the float32 level of the network's rotations
    assert np.abs(poses[:, :3, 3] - naive_chain(relative)[:, :3, 3]).max() < 1e-3 * FRAMES


def test_vo_to_eval_odom_on_1200_poses(tmp_path, capsys):
    vec = drive_vectors(FRAMES)
    gt = chain_relative_poses([pose_vec_to_mat(torch.from_numpy(v[None]))[0].numpy() for v in vec])
    noisy = vec + np.concatenate([0.02 * np.ones((FRAMES, 3)), np.radians(0.02) * np.ones((FRAMES, 3))], 1) * \
        np.random.default_rng(2).standard_normal((FRAMES, 6))
    pred = chain_relative_poses(network_relative_poses(noisy))
    write_trajectory(tmp_path / "gt.txt", gt)
    write_trajectory(tmp_path / "pred.txt", pred)
    assert so3_deviation(read_trajectory(tmp_path / "pred.txt").poses[:, :3, :3]) < 1e-6  # survives the text file
    assert cli_main(["eval-odom", "--pred", str(tmp_path / "pred.txt"), "--gt", str(tmp_path / "gt.txt"),
                     "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.err and "ATE" in out.out


def test_eval_odom_projects_drifted_input_and_says_so(tmp_path, capsys):
    relative = network_relative_poses(drive_vectors(FRAMES, seed=3))
    drifted = naive_chain(relative)  # |RR^T - I| > 1e-6: evo alone raises "not a valid SO(3) group element"
    write_trajectory(tmp_path / "drifted.txt", drifted)
    write_trajectory(tmp_path / "gt.txt", chain_relative_poses(relative))
    assert cli_main(["eval-odom", "--pred", str(tmp_path / "drifted.txt"), "--gt", str(tmp_path / "gt.txt")]) == 0
    out = capsys.readouterr()
    assert "projected onto SO(3)" in out.out
    assert "Traceback" not in out.err
    result = evaluate_odometry(drifted, chain_relative_poses(relative))
    assert result["so3_projection"]["pred_max_deviation"] > 1e-6
    assert result["ate_m"]["rmse"] < 1e-2


def test_unexpected_error_is_one_line_not_a_traceback(monkeypatch, capsys):
    from bwdp_core.commands import eval_odom

    def broken(args):
        raise RuntimeError("matrix is not a valid SO(3) group element")

    monkeypatch.setattr(eval_odom, "main", broken)
    monkeypatch.delenv("BWDP_DEBUG", raising=False)
    assert cli_main(["eval-odom", "--pred", "a.txt", "--gt", "b.txt"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bwdp eval-odom: error: unexpected RuntimeError")
