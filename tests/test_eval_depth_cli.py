"""`bwdp eval-depth`: KITTI Eigen layout (velodyne and depth-benchmark PNG GT), image folders, the synth layout,
the prediction path (resize + median scaling) with a stub network, and bad inputs."""
import json

import cv2
import numpy as np
import pytest
import torch

from bwdp_core.checkpoint import make_checkpoint, save_checkpoint
from bwdp_core.commands.cli import main as cli_main
from bwdp_core.eval.depth_metrics import METRIC_NAMES
from bwdp_core.eval.eval_depth import DepthSample, evaluate_checkpoint, read_split_file
from bwdp_core.nets.disp_net import DispNet
from bwdp_core.nets.pose_net import PoseNet
from bwdp_core.synth.render import render_sequence
from bwdp_core.synth.write import write_kitti_odometry

H, W = 32, 96
DRIVE = "2011_01_01/2011_01_01_drive_0001_sync"


def cli(capsys, *args):
    capsys.readouterr()
    code = cli_main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def write_raw_kitti(root):
    """A one-drive KITTI raw layout: calibration (f=100, 40x24), frames 3 and 4 (image + velodyne scan)."""
    date = root / DRIVE.split("/")[0]
    date.mkdir(parents=True)
    (date / "calib_cam_to_cam.txt").write_text("R_rect_00: 1 0 0 0 1 0 0 0 1\nP_rect_02: 100 0 20 6 0 100 10 0 0 0 "
                                                       "1 0\n"
                                               "S_rect_02: 40 24\n")
    (date / "calib_velo_to_cam.txt").write_text("R: 0 -1 0 0 0 -1 1 0 0\nT: 0 -0.08 -0.27\n")
    rng = np.random.default_rng(0)
    (root / DRIVE / "image_02" / "data").mkdir(parents=True)
    (root / DRIVE / "velodyne_points" / "data").mkdir(parents=True)
    for frame in (3, 4):
        cv2.imwrite(str(root / DRIVE / "image_02" / "data" / f"{frame:010d}.png"),
                    rng.integers(0, 255, (24, 40, 3), dtype=np.uint8))
        # a small wall of points 10..20 m ahead, spread over the lower image
        xs, ys, zs = np.meshgrid(np.linspace(10, 20, 6), np.linspace(-1, 1, 9), np.linspace(-1.0, -0.2, 5))
        scan = np.stack([xs.ravel(), ys.ravel(), zs.ravel(), np.ones(xs.size)], 1).astype(np.float32)
        scan.tofile(root / DRIVE / "velodyne_points" / "data" / f"{frame:010d}.bin")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth")
    torch.manual_seed(0)
    ckpt = root / "rand.pt"
    save_checkpoint(ckpt, make_checkpoint(DispNet(18), PoseNet(18), H, W))
    raw = write_raw_kitti(root / "raw")
    split = root / "split.txt"
    split.write_text(f"{DRIVE} 0000000003 l\n{DRIVE} 0000000004 l\n")
    return {"ckpt": ckpt, "raw": raw, "split": split, "root": root}


def test_eigen_protocol_with_velodyne_gt(tmp_path, data, capsys):
    code, out, err = cli(capsys, "eval-depth", "--checkpoint", data["ckpt"], "--split-file", data["split"],
                         "--raw-root", data["raw"], "--out", tmp_path, "--device", "cpu")
    assert code == 0, err
    assert "AbsRel" in out and "RMSE log" in out
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["protocol"] == "kitti_eigen_velodyne"
    assert report["crop"] == "garg" and report["median_scaling"] is True
    assert report["num_images"] == 2 and set(report["metrics"]) == set(METRIC_NAMES)
    assert all(np.isfinite(v) for v in report["metrics"].values())
    strip = cv2.imread(str(tmp_path / "depth_strip.png"))
    assert strip is not None and strip.shape[0] > 2 * 100  # two rows of input | prediction | GT


