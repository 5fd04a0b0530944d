"""Networks: shapes, output ranges, parameter counts, torchvision key names, ImageNet weight loading and its errors."""
import pytest
import torch

from bwdp_core.errors import CheckpointError
from bwdp_core.nets import DispNet, PoseNet, ResNetEncoder, disp_to_depth


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the dev machine is shared: one thread is faster than two contended ones
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _num_params(module):
    return sum(p.numel() for p in module.parameters())


def _torchvision_resnet18_keys():
    """The state-dict keys torchvision's resnet18() has (fc excluded), spelled out independently of our code."""
    bn_fields = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = ["conv1.weight"] + [f"bn1.{b}" for b in bn_fields]
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    for layer in range(1, 5):
        for block in range(2):
            prefix = f"layer{layer}.{block}."
            for i in (1, 2):
                keys.append(prefix + f"conv{i}.weight")
                keys += [prefix + f"bn{i}.{b}" for b in bn]
            if layer > 1 and block == 0:
                keys.append(prefix + "downsample.0.weight")
                keys += [prefix + f"downsample.1.{b}" for b in bn]
    return keys


def _randomized_state(encoder):
    """A state dict with every float tensor random (so a load can be told apart from the init)."""
    state = {}
    for key, value in encoder.state_dict().items():
        if value.is_floating_point():
            state[key] = torch.rand_like(value) + 0.5 if "running_var" in key else torch.randn_like(value)
        else:
            state[key] = value.clone()
    return state


@pytest.mark.parametrize("height,width", [(32, 96), (128, 416)])
def test_dispnet_output_shapes_and_range(height, width):
    net = DispNet(18).eval()
    with torch.no_grad():
        disps, features = net(torch.rand(1, 3, height, width))
    assert [tuple(d.shape) for d in disps] == [(1, 1, height >> s, width >> s) for s in range(4)]
    assert [tuple(f.shape) for f in features] == [
        (1, c, height >> s, width >> s) for c, s in zip((64, 64, 128, 256, 512), range(1, 6))
    ]
    for disp in disps:
        assert torch.isfinite(disp).all()
        assert disp.min() > 0.01 and disp.max() < 10.01


def test_disp_is_ten_sigmoid_plus_offset_and_depth_is_inverse():
    net = DispNet(18).eval()
    img = torch.rand(2, 3, 32, 96)
    with torch.no_grad():
        net.decoder.head0.conv.bias.fill_(50.0)
        high = net(img)[0][0]
        net.decoder.head0.conv.bias.fill_(-50.0)
        low = net(img)[0][0]
    assert torch.allclose(high, torch.full_like(high, 10.01), atol=1e-4)
    assert torch.allclose(low, torch.full_like(low, 0.01), atol=1e-6)
    assert torch.allclose(disp_to_depth(low), torch.full_like(low, 100.0), rtol=1e-4)


@pytest.mark.parametrize("height,width", [(32, 96), (128, 416)])
def test_posenet_output_shape_and_scale(height, width):
    net = PoseNet(18).eval()
    tgt, ref = torch.rand(2, 3, height, width), torch.rand(2, 3, height, width)
    with torch.no_grad():
        pose = net(tgt, ref)
        raw = net.head(net.encoder((torch.cat([tgt, ref], 1) - 0.45) / 0.225)[-1])
    assert pose.shape == (2, 6)
    assert torch.allclose(pose, 0.01 * raw, atol=1e-7)


def test_resnet50_variants_shapes():
    disp_net, pose_net = DispNet(50).eval(), PoseNet(50).eval()
    img = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        disps, features = disp_net(img)
        pose = pose_net(img, img)
    assert disp_net.encoder.num_ch_enc == [64, 256, 512, 1024, 2048]
    assert [f.shape[1] for f in features] == [64, 256, 512, 1024, 2048]
    assert disps[0].shape == (1, 1, 32, 64) and pose.shape == (1, 6)


def test_parameter_counts_match_the_baseline():
    disp_count, pose_count = _num_params(DispNet(18)), _num_params(PoseNet(18))
    assert abs(disp_count - 14.3e6) / 14.3e6 < 0.01, disp_count
    assert abs(pose_count - 12.5e6) / 12.5e6 < 0.01, pose_count
    # ResNet-18 without fc has 11,176,512 parameters (torchvision's 11,689,512 minus fc's 513,000).
    assert _num_params(ResNetEncoder(18)) == 11_176_512
    assert _num_params(ResNetEncoder(50)) == 25_557_032 - 2_049_000


