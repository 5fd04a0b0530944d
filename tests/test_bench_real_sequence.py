"""bench/real_sequence.py and bench/ablation.py end to end at toy size (a grey synthetic KITTI layout, a few training
steps): every stage runs and the JSON holds what the README quotes. No ../shared data needed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_real_camera import grey_kitti_layout

from bwdp_core.synth.render import render_sequence

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import ablation  # noqa: E402
import classical_vo  # noqa: E402
import data_loading  # noqa: E402
import real_sequence  # noqa: E402

TOY = ["--set", "data.height=32", "--set", "data.width=96", "--set", "train.iterations=2", "--set", "train.batch=2",
       "--set", "train.warmup_steps=0", "--set", "train.threads=1", "--set", "model.init=null"]


def depth_gt_folder(root: Path) -> Path:
    seq = render_sequence(3, 32, 96, seed=9)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for i, (image, depth) in enumerate(zip(seq.images, seq.depths)):
        cv2.imwrite(str(root / "rgb" / f"{i:04d}.png"), image[..., ::-1])
        np.save(root / "depth" / f"{i:04d}.npy", depth)
    return root


def test_turn_windows_and_yaw_ratio():
    yaw = np.concatenate([np.zeros(10), np.linspace(0, -90, 30), np.full(20, -90.0)])
    poses = np.tile(np.eye(4), (len(yaw), 1, 1))
    r = np.radians(yaw)
    poses[:, 0, 0], poses[:, 0, 2], poses[:, 2, 0], poses[:, 2, 2] = np.cos(r), np.sin(r), -np.sin(r), np.cos(r)
    assert classical_vo.turn_windows(poses) == [(10, 39)]
    half = poses.copy()
    rh = r / 2
    half[:, 0, 0], half[:, 0, 2], half[:, 2, 0], half[:, 2, 2] = np.cos(rh), np.sin(rh), -np.sin(rh), np.cos(rh)
    (row,) = classical_vo.yaw_through_turns(poses, {"half": half})
    assert row["gt_deg"] == pytest.approx(-90.0, abs=0.5) and row["half_ratio"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.slow
def test_real_sequence_and_ablation_benches_run_at_toy_size(tmp_path):
    root = grey_kitti_layout(tmp_path / "kitti", frames=8)
    depth_gt = depth_gt_folder(tmp_path / "depth_gt")
    results = tmp_path / "results"
    assert real_sequence.main([str(root), "--sequence", "00", "--camera", "0", "--depth-gt", str(depth_gt),
                               "--name", "toy", "--work", str(tmp_path / "work"), "--results", str(results),
                               *TOY]) == 0
    result = json.loads((results / "real_sequence_toy.json").read_text())
    assert set(result["odometry"]) >= {"learned", "classical", "constant_velocity"}
    assert result["odometry"]["learned"]["ate_sim3_m"] >= 0
    assert len(result["depth_structure"]["per_frame"]) == 3
    assert 0 <= result["depth_gt"]["abs_rel"] and result["depth_gt"]["grey"] is True
    assert result["settings"]["data"]["source"]["camera"] == 0 and result["train_wall_s"] > 0
    assert "loadavg_before" in result and (results / "real_sequence_toy.png").is_file()
    # an earlier run's checkpoint, moved out of its run folder: scored with the config stored inside it
    moved = tmp_path / "moved.pt"
    (tmp_path / "work" / "train" / "checkpoints" / "last.pt").rename(moved)
    assert real_sequence.main([str(root), "--sequence", "00", "--camera", "0", "--name", "toy_moved", "--work",
                               str(tmp_path / "work_moved"), "--results", str(results), "--no-classical",
                               "--checkpoint", str(moved)]) == 0
    rescored = json.loads((results / "real_sequence_toy_moved.json").read_text())
    assert rescored["scored_checkpoint"] == str(moved) and "train_wall_s" not in rescored
    assert rescored["settings"]["data"]["height"] == 32 and rescored["odometry"]["learned"]["ate_sim3_m"] >= 0

    assert ablation.main(["--presets", "full", "--seeds", "0", "--synth-frames", "6",
                          "--heldout-frames", "5", "--height", "32", "--width", "96", "--iterations", "2",
                          "--synth-set", "train.batch=2", "--synth-set", "train.warmup_steps=0",
                          "--synth-set", "model.init=null", "--kitti", str(root), "--sequence", "00",
                          "--kitti-iterations", "2", "--kitti-set", "data.height=32", "--kitti-set", "data.width=96",
                          "--kitti-set", "train.batch=2", "--kitti-set", "train.warmup_steps=0",
                          "--kitti-set", "model.init=null", "--depth-gt", str(depth_gt), "--jobs", "2",
                          "--work", str(tmp_path / "abl"), "--results", str(results), "--tag", "toy"]) == 0
    table = json.loads((results / "ablation_toy.json").read_text())
    assert set(table["synth"]["table"]) == {"full"} == set(table["kitti"]["table"])
    assert table["synth"]["table"]["full"]["abs_rel_mean"] > 0
    assert "ate_sim3_m_mean" in table["kitti"]["table"]["full"]
    assert table["kitti"]["runs"][0]["abs_rel"] > 0 and "abs_rel_mean" in table["kitti"]["table"]["full"]


def test_data_loading_bench_reads_the_dataset_with_and_without_the_cache(tmp_path):
    root = grey_kitti_layout(tmp_path / "kitti")
    out = tmp_path / "data_loading.json"
    source = json.dumps({"type": "kitti_odom", "path": str(root), "camera": 0})
    assert data_loading.main([source, "--epochs", "2", "--cache-mb", "0", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["runs"]) == {"cache_0mb", "cache_1mb"} and result["size"] == [64, 224]
    for run in result["runs"].values():
        assert run["snippets"] > 0 and run["first_epoch_s_per_batch"] > 0 and run["later_epochs_s_per_batch"] > 0
