"""Checkpoint format: round trip, atomic writes, weights_only loading, and one clear error for every bad file."""
import argparse
import os

import pytest
import torch

from bwdp_core import checkpoint as ckpt_mod
from bwdp_core.checkpoint import (
    CHECKPOINT_FORMAT,
    build_models,
    load_checkpoint,
    load_models,
    make_checkpoint,
    save_checkpoint,
)
from bwdp_core.errors import CheckpointError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the dev machine is shared: one thread is faster than two contended ones
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained_pair():
    """A DispNet/PoseNet pair whose weights and BN statistics differ from a fresh init."""
    torch.manual_seed(0)
    disp_net, pose_net = build_models({"num_layers": 18})
    with torch.no_grad():
        for net in (disp_net, pose_net):
            for name, tensor in net.state_dict().items():
                if tensor.is_floating_point():
                    tensor.add_(0.01 * torch.randn_like(tensor))
                    if "running_var" in name:
                        tensor.abs_()
    return disp_net.eval(), pose_net.eval()


@pytest.fixture(scope="module")
def saved(trained_pair, tmp_path_factory):
    disp_net, pose_net = trained_pair
    optimizer = torch.optim.Adam(list(disp_net.parameters())[:2], lr=1e-4)
    optimizer.zero_grad()
    sum(p.sum() for p in list(disp_net.parameters())[:2]).backward()
    optimizer.step()
    ckpt = make_checkpoint(
        disp_net,
        pose_net,
        height=32,
        width=96,
        step=7,
        config={"loss": {"preset": "full"}, "lr": 1e-4},
        optimizer=optimizer.state_dict(),
        rng={"torch": torch.get_rng_state()},
        best={"metric": "abs_rel", "value": 0.25},
    )
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    save_checkpoint(path, ckpt)
    return path


def test_round_trip_restores_identical_networks(trained_pair, saved):
    disp_net, pose_net = trained_pair
    loaded_disp, loaded_pose, meta = load_models(saved)
    assert meta["num_layers"] == 18 and (meta["height"], meta["width"]) == (32, 96) and meta["step"] == 7
    assert meta["best"] == {"metric": "abs_rel", "value": 0.25}
    assert not loaded_disp.training and not loaded_pose.training
    img, ref = torch.rand(1, 3, 32, 96), torch.rand(1, 3, 32, 96)
    with torch.no_grad():
        assert torch.equal(loaded_disp(img)[0][0], disp_net(img)[0][0])
        assert torch.equal(loaded_pose(img, ref), pose_net(img, ref))


def test_checkpoint_loads_with_plain_weights_only_torch_load(saved):
    raw = torch.load(saved, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT
    assert raw["config"] == {"loss": {"preset": "full"}, "lr": 1e-4}
    assert raw["optimizer"]["param_groups"][0]["lr"] == 1e-4
    assert isinstance(raw["rng"]["torch"], torch.Tensor)
    assert load_checkpoint(saved)["step"] == 7


def test_save_is_atomic_and_leaves_no_temp_files(trained_pair, tmp_path):
    disp_net, pose_net = trained_pair
    path = tmp_path / "sub" / "ckpt.pt"
    save_checkpoint(path, make_checkpoint(disp_net, pose_net, 32, 96, step=1))
    save_checkpoint(path, make_checkpoint(disp_net, pose_net, 32, 96, step=2))  # overwrite in place
    assert os.listdir(path.parent) == ["ckpt.pt"]
    assert load_checkpoint(path)["step"] == 2


def test_failed_save_keeps_previous_file_and_removes_temp(trained_pair, tmp_path, monkeypatch):
    disp_net, pose_net = trained_pair
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, make_checkpoint(disp_net, pose_net, 32, 96, step=1))

    def dying_save(obj, handle):  # writes half a file, then the process "dies"
        handle.write(b"PK\x03\x04partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, make_checkpoint(disp_net, pose_net, 32, 96, step=2))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert load_checkpoint(path)["step"] == 1


def test_make_checkpoint_unwraps_ddp_style_wrappers(trained_pair):
    disp_net, pose_net = trained_pair

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    ckpt = make_checkpoint(Wrapper(disp_net), Wrapper(pose_net), 32, 96)
    assert "encoder.conv1.weight" in ckpt["disp_net"] and "head.out.bias" in ckpt["pose_net"]


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*missing.pt"):
        load_models(tmp_path / "missing.pt")


def test_truncated_checkpoint_is_a_checkpoint_error(saved, tmp_path):
    data = saved.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt is corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pt is corrupt"):
        load_models(garbage)


def test_wrong_format_is_a_checkpoint_error(tmp_path):
    plain_state = tmp_path / "state_dict.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, plain_state)
    with pytest.raises(CheckpointError, match="state_dict.pt is not a bwdp checkpoint"):
        load_checkpoint(plain_state)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {"num_layers": 18}}, incomplete)
    with pytest.raises(CheckpointError, match="lacks required keys: disp_net, pose_net"):
        load_checkpoint(incomplete)


def test_pickled_objects_are_refused_by_weights_only(tmp_path):
    path = tmp_path / "pickled.pt"  # e.g. someone saved an argparse namespace inside the checkpoint
    torch.save({"format": CHECKPOINT_FORMAT, "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(CheckpointError, match="pickled.pt is corrupt or unreadable"):
        load_checkpoint(path)


def test_mismatched_num_layers_is_a_checkpoint_error(saved, tmp_path):
    ckpt = load_checkpoint(saved)
    ckpt["model"]["num_layers"] = 50
    path = tmp_path / "r50_meta.pt"
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match=r"r50_meta.pt \[disp_net\] does not match"):
        load_models(path)


def test_mismatched_shape_is_a_checkpoint_error(saved, tmp_path):
    ckpt = load_checkpoint(saved)
    ckpt["pose_net"]["head.out.weight"] = torch.zeros(12, 256, 1, 1)
    path = tmp_path / "bad_shape.pt"
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="head.out.weight' has shape"):
        load_models(path)


def test_bad_model_metadata_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="num_layers"):
        build_models({"num_layers": 34})
    with pytest.raises(CheckpointError, match="num_layers"):
        build_models({"height": 32})
