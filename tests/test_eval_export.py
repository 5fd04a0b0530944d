"""`bwdp export`: TorchScript and ONNX files reproduce the PyTorch networks (checked independently here)."""
import json

import numpy as np
import pytest
import torch

from bwdp_core.checkpoint import load_models, make_checkpoint, save_checkpoint
from bwdp_core.commands.cli import main as cli_main
from bwdp_core.nets.disp_net import DispNet
from bwdp_core.nets.pose_net import PoseNet

H, W = 32, 96


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("export") / "rand.pt"
    save_checkpoint(path, make_checkpoint(DispNet(18), PoseNet(18), H, W))
    return path


def reference(ckpt, seed=5, batch=3):
    disp_net, pose_net, _ = load_models(ckpt)
    gen = torch.Generator().manual_seed(seed)
    tgt, ref = torch.rand(batch, 3, H, W, generator=gen), torch.rand(batch, 3, H, W, generator=gen)
    with torch.no_grad():
        return tgt, ref, disp_net(tgt)[0][0].numpy(), pose_net(tgt, ref).numpy()


def test_torchscript_matches_pytorch(tmp_path, ckpt, capsys):
    assert cli_main(["export", "--checkpoint", str(ckpt), "--format", "torchscript", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "max abs diff" in out and "parity check passed" in out
    tgt, ref, disp, pose = reference(ckpt)
    depth_net = torch.jit.load(str(tmp_path / "depth_net.pt"))
    pose_net = torch.jit.load(str(tmp_path / "pose_net.pt"))
    with torch.no_grad():
        assert np.abs(depth_net(tgt).numpy() - disp).max() < 1e-5   # batch 3 although traced with batch 1
        assert np.abs(pose_net(tgt, ref).numpy() - pose).max() < 1e-6
    report = json.loads((tmp_path / "export.json").read_text())
    assert report["passed"] and report["input_size"] == [H, W]


def test_onnx_matches_pytorch(tmp_path, ckpt, capsys):
    import onnxruntime as ort

    assert cli_main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path),
                     "--depth-output", "depth"]) == 0
    tgt, ref, disp, pose = reference(ckpt)
    depth_sess = ort.InferenceSession(str(tmp_path / "depth_net.onnx"), providers=["CPUExecutionProvider"])
    pose_sess = ort.InferenceSession(str(tmp_path / "pose_net.onnx"), providers=["CPUExecutionProvider"])
    depth = depth_sess.run(None, {"image": tgt.numpy()})[0]
    assert depth.shape == (3, 1, H, W)
    np.testing.assert_allclose(depth, 1.0 / disp, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pose_sess.run(None, {"tgt": tgt.numpy(), "ref": ref.numpy()})[0], pose, atol=1e-5)


def test_failed_parity_check_is_reported(tmp_path, ckpt, capsys, monkeypatch):
    import bwdp_core.commands.export as export  # the command calls the library through its own name

    def fake_export(*args, **kwargs):  # the parity numbers themselves are checked above; here only the verdict
        return {"files": {"depth_net": "d.pt", "pose_net": "p.pt"}, "max_abs_diff": {"depth_net": 0.5, "pose_net": 0.0},
                "tolerance": 1e-4, "passed": False}

    monkeypatch.setattr(export, "export_models", fake_export)
    code = cli_main(["export", "--checkpoint", str(ckpt), "--format", "torchscript", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1 and "parity check failed" in out and "5.000e-01" in out
    assert json.loads((tmp_path / "export.json").read_text())["passed"] is False


def test_bad_checkpoint_exit_2(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 10)
    assert cli_main(["export", "--checkpoint", str(tmp_path / "bad.pt"), "--format", "onnx",
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exported_files_carry_the_pose_translation_unit(tmp_path, fmt):
    """A scale-invariant-warp model's translation is in units of the target frame's mean depth; a user of the exported
    files alone (no bwdp checkpoint) must be able to read that from the files and from export.json."""
    from bwdp_core.eval.export import read_export_metadata

    torch.manual_seed(0)
    si = tmp_path / "si.pt"
    save_checkpoint(si, make_checkpoint(DispNet(18), PoseNet(18), H, W,
                                        config={"loss": {"overrides": {"scale_invariant_warp": True}}}))
    for name, ckpt_path, unit in (("si", si, "target_mean_depth"), ("plain", None, "depth")):
        if ckpt_path is None:
            ckpt_path = tmp_path / "plain.pt"
            save_checkpoint(ckpt_path, make_checkpoint(DispNet(18), PoseNet(18), H, W, config={}))
        out = tmp_path / name
        assert cli_main(["export", "--checkpoint", str(ckpt_path), "--format", fmt, "--out", str(out)]) == 0
        report = json.loads((out / "export.json").read_text())
        assert report["pose_translation_unit"] == unit
        for file in report["files"].values():
            assert read_export_metadata(file) == {"bwdp.pose_translation_unit": unit, "bwdp.input_size": f"{H},{W}"}