def test_eigen_protocol_with_benchmark_pngs_and_missing_frames(tmp_path, data, capsys):
    gt_dir = tmp_path / "gt" / "train" / DRIVE.split("/")[1] / "proj_depth" / "groundtruth" / "image_02"
    gt_dir.mkdir(parents=True)
    depth = np.zeros((24, 40), np.uint16)
    depth[12:, :] = 10 * 256  # 10 m over the lower half
    cv2.imwrite(str(gt_dir / "0000000003.png"), depth)
    args = ["eval-depth", "--checkpoint", data["ckpt"], "--split-file", data["split"], "--raw-root", data["raw"],
            "--gt-png-root", tmp_path / "gt", "--num-visuals", "0"]
    code, _, err = cli(capsys, *args)
    assert code == 2 and "0000000004" in err and "--skip-missing" in err
    code, out, err = cli(capsys, *args, "--skip-missing", "--out", tmp_path / "o")
    assert code == 0, err
    report = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert report["num_images"] == 1 and report["num_missing_gt"] == 1
    assert report["protocol"] == "kitti_eigen_depth_benchmark_png"


def test_synth_layout_and_image_folder(tmp_path, data, capsys):
    seq = write_kitti_odometry(render_sequence(3, 40, 120, seed=1), tmp_path / "synth", sequence="00")
    code, out, err = cli(capsys, "eval-depth", "--checkpoint", data["ckpt"], "--data", tmp_path / "synth",
                         "--out", tmp_path / "a")
    assert code == 0, err
    report = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert report["protocol"] == "data_folder" and report["num_images"] == 3 and report["crop"] == "none"
    assert report["per_image"][0]["name"] == "00/000000"
    code, out, err = cli(capsys, "eval-depth", "--checkpoint", data["ckpt"], "--images", seq / "image_2",
                         "--depth", seq / "depth", "--no-median-scaling", "--out", tmp_path / "b", "--num-visuals", "1")
    assert code == 0, err
    report = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert report["median_scaling"] is False and report["scale_median"] == 1.0


class ConstantDisp(torch.nn.Module):
    """Stub DispNet: disparity 0.5 everywhere (depth 2), at the input's size."""

    def forward(self, img):
        return [torch.full_like(img[:, :1], 0.5)], []


def test_prediction_is_resized_to_gt_and_median_scaled(tmp_path):
    image_path = tmp_path / "a.png"
    cv2.imwrite(str(image_path), np.zeros((50, 70, 3), np.uint8))
    gt = np.full((50, 70), 8.0, np.float32)
    samples = [DepthSample("a", image_path, lambda: gt)]
    scaled = evaluate_checkpoint(ConstantDisp(), samples, H, W, garg_crop=False, progress=False)
    assert scaled["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert scaled["scale_median"] == pytest.approx(4.0)
    assert scaled["visuals"][0][1].shape == (50, 70)
    metric = evaluate_checkpoint(ConstantDisp(), samples, H, W, garg_crop=False, median_scaling=False,
                                 progress=False)
    assert metric["metrics"]["abs_rel"] == pytest.approx(0.75)  # |8 - 2| / 8


def test_split_file_parser(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(f"{DRIVE} 0000000069 l\n\n{DRIVE} 12 r\n")
    assert read_split_file(path) == [(DRIVE, 69, "l"), (DRIVE, 12, "r")]
    path.write_text(f"{DRIVE} 69 x\n")
    with pytest.raises(Exception, match=":1: expected"):
        read_split_file(path)


def test_bad_inputs_exit_2_with_one_line(tmp_path, data, capsys):
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "depth").mkdir()
    ckpt = data["ckpt"]
    cases = [
        (["--split-file", tmp_path / "none.txt", "--raw-root", data["raw"]], "none.txt"),
        (["--split-file", data["split"]], "--raw-root"),
        (["--images", tmp_path / "imgs"], "--depth"),
        (["--images", tmp_path / "imgs", "--depth", tmp_path / "depth"], "a.npy"),
        (["--data", tmp_path], "no known layout"),
        (["--data", tmp_path / "imgs", "--min-depth", "5", "--max-depth", "1"], "depth range"),
    ]
    for args, message in cases:
        code, _, err = cli(capsys, "eval-depth", "--checkpoint", ckpt, *args)
        assert code == 2, (args, err)
        assert message in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = cli(capsys, "eval-depth", "--checkpoint", tmp_path / "missing.pt", "--split-file", data["split"],
                       "--raw-root", data["raw"])
    assert code == 2 and "missing.pt" in err
