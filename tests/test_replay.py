"""`bwdp make-bag` -> `bwdp replay` round trip on a synthetic sequence with ground truth (no ROS install needed)."""
import json
import shutil

import numpy as np
import pytest
import torch

from bwdp_core.checkpoint import build_models, load_checkpoint, make_checkpoint, save_checkpoint
from bwdp_core.commands.cli import main as bwdp
from bwdp_core.data.bag_io import iter_messages, list_topics, stamp_ns_of, write_image_bag
from bwdp_core.eval.trajectory_io import read_trajectory
from bwdp_core.synth.render import render_sequence
from bwdp_core.synth.write import write_kitti_odometry
from bwdp_tools.fixtures import make_constant_motion_checkpoint

N = 8


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    seq = render_sequence(N, 64, 192, seed=0)
    seq_dir = write_kitti_odometry(seq, tmp / "synth")
    ckpt = make_constant_motion_checkpoint(tmp / "fwd.pt", 64, 192, motion=(0, 0, 0.1, 0, 0, 0))
    return {"tmp": tmp, "seq": seq, "seq_dir": seq_dir, "ckpt": ckpt}


def test_make_bag_then_replay_with_gt_in_the_bag(data, capsys):
    tmp = data["tmp"]
    bag = tmp / "bag_mcap"
    assert bwdp(["make-bag", "--kitti-seq", str(data["seq_dir"]), "--out", str(bag), "--start", "100"]) == 0
    topics = list_topics(bag)
    assert topics == {"/camera/image_raw": "sensor_msgs/msg/Image", "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
                      "/ground_truth/odom": "nav_msgs/msg/Odometry"}
    stamps = [stamp_ns_of(m) for _, m in iter_messages(bag, "/camera/image_raw")]
    assert stamps == [100 * 10**9 + i * 10**8 for i in range(N)]
    gt_msgs = [m for _, m in iter_messages(bag, "/ground_truth/odom")]
    assert gt_msgs[-1].pose.pose.position.z == pytest.approx(data["seq"].poses[-1][2, 3], abs=1e-9)

    out = tmp / "replay_mcap"
    assert bwdp(["replay", str(bag), "--image-topic", "/camera/image_raw", "--checkpoint", str(data["ckpt"]),
                 "--out", str(out), "--device", "cpu", "--num-threads", "1"]) == 0
    traj = read_trajectory(out / "trajectory.tum")
    assert len(traj) == N and np.allclose(traj.timestamps, np.asarray(stamps) / 1e9)
    assert np.allclose(traj.poses[:, 2, 3], 0.1 * np.arange(N), atol=1e-5)  # the fixture's +z per frame
    odom = read_trajectory(out / "odom.tum")
    assert np.allclose(odom.poses[:, 0, 3], 0.1 * np.arange(N), atol=1e-5)  # base_link +x
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_poses"] == N and metrics["ate_m"]["rmse"] >= 0 and "t_err_percent" in metrics["kitti"]
    assert metrics["suggested_metric_scale"] > 0
    assert (out / "trajectory.png").stat().st_size > 0 and len(list(out.glob("depth_*.png"))) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_processed"] == N and summary["frames_skipped"] == 0
    assert "ATE" in capsys.readouterr().out


