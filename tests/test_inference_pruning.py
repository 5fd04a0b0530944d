"""Head pruning: inference computes only DispNet's full-resolution disparity, with the same values as the full forward,
for every backend (the coarser heads only serve the training loss)."""
import pytest
import torch

from bwdp_core.inference.backends import optimize_for_inference
from bwdp_core.nets.disp_net import DispNet
from bwdp_core.nets.pose_net import PoseNet

H, W = 32, 96


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return DispNet(18).eval(), PoseNet(18).eval()


def test_one_scale_is_the_full_resolution_head_alone(nets, one_torch_thread):
    disp_net, _ = nets
    img = torch.rand(2, 3, H, W)
    with torch.no_grad():
        full, _ = disp_net(img)
        pruned, _ = disp_net(img, num_scales=1)
    assert len(full) == 4 and len(pruned) == 1
    torch.testing.assert_close(pruned[0], full[0])


@pytest.mark.parametrize("backend", ["eager", "channels_last", "torchscript", "onnxruntime"])
def test_backends_run_without_the_coarse_heads(nets, backend, one_torch_thread, monkeypatch):
    disp_net, pose_net = nets
    img = torch.rand(1, 3, H, W)
    with torch.no_grad():
        expected = 1.0 / disp_net(img)[0][0]
    calls = []
    for head in ("head1", "head2", "head3"):  # a coarse head that runs (or is traced/exported) is counted
        module = getattr(disp_net.decoder, head)
        monkeypatch.setattr(module, "forward", lambda x, _name=head: calls.append(_name) or torch.zeros_like(x[:, :1]))
    runner = optimize_for_inference(disp_net, pose_net, H, W, backend=backend, num_threads=1)
    calls.clear()  # tracing / export calls the Python forwards once; only what runs per frame counts
    torch.testing.assert_close(runner.depth(img), expected, rtol=1e-4, atol=1e-5)
    assert calls == []
