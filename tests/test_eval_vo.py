"""`bwdp vo` chaining (constant-motion fixture network) and `bwdp vo` + `bwdp eval-odom` on a synthetic sequence."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bwdp_core.checkpoint import make_checkpoint, save_checkpoint
from bwdp_core.commands.cli import main as cli_main
from bwdp_core.eval.trajectory_io import read_trajectory
from bwdp_core.eval.vo import chain_relative_poses
from bwdp_core.geometry import pose_vec_to_mat
from bwdp_core.nets.disp_net import DispNet
from bwdp_core.nets.pose_net import PoseNet
from bwdp_core.synth.render import render_sequence
from bwdp_core.synth.write import write_kitti_odometry

H, W = 32, 96


def constant_motion_checkpoint(path, motion):
    """A checkpoint whose PoseNet returns ``motion`` (6-vector, T_{t->r}) for any input: last conv weight 0, bias =
    motion / 0.01 (the network's output scale)."""
    torch.manual_seed(0)
    disp_net, pose_net = DispNet(18), PoseNet(18)
    with torch.no_grad():
        pose_net.head.out.weight.zero_()
        pose_net.head.out.bias.copy_(torch.tensor(motion, dtype=torch.float32) / pose_net.output_scale)
    save_checkpoint(path, make_checkpoint(disp_net, pose_net, H, W))
    return path


def random_checkpoint(path, seed=0):
    torch.manual_seed(seed)
    save_checkpoint(path, make_checkpoint(DispNet(18), PoseNet(18), H, W))
    return path


def synthetic_kitti_sequence(root, frames=12):
    """A `bwdp synth` street sequence in the KITTI odometry layout (images, calib.txt, poses/00.txt, depth)."""
    seq = render_sequence(frames, H, W, seed=0)
    return write_kitti_odometry(seq, root, sequence="00")


def run_cli(*args):
    """The real console entry point in a subprocess (used once, end to end)."""
    return subprocess.run([sys.executable, "-m", "bwdp_core.commands.cli", *map(str, args)], capture_output=True,
                          text=True,
                          timeout=300)


def cli(capsys, *args):
    """The same entry point in-process (saves the interpreter + torch start-up): (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


MOTION = [0.1, 0.0, 0.5, 0.0, 0.02, 0.0]  # T_{t->r}: camera i sits 0.5 m ahead of i-1, slightly turned


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("vo")
    return {"const": constant_motion_checkpoint(root / "const.pt", MOTION),
            "forward": constant_motion_checkpoint(root / "forward.pt", [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
            "random": random_checkpoint(root / "rand.pt"),
            "kitti": root / "kitti", "seq": synthetic_kitti_sequence(root / "kitti", frames=10)}


def test_chain_relative_poses_composes_in_camera_frame():
    step = np.eye(4)
    step[:3, 3] = [0.0, 0.0, 1.0]
    turn = np.eye(4)
    turn[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # 90 deg about y: the new camera's z points along world +x
    poses = chain_relative_poses([step, turn, step])
    np.testing.assert_allclose(poses[1, :3, 3], [0, 0, 1])
    np.testing.assert_allclose(poses[3, :3, 3], [1, 0, 1], atol=1e-12)  # after the turn, forward is world +x


def test_vo_chains_a_known_constant_motion(tmp_path, data, capsys):
    code, _, err = cli(capsys, "vo", "--checkpoint", data["const"], "--kitti-seq", data["seq"],
                       "--out", tmp_path / "traj.txt", "--device", "cpu")
    assert code == 0, err
    traj = read_trajectory(tmp_path / "traj.txt")
    assert traj.fmt == "kitti" and len(traj) == 10
    step = pose_vec_to_mat(torch.tensor([MOTION], dtype=torch.float64))[0].numpy()
    for i in range(10):
        np.testing.assert_allclose(traj.poses[i], np.linalg.matrix_power(step, i), atol=1e-5)
    assert traj.poses[1, 2, 3] == pytest.approx(0.5, abs=1e-5)  # moves forward (+z), not backward


def test_vo_then_eval_odom_on_a_synthetic_sequence(tmp_path, data):
    traj_file = tmp_path / "vo" / "00.txt"
    proc = run_cli("vo", "--checkpoint", data["random"], "--kitti-seq", data["kitti"], "--out", traj_file)
    assert proc.returncode == 0, proc.stderr
    assert len(read_trajectory(traj_file)) == 10
    out = tmp_path / "odom"
    proc = run_cli("eval-odom", "--pred", traj_file, "--gt", data["kitti"] / "poses" / "00.txt", "--out", out)
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_poses"] == 10
    assert metrics["kitti"]["segment_lengths_scaled"] is True  # a few metres of synthetic driving
    assert np.isfinite(metrics["ate_m"]["rmse"]) and np.isfinite(metrics["kitti"]["t_err_percent"])
    assert (out / "trajectory.png").is_file()


def test_vo_image_folder_writes_tum(tmp_path, data, capsys):
    code, _, err = cli(capsys, "vo", "--checkpoint", data["forward"], "--images", data["seq"] / "image_2",
                       "--intrinsics", "50 50 48 16", "--out", tmp_path / "t.tum", "--format", "tum", "--fps", "5")
    assert code == 0, err
    traj = read_trajectory(tmp_path / "t.tum")
    np.testing.assert_allclose(traj.timestamps, np.arange(10) / 5.0)
    np.testing.assert_allclose(traj.poses[:, 2, 3], np.arange(10), atol=1e-5)


def test_vo_bad_inputs_exit_2_with_one_line(tmp_path, data, capsys):
    ckpt, seq_dir = data["random"], data["seq"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    cases = [
        (["--checkpoint", str(ckpt), "--images", str(tmp_path / "empty"), "--intrinsics", "1 1 1 1"], "no images"),
        (["--checkpoint", str(ckpt), "--images", str(seq_dir / "image_2"), "--intrinsics", "1 2 3"], "intrinsics"),
        (["--checkpoint", str(tmp_path / "broken.pt"), "--kitti-seq", str(seq_dir)], "broken.pt"),
        (["--checkpoint", str(ckpt), "--kitti-seq", str(tmp_path / "nope")], "nope"),
        (["--checkpoint", str(ckpt), "--kitti-seq", str(seq_dir), "--device", "tpu"], "is not one of auto, cpu, cuda"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--checkpoint", str(ckpt), "--kitti-seq", str(seq_dir), "--device", "cuda"], "CUDA"))
    for args, message in cases:
        code, _, err = cli(capsys, "vo", *args, "--out", tmp_path / "x.txt")
        assert code == 2, (args, err)
        assert message in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_batched_pairs_give_the_same_trajectory(data):
    from bwdp_core.checkpoint import load_models
    from bwdp_core.data.kitti_odometry import KittiOdometrySource
    from bwdp_core.eval.vo import run_vo

    _, pose_net, meta = load_models(data["random"])
    source = KittiOdometrySource(data["kitti"], "00")
    one = run_vo(pose_net, source, meta["height"], meta["width"], batch_size=1, progress=False)
    four = run_vo(pose_net, source, meta["height"], meta["width"], batch_size=4, progress=False)
    assert one.shape == (10, 4, 4)
    np.testing.assert_allclose(one, four, atol=1e-5)


def test_scale_invariant_models_translate_in_mean_depth_units(tmp_path, data, capsys):
    # A model trained with loss.overrides.scale_invariant_warp learned its translation in units of the target frame's
    # mean depth (the warp divides every depth by it). `bwdp vo` and the node's pipeline must multiply it back, frame
    # by frame, or the trajectory's scale follows the scene's depth (KITTI 07: ATE 1.92 m raw, 1.72 m converted).
    from bwdp_core.checkpoint import load_checkpoint, load_models, pose_translation_unit
    from bwdp_core.data.kitti_odometry import KittiOdometrySource
    from bwdp_core.eval.vo import run_vo
    from bwdp_core.inference.preprocess import image_to_tensor
    from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry

    assert pose_translation_unit({"loss": {"overrides": {"scale_invariant_warp": True}}}) == "target_mean_depth"
    assert pose_translation_unit({"loss": {"overrides": {}}}) == pose_translation_unit(None) == "depth"
    ckpt = load_checkpoint(data["random"])
    ckpt["disp_net"]["decoder.head0.conv.weight"] *= 200  # a depth map that changes from frame to frame
    ckpt["config"] = {"loss": {"preset": "full", "overrides": {"scale_invariant_warp": True}}}
    si = tmp_path / "si.pt"
    save_checkpoint(si, ckpt)
    disp_net, pose_net, meta = load_models(si)
    assert meta["pose_translation_unit"] == "target_mean_depth"
    source = KittiOdometrySource(data["kitti"], "00")
    raw = run_vo(pose_net, source, H, W, progress=False)
    converted = run_vo(pose_net, source, H, W, progress=False, translation_unit="target_mean_depth",
                       disp_net=disp_net)
    with torch.no_grad():
        means = [float((1.0 / disp_net(image_to_tensor(source.load_image(i), H, W, "cpu"))[0][0]).mean())
                 for i in range(len(source))]
    assert np.ptp(means) > 0.01 * np.mean(means)  # the frames' mean depths differ, so the test can see the rule
    for i in range(1, len(source)):
        step_raw = np.linalg.inv(raw[i - 1]) @ raw[i]
        step = np.linalg.inv(converted[i - 1]) @ converted[i]
        np.testing.assert_allclose(step[:3, :3], step_raw[:3, :3], atol=1e-6)
        np.testing.assert_allclose(step[:3, 3], step_raw[:3, 3] * means[i], rtol=1e-4, atol=1e-9)
    # the node's pipeline applies the same rule
    vo = VisualOdometry(DepthPoseEstimator(si, device="cpu", backend="eager", warmup_iterations=0))
    assert vo.estimator.translation_unit == "target_mean_depth"
    poses = [vo.process(source.load_image(i), source.intrinsics, i * 100_000_000).T_start_camera
             for i in range(len(source))]
    np.testing.assert_allclose(np.stack(poses)[:, :3, 3], converted[:, :3, 3], rtol=1e-3, atol=1e-6)
    # and `bwdp vo` uses it
    code, _, err = cli(capsys, "vo", "--checkpoint", si, "--kitti-seq", data["seq"], "--out", tmp_path / "t.txt",
                       "--device", "cpu")
    assert code == 0, err
    np.testing.assert_allclose(read_trajectory(tmp_path / "t.txt").poses[:, :3, 3], converted[:, :3, 3], rtol=1e-4,
                               atol=1e-7)
