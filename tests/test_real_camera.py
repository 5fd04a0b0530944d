"""Real-camera training pieces: a grey (one-channel) KITTI layout loads, trains and runs `bwdp vo`; the bundled
one-sequence recipe is found by name; the learning-rate schedule; starting a run from another run's weights."""
from __future__ import annotations

import math
import shutil

import cv2
import numpy as np
import pytest
import torch
from test_train_config import run_bwdp

from bwdp_core.checkpoint import load_checkpoint
from bwdp_core.commands.cli import main as cli_main
from bwdp_core.data.build import build_sources
from bwdp_core.errors import ConfigError, DataError
from bwdp_core.losses.config import LossConfig
from bwdp_core.synth.render import render_sequence
from bwdp_core.synth.write import write_kitti_odometry
from bwdp_core.train.config import CONFIG_DIR, bundled_configs, load_config
from bwdp_core.train.step import build_loss_config, learning_rate

H, W = 32, 96


def grey_kitti_layout(root, frames: int = 7):
    """A KITTI odometry root like ../shared/data/kitti_odom_07_160: sequences/00/image_0 (one-channel PNGs), calib
    with P0, poses; no image_2."""
    seq = render_sequence(frames, H, W, seed=3)
    write_kitti_odometry(seq, root, sequence="00")
    seq_dir = root / "sequences" / "00"
    (seq_dir / "image_0").mkdir()
    for png in sorted((seq_dir / "image_2").iterdir()):
        grey = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(seq_dir / "image_0" / png.name), grey)
    shutil.rmtree(seq_dir / "image_2")
    shutil.rmtree(seq_dir / "depth")
    return root


def test_grey_layout_loads_replicated_and_camera_2_error_names_camera_0(tmp_path):
    root = grey_kitti_layout(tmp_path / "kitti")
    assert cv2.imread(str(root / "sequences/00/image_0/000000.png"), cv2.IMREAD_UNCHANGED).ndim == 2
    (source,) = build_sources({"type": "kitti_odom", "path": str(root), "camera": 0})
    image = source.load_image(3)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])
    assert source.intrinsics[0, 0] > 0 and source.poses is not None
    with pytest.raises(DataError, match="no image_2.*image_0.*camera"):
        build_sources({"type": "kitti_odom", "path": str(root)})


@pytest.mark.slow
def test_grey_source_trains_one_step_with_the_recipe_and_runs_vo(tmp_path):
    root = grey_kitti_layout(tmp_path / "kitti")
    out = tmp_path / "run"
    proc = run_bwdp("train", "--config", "sequence", "--set", f"data.source.path={root}",
                    "--set", "data.source.camera=0", "--set", f"data.height={H}", "--set", f"data.width={W}",
                    "--set", "train.iterations=1", "--set", "train.batch=2", "--set", "train.warmup_steps=0",
                    "--set", "data.val_fraction=0", "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 1 and ckpt["config"]["data"]["source"]["camera"] == 0
    traj = tmp_path / "traj.txt"
    # --kitti-seq finds the grey camera by itself (the layout has no image_2)
    assert cli_main(["vo", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--kitti-seq",
                     str(root / "sequences" / "00"), "--out", str(traj)]) == 0
    assert len(traj.read_text().splitlines()) == 7


def test_bundled_recipe_found_by_name_and_unknown_name_lists_them(tmp_path):
    assert "sequence" in bundled_configs()
    cfg = load_config("sequence", [f"data.source.path={tmp_path}"])
    assert cfg["data"]["source"]["path"] == str(tmp_path)
    recipe = (CONFIG_DIR / "sequence.yaml").read_text()
    assert cfg["train"]["iterations"] > 0 and "20 min" in recipe
    # the recipe's measured loss choices reach the loss (a misspelt key would be rejected, a misplaced one ignored)
    loss = build_loss_config(cfg)
    assert loss.scale_invariant_warp and loss.w_smooth < LossConfig().w_smooth
    with pytest.raises(ConfigError, match="bundled: .*sequence"):
        load_config("no_such_recipe", [f"data.source.path={tmp_path}"])


def test_learning_rate_schedule():
    cfg = {"train": {"lr": 1e-3, "iterations": 100, "warmup_steps": 10, "lr_schedule": "cosine",
                     "final_lr_factor": 0.1}}
    lrs = [learning_rate(cfg, s) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(b <= a + 1e-15 for a, b in zip(lrs[9:], lrs[10:]))  # non-increasing after the warmup
    assert lrs[99] == pytest.approx(1e-4, rel=0.01)
    assert lrs[10 + 45] == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 0.5)), rel=1e-6)
    cfg["train"].update(lr_schedule="constant", warmup_steps=0)
    assert {learning_rate(cfg, s) for s in range(100)} == {1e-3}


def test_init_from_checkpoint_copies_weights_and_rejects_other_networks(tmp_path):
    from bwdp_core.checkpoint import build_models, make_checkpoint, save_checkpoint
    from bwdp_core.errors import CheckpointError
    from bwdp_core.train.step import build_networks

    torch.manual_seed(5)
    disp_net, pose_net = build_models({"num_layers": 18})
    save_checkpoint(tmp_path / "synth.pt", make_checkpoint(disp_net, pose_net, 64, 192))
    cfg = load_config(None, [f"data.source.path={tmp_path}", f"model.init={tmp_path / 'synth.pt'}",
                             "data.height=32", "data.width=96"])
    torch.manual_seed(6)
    new_disp, new_pose = build_networks(cfg)
    for a, b in ((disp_net, new_disp), (pose_net, new_pose)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(p, q), name
    disp50, pose50 = build_models({"num_layers": 50})
    save_checkpoint(tmp_path / "r50.pt", make_checkpoint(disp50, pose50, 64, 192))
    cfg["model"]["init"] = str(tmp_path / "r50.pt")
    with pytest.raises(CheckpointError, match="r50.pt"):
        build_networks(cfg)


@pytest.mark.parametrize("key,part", [("rotation_scale", slice(3, 6)), ("translation_scale", slice(0, 3))])
def test_pose_output_factor_scales_only_its_part_and_travels_in_the_checkpoint(tmp_path, key, part):
    from bwdp_core.checkpoint import build_models, load_models, make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    disp_net, pose_net = build_models({"num_layers": 18, key: 0.1})
    reference = build_models({"num_layers": 18})[1]
    reference.load_state_dict(pose_net.state_dict())
    pose_net.eval(), reference.eval()
    a, b = torch.rand(1, 3, H, W), torch.rand(1, 3, H, W)
    with torch.no_grad():
        scaled, plain = pose_net(a, b), reference(a, b)
    other = [i for i in range(6) if i not in range(6)[part]]
    torch.testing.assert_close(scaled[:, other], plain[:, other])
    torch.testing.assert_close(scaled[:, part], 10 * plain[:, part])
    save_checkpoint(tmp_path / "m.pt", make_checkpoint(disp_net, pose_net, H, W))
    _, loaded, meta = load_models(tmp_path / "m.pt")
    assert meta[key] == 0.1
    with torch.no_grad():
        torch.testing.assert_close(loaded(a, b), scaled)
    save_checkpoint(tmp_path / "d.pt", make_checkpoint(disp_net, reference, H, W))
    assert key not in load_checkpoint(tmp_path / "d.pt")["model"]  # default: files read as before
