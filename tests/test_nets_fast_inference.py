"""fast_inference backends give the eager networks' depth and pose (parity), and reject bad requests clearly."""
import pytest
import torch

from bwdp_core.errors import ConfigError
from bwdp_core.inference.backends import describe_backends, optimize_for_inference, resolve_backend
from bwdp_core.nets import DispNet, PoseNet

HEIGHT, WIDTH = 32, 96


@pytest.fixture(scope="module")
def nets_and_reference():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the dev machine is shared: one thread is faster than two contended ones
    torch.manual_seed(0)
    disp_net, pose_net = DispNet(18), PoseNet(18)
    with torch.no_grad():  # non-trivial BN statistics so conv+BN folding is really exercised
        for net in (disp_net, pose_net):
            for name, tensor in net.state_dict().items():
                if "running_mean" in name:
                    tensor.normal_(0.0, 0.1)
                elif "running_var" in name:
                    tensor.uniform_(0.5, 1.5)
    disp_net.eval(), pose_net.eval()
    img, ref = torch.rand(1, 3, HEIGHT, WIDTH), torch.rand(1, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        depth = 1.0 / disp_net(img)[0][0]
        pose = pose_net(img, ref)
    yield disp_net, pose_net, img, ref, depth, pose
    torch.set_num_threads(threads)


@pytest.mark.parametrize("backend", ["eager", "channels_last", "torchscript", "onnxruntime"])
def test_backend_matches_eager(nets_and_reference, backend):
    disp_net, pose_net, img, ref, depth, pose = nets_and_reference
    runner = optimize_for_inference(disp_net, pose_net, HEIGHT, WIDTH, backend=backend)
    assert runner.backend == backend
    got_depth, got_pose = runner.depth(img), runner.pose(img, ref)
    assert got_depth.shape == (1, 1, HEIGHT, WIDTH) and got_pose.shape == (1, 6)
    assert torch.allclose(got_depth, depth, rtol=1e-4, atol=1e-5)
    assert torch.allclose(got_pose, pose, rtol=1e-3, atol=1e-6)
    # a second, different frame goes through the same prepared model
    other = img.flip(-1)
    with torch.no_grad():
        assert torch.allclose(runner.depth(other), 1.0 / disp_net(other)[0][0], rtol=1e-4, atol=1e-5)


def test_bf16_backend_is_close_to_eager(nets_and_reference):
    disp_net, pose_net, img, ref, depth, pose = nets_and_reference
    runner = optimize_for_inference(disp_net, pose_net, HEIGHT, WIDTH, backend="bf16")
    got_depth, got_pose = runner.depth(img), runner.pose(img, ref)
    assert got_depth.dtype == torch.float32 and got_pose.dtype == torch.float32
    assert ((got_depth - depth).abs() / depth).median() < 0.05
    assert (got_pose - pose).abs().max() < 0.1 * pose.abs().max() + 1e-4


def test_caller_networks_are_left_untouched(nets_and_reference):
    disp_net, pose_net, *_ = nets_and_reference
    disp_net.train()
    before = disp_net.encoder.conv1.weight.clone()
    optimize_for_inference(disp_net, pose_net, HEIGHT, WIDTH, backend="channels_last")
    assert disp_net.training and disp_net.encoder.conv1.weight.is_contiguous()
    assert torch.equal(disp_net.encoder.conv1.weight, before)
    disp_net.eval()


def test_auto_backend_per_device():
    assert resolve_backend("auto", "cpu") == "onnxruntime"  # graceful under CPU contention, see module docstring
    assert resolve_backend("auto", "cuda") == "channels_last"
    assert resolve_backend("onnxruntime", "cpu") == "onnxruntime"


def test_auto_description_states_what_resolve_backend_does():
    # the words the node's `inference_backend` parameter (vo.yaml, README) shows come from here
    text = describe_backends()
    assert f"auto ({resolve_backend('auto', 'cpu')} on CPU" in text
    assert f"{resolve_backend('auto', 'cuda')} on CUDA)" in text


def test_bad_requests_are_clear_errors(nets_and_reference):
    disp_net, pose_net, img, *_ = nets_and_reference
    with pytest.raises(ConfigError, match="backend 'tensorrt' is unknown"):
        optimize_for_inference(disp_net, pose_net, HEIGHT, WIDTH, backend="tensorrt")
    with pytest.raises(ConfigError, match="multiples of 32"):
        optimize_for_inference(disp_net, pose_net, 30, WIDTH, backend="eager")
    runner = optimize_for_inference(disp_net, pose_net, HEIGHT, WIDTH, backend="eager")
    with pytest.raises(ValueError, match=r"expected an image tensor \[B,3,32,96\]"):
        runner.depth(torch.rand(1, 3, 64, 96))
