"""`train.channels_last`: the networks and images of a training step in channels_last memory format give the same
loss and gradients as the default layout (only the speed differs: bench/train_step.py), and the key reaches the
networks that `bwdp train` builds."""
from __future__ import annotations

import torch

from bwdp_core.losses.total import total_loss
from bwdp_core.train.config import load_config
from bwdp_core.train.distributed import init_distributed
from bwdp_core.train.loop import build_state
from bwdp_core.train.step import SnippetModel, as_prediction, build_loss_config, build_networks


def _grads_and_loss(cfg: dict, channels_last: bool, images, K):
    torch.manual_seed(0)
    disp_net, pose_net = build_networks(cfg)
    loss_cfg = build_loss_config(cfg)
    model = SnippetModel(disp_net, pose_net, loss_cfg, channels_last=channels_last).train()
    tgt, refs = images[1], [images[0], images[2]]
    total, _, _ = total_loss(loss_cfg, tgt, refs, K, as_prediction(model(tgt, refs)))
    total.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return float(total.detach()), grads, model


def test_channels_last_step_matches_the_default_layout():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the one-recording recipe's networks (GroupNorm decoder) and loss, at a toy size
        cfg = load_config("sequence", ["data.source.path=/unused", "data.height=32", "data.width=96",
                                       "model.init=null"])
        g = torch.Generator().manual_seed(3)
        images = [torch.rand(2, 3, 32, 96, generator=g) for _ in range(3)]
        K = torch.tensor([[50.0, 0, 48], [0, 50, 16], [0, 0, 1]]).expand(2, 3, 3)
        loss_a, grads_a, model_a = _grads_and_loss(cfg, False, images, K)
        loss_b, grads_b, model_b = _grads_and_loss(cfg, True, images, K)
    finally:
        torch.set_num_threads(threads)
    four_d = [p for p in model_b.parameters() if p.dim() == 4]
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    assert all(p.is_contiguous() for p in model_a.parameters())
    assert abs(loss_a - loss_b) <= 1e-5 * abs(loss_a)
    assert grads_a.keys() == grads_b.keys()
    # the same gradient up to fp32 summation order: relative difference of the whole gradient vector
    flat_a = torch.cat([grads_a[name].flatten() for name in grads_a])
    flat_b = torch.cat([grads_b[name].flatten() for name in grads_a])
    assert float((flat_a - flat_b).norm() / flat_a.norm()) <= 1e-3  # measured 5e-5; a layout bug gives O(1)


def test_train_channels_last_reaches_the_networks():
    ctx = init_distributed("cpu")  # the single-process context `bwdp train` uses without torchrun
    for flag in (False, True):
        cfg = load_config(None, ["data.source.path=/x", "data.height=32", "data.width=96",
                                 f"train.channels_last={str(flag).lower()}"])
        state = build_state(cfg, ctx, build_loss_config(cfg), None)
        convs = [p for p in state.net.parameters() if p.dim() == 4]
        if flag:
            assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
        assert all(p.is_contiguous() for p in convs) != flag  # (1x1 kernels are contiguous in both layouts)