def test_state_dict_keys_match_torchvision_naming():
    keys = list(ResNetEncoder(18).state_dict().keys())
    assert keys == _torchvision_resnet18_keys()
    assert "layer1.0.conv1.weight" in keys and "layer4.1.bn2.running_var" in keys
    keys50 = ResNetEncoder(50).state_dict().keys()
    assert len(keys50) == 318  # torchvision resnet50: 320 keys incl. fc.weight, fc.bias
    assert {"layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.running_var"} <= set(keys50)
    assert all(k.startswith("encoder.") or k.startswith("decoder.") for k in DispNet(18).state_dict())


def test_imagenet_weights_round_trip_with_fc_and_old_style_file(tmp_path):
    state = _randomized_state(ResNetEncoder(18))
    with_fc = dict(state, **{"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)})
    path = tmp_path / "resnet18.pth"
    torch.save(with_fc, path)
    net = DispNet(18, pretrained_path=path)
    for key, value in state.items():
        assert torch.equal(net.encoder.state_dict()[key], value), key

    # Old torchvision files have no num_batches_tracked buffers and may be wrapped/prefixed.
    old_style = {"state_dict": {"module." + k: v for k, v in state.items() if "num_batches_tracked" not in k}}
    old_path = tmp_path / "old.pth"
    torch.save(old_style, old_path)
    encoder = ResNetEncoder(18)
    encoder.load_imagenet_weights(old_path)
    assert torch.equal(encoder.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])


def test_six_channel_conv1_is_duplicated_and_halved(tmp_path):
    encoder3 = ResNetEncoder(18)
    state = _randomized_state(encoder3)
    encoder3.load_state_dict(state)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    pose_net = PoseNet(18, pretrained_path=path)
    w = state["conv1.weight"]
    assert pose_net.encoder.conv1.weight.shape == (64, 6, 7, 7)
    assert torch.allclose(pose_net.encoder.conv1.weight, torch.cat([w, w], dim=1) / 2)
    assert torch.equal(pose_net.encoder.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
    # Consequence: the same frame twice gives the ImageNet network's response to that frame.
    x = torch.randn(1, 3, 64, 64)
    encoder3.eval(), pose_net.eval()
    with torch.no_grad():
        six, three = pose_net.encoder(torch.cat([x, x], 1)), encoder3(x)
    assert torch.allclose(six[0], three[0], rtol=1e-4, atol=1e-4)
    assert torch.allclose(six[-1], three[-1], rtol=1e-3, atol=1e-3 * three[-1].abs().max().item())


def test_missing_weights_file_names_the_path(tmp_path):
    path = tmp_path / "nope" / "resnet18.pth"
    with pytest.raises(CheckpointError, match="not found.*resnet18.pth"):
        DispNet(18, pretrained_path=path)


def test_mismatched_weights_file_is_a_clear_error(tmp_path):
    r50 = tmp_path / "resnet50.pth"
    torch.save(ResNetEncoder(50).state_dict(), r50)
    with pytest.raises(CheckpointError, match="resnet50.pth does not match a ResNet-18"):
        PoseNet(18, pretrained_path=r50)

    state = ResNetEncoder(18).state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 32, 3, 3)
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save(state, wrong_shape)
    with pytest.raises(CheckpointError, match="layer2.0.conv1.weight"):
        DispNet(18, pretrained_path=wrong_shape)

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        ResNetEncoder(18).load_imagenet_weights(garbage)

    not_a_state_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(CheckpointError, match="does not contain a state dict"):
        ResNetEncoder(18).load_imagenet_weights(not_a_state_dict)


def test_gradients_reach_both_networks_and_features():
    disp_net, pose_net = DispNet(18), PoseNet(18)
    img = torch.rand(2, 3, 32, 96)
    disps, features = disp_net(img)
    pose = pose_net(img, img.flip(-1))
    (sum(d.mean() for d in disps) + features[2].mean() + pose.abs().sum()).backward()
    assert disp_net.encoder.conv1.weight.grad.abs().sum() > 0
    assert disp_net.decoder.head0.conv.weight.grad.abs().sum() > 0
    assert pose_net.encoder.conv1.weight.grad.abs().sum() > 0


def test_networks_are_scriptable():
    disp_net, pose_net = DispNet(18).eval(), PoseNet(18).eval()
    scripted_disp, scripted_pose = torch.jit.script(disp_net), torch.jit.script(pose_net)
    img, ref = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.no_grad(), torch.jit.optimized_execution(False):  # skip the profiling passes: keeps the test fast
        disps, features = scripted_disp(img)
        assert len(disps) == 4 and len(features) == 5
        assert torch.allclose(disps[0], disp_net(img)[0][0], atol=1e-5)
        assert torch.allclose(scripted_pose(img, ref), pose_net(img, ref), atol=1e-6)
