"""int8: `bwdp export --format onnx --int8 --calibration SOURCE` on a tiny model, and the onnxruntime_int8 backend
that the node's DepthPoseEstimator loads from it (refused for other weights)."""
import json

import numpy as np
import pytest
import torch

from bwdp_core.checkpoint import load_models, make_checkpoint, save_checkpoint
from bwdp_core.commands.cli import main as cli_main
from bwdp_core.errors import ConfigError
from bwdp_core.inference import settings
from bwdp_core.inference.backends import optimize_for_inference
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator
from bwdp_core.nets.disp_net import DispNet
from bwdp_core.nets.pose_net import PoseNet

H, W = 32, 96


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint, int8 folder, calibration root): random ResNet-18 pair, 8 rendered street frames."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    ckpt = tmp / "tiny.pt"
    save_checkpoint(ckpt, make_checkpoint(DispNet(18), PoseNet(18), H, W))
    street = tmp / "street"
    assert cli_main(["synth", "--out", str(street), "--frames", "8", "--height", str(H), "--width", str(W),
                     "--seed", "3"]) == 0
    out = tmp / "export"
    assert cli_main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--int8", "--calibration", str(street),
                     "--calibration-frames", "4", "--out", str(out)]) == 0
    yield ckpt, out, street
    torch.set_num_threads(threads)


def test_export_writes_int8_files_and_manifest(exported, capsys):
    _, out, _ = exported
    report = json.loads((out / "export.json").read_text())
    assert report["int8"] and report["passed"] and report["input_size"] == [H, W]
    assert report["calibration"]["frames"] == 4
    assert len(report["weights_sha256"]) == 64
    for name in ("depth_net.int8.onnx", "pose_net.int8.onnx", "depth_net.onnx", "pose_net.onnx"):
        assert (out / name).is_file()
    import onnx

    ops = {node.op_type for node in onnx.load(str(out / "pose_net.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    weights = [i for i in onnx.load(str(out / "pose_net.int8.onnx")).graph.initializer if i.data_type == 3]  # int8
    assert weights, "no int8 weights in the quantised PoseNet"
    from bwdp_core.eval.export import read_export_metadata

    for name in ("depth_net.int8.onnx", "pose_net.int8.onnx"):  # the translation unit survives quantisation
        assert read_export_metadata(out / name)["bwdp.pose_translation_unit"] == report["pose_translation_unit"]
    dev = report["int8_deviation"]
    assert 0 < dev["depth_rel_median"] < 0.05  # approximate, but close to fp32 on frames like the calibration ones


def test_int8_backend_runs_close_to_fp32(exported, one_torch_thread):
    ckpt, out, _ = exported
    disp_net, pose_net, _ = load_models(ckpt)
    int8 = optimize_for_inference(disp_net, pose_net, H, W, backend="onnxruntime_int8", int8_dir=out, num_threads=1)
    fp32 = optimize_for_inference(disp_net, pose_net, H, W, backend="eager")
    gen = torch.Generator().manual_seed(1)
    img, ref = torch.rand(1, 3, H, W, generator=gen), torch.rand(1, 3, H, W, generator=gen)
    d8, d32 = int8.depth(img), fp32.depth(img)
    assert d8.shape == (1, 1, H, W)
    assert float(((d8 - d32).abs() / d32).median()) < 0.1  # depth, not disparity (the export's default output)
    assert int8.pose(img, ref).shape == (1, 6)


def test_int8_backend_refuses_other_weights_and_a_missing_folder(exported, tmp_path, one_torch_thread):
    _, out, _ = exported
    torch.manual_seed(1)
    with pytest.raises(ConfigError, match="other weights"):
        optimize_for_inference(DispNet(18), PoseNet(18), H, W, backend="onnxruntime_int8", int8_dir=out)
    with pytest.raises(ConfigError, match="int8_model_dir"):
        optimize_for_inference(DispNet(18), PoseNet(18), H, W, backend="onnxruntime_int8")
    with pytest.raises(ConfigError, match="manifest"):
        optimize_for_inference(DispNet(18), PoseNet(18), H, W, backend="onnxruntime_int8", int8_dir=tmp_path)


def test_node_estimator_loads_the_int8_export(exported, one_torch_thread):
    ckpt, out, _ = exported
    estimator = DepthPoseEstimator(ckpt, device="cpu", backend="onnxruntime_int8", int8_dir=out, num_threads=1,
                                   warmup_iterations=1)
    x = estimator.to_tensor(np.full((H, W, 3), 128, np.uint8))
    assert estimator.backend == "onnxruntime_int8"
    assert estimator.depth(x).shape == (H, W)
    assert estimator.relative_pose(x, x).shape == (4, 4)


def test_int8_settings_need_the_folder():
    assert settings.check_all({"inference_backend": "onnxruntime_int8"})
    assert not settings.check_all({"inference_backend": "onnxruntime_int8", "int8_model_dir": "/some/dir"})


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--calibration"),
    (["--calibration", "x"], "only used with --int8"),
    (["--int8", "--calibration", "/no/such/source"], "no such file"),
])
def test_bad_int8_arguments_are_one_line_errors(exported, argv, message, capsys, tmp_path):
    ckpt, _, _ = exported
    code = cli_main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