def test_sqlite3_compressed_bag_with_gt_file_and_intrinsics(data):
    tmp = data["tmp"]
    bag = tmp / "bag_sqlite"
    assert bwdp(["make-bag", "--kitti-seq", str(data["seq_dir"]), "--out", str(bag), "--storage", "sqlite3",
                 "--compressed", "--rate", "5"]) == 0
    assert list_topics(bag)["/camera/image_raw/compressed"] == "sensor_msgs/msg/CompressedImage"
    K = data["seq"].K
    out = tmp / "replay_sqlite"
    gt_file = data["seq_dir"].parent.parent / "poses" / "00.txt"
    assert bwdp(["replay", str(bag), "--image-topic", "/camera/image_raw/compressed", "--checkpoint",
                 str(data["ckpt"]), "--out", str(out), "--device", "cpu", "--gt", str(gt_file), "--colormaps", "2",
                 "--num-threads", "1", "--backend", "eager",
                 "--intrinsics", str(K[0, 0]), str(K[1, 1]), str(K[0, 2]), str(K[1, 2])]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_poses"] == N and metrics["association"] == "by index"
    traj = read_trajectory(out / "trajectory.tum")
    assert traj.timestamps[1] - traj.timestamps[0] == pytest.approx(0.2)
    assert len(list(out.glob("depth_*.png"))) == 2


def test_user_errors_are_one_line(data, capsys):
    tmp = data["tmp"]
    assert bwdp(["replay", str(tmp / "no_bag"), "--image-topic", "/x", "--checkpoint", str(data["ckpt"]),
                 "--out", str(tmp / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bag = tmp / "bag_err"
    bwdp(["make-bag", "--kitti-seq", str(data["seq_dir"]), "--out", str(bag)])
    assert bwdp(["replay", str(bag), "--image-topic", "/nope", "--checkpoint", str(data["ckpt"]),
                 "--out", str(tmp / "o")]) == 2
    err = capsys.readouterr().err
    assert "/nope" in err and "/camera/image_raw" in err and len(err.strip().splitlines()) == 1
    assert bwdp(["replay", str(bag), "--image-topic", "/camera/image_raw", "--checkpoint", str(tmp / "missing.pt"),
                 "--out", str(tmp / "o"), "--device", "cpu"]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert bwdp(["make-bag", "--kitti-seq", str(data["seq_dir"]), "--out", str(bag)]) == 2  # exists
    assert "exists" in capsys.readouterr().err


def test_camera_info_follows_the_node_s_rule(data, capsys):
    # a CameraInfo K whose last row is not 0 0 1 is unusable for the node, so for replay too (one picker)
    tmp, seq = data["tmp"], data["seq"]
    bag = write_image_bag(tmp / "bag_bad_k", seq.images[:2], [1, 2], seq.K * 2)
    assert bwdp(["replay", str(bag), "--image-topic", "/camera/image_raw", "--checkpoint", str(data["ckpt"]),
                 "--out", str(tmp / "o_bad_k"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no usable CameraInfo on /camera/camera_info" in err and "--intrinsics" in err


def test_replay_adapt_steps_inline_and_saves_a_loadable_model(data, tmp_path):
    """`bwdp replay --adapt` runs the node's adaptation worker (inline steps: deterministic); --save-model keeps it."""
    torch.manual_seed(0)
    disp_net, pose_net = build_models({"num_layers": 18})
    start = tmp_path / "start.pt"
    save_checkpoint(start, make_checkpoint(disp_net, pose_net, 32, 96))
    bag = tmp_path / "bag"
    assert bwdp(["make-bag", "--kitti-seq", str(data["seq_dir"]), "--out", str(bag), "--max-frames", "5"]) == 0
    saved = tmp_path / "adapted.pt"
    args = ["replay", str(bag), "--image-topic", "/camera/image_raw", "--checkpoint", str(start), "--device", "cpu",
            "--num-threads", "1", "--backend", "eager", "--adapt", "--adapt-steps-per-frame", "1",
            "--adapt-steps-per-swap", "2", "--adapt-min-parallax", "0", "--camera-height", "1.6", "--colormaps", "0"]
    assert bwdp([*args, "--out", str(tmp_path / "out"), "--save-model", str(saved)]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["adaptation"]["steps"] == 3 and summary["adaptation"]["swaps"] == 1  # snippets from frame 3 on
    assert summary["weights_version"] == 1 and summary["saved_model"] == str(saved)
    assert summary["camera_height"] == 1.6 and "final_scale" in summary
    assert load_checkpoint(saved)["adaptation"]["steps"] == 3
    assert bwdp(["replay", str(bag), "--image-topic", "/camera/image_raw", "--checkpoint", str(start),
                 "--out", str(tmp_path / "x"), "--save-model", str(saved)]) == 2   # --save-model needs --adapt


def test_make_bag_camera_0_bags_a_grey_left_camera_sequence(data, tmp_path):
    """The shared KITTI 07 frames have only image_0: --camera 0 bags them (the default, camera 2, finds no images)."""
    root = tmp_path / "kitti"
    seq_dir = root / "sequences" / "07"
    shutil.copytree(data["seq_dir"], seq_dir)
    (seq_dir / "image_2").rename(seq_dir / "image_0")
    shutil.copytree(data["seq_dir"].parent.parent / "poses", root / "poses")
    (root / "poses" / "00.txt").rename(root / "poses" / "07.txt")
    assert bwdp(["make-bag", "--kitti-seq", str(seq_dir), "--out", str(tmp_path / "b2")]) == 2
    assert bwdp(["make-bag", "--kitti-seq", str(seq_dir), "--camera", "0", "--out", str(tmp_path / "b0")]) == 0
    assert len(list(iter_messages(tmp_path / "b0", "/camera/image_raw"))) == N
