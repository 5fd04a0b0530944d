"""A short training run of the full method on bwdp synth data lowers the loss and the depth error (CPU, < 2 min).

A tiny Adam loop (the real loop is bwdp_core.train): 8 rendered frames at 32x96, 3-frame snippets, batch 2.
"""

import numpy as np
import pytest
import torch

from bwdp_core.losses import loss_config
from bwdp_core.losses.total import total_loss
from bwdp_core.model import predict_snippet
from bwdp_core.nets.disp_net import DispNet
from bwdp_core.nets.pose_net import PoseNet
from bwdp_core.synth.render import render_sequence

HEIGHT, WIDTH, FRAMES, STEPS, BATCH = 32, 96, 8, 60, 2


def median_scaled_abs_rel(pred_depth: torch.Tensor, gt_depth: torch.Tensor) -> float:
    """Mean over images of mean |g − s·p| / g with s = median(g) / median(p) on pixels with GT (sky = 0 left out)."""
    errors = []
    for pred, gt in zip(pred_depth, gt_depth):
        valid = gt > 0
        g, p = gt[valid], pred[valid]
        p = p * g.median() / p.median()
        errors.append(((g - p).abs() / g).mean().item())
    return float(np.mean(errors))


@pytest.mark.slow
def test_short_training_lowers_loss_and_abs_rel():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seq = render_sequence(FRAMES, HEIGHT, WIDTH, seed=0)
        images = torch.from_numpy(seq.images).permute(0, 3, 1, 2).float() / 255
        gt_depth = torch.from_numpy(seq.depths)
        K = torch.from_numpy(seq.K).float()
        disp_net, pose_net = DispNet(18), PoseNet(18)
        cfg = loss_config("full")
        optimizer = torch.optim.Adam(list(disp_net.parameters()) + list(pose_net.parameters()), lr=5e-4)
        centres = torch.arange(1, FRAMES - 1)

        def evaluate():
            disp_net.eval(), pose_net.eval()
            with torch.no_grad():
                depth = 1.0 / disp_net(images)[0][0][:, 0]
                tgt, refs = images[centres], [images[centres - 1], images[centres + 1]]
                pred = predict_snippet(disp_net, pose_net, tgt, refs, cfg)
                loss = total_loss(cfg, tgt, refs, K.expand(len(centres), 3, 3), pred)[0].item()
            disp_net.train(), pose_net.train()
            return loss, median_scaled_abs_rel(depth, gt_depth)

        loss_before, abs_rel_before = evaluate()
        generator = torch.Generator().manual_seed(0)
        for _ in range(STEPS):
            index = centres[torch.randint(len(centres), (BATCH,), generator=generator)]
            tgt, refs = images[index], [images[index - 1], images[index + 1]]
            pred = predict_snippet(disp_net, pose_net, tgt, refs, cfg)
            total, terms, _ = total_loss(cfg, tgt, refs, K.expand(BATCH, 3, 3), pred)
            assert torch.isfinite(total)
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
        loss_after, abs_rel_after = evaluate()
    finally:
        torch.set_num_threads(threads)
    print(f"loss {loss_before:.4f} -> {loss_after:.4f}, AbsRel {abs_rel_before:.4f} -> {abs_rel_after:.4f}")
    assert loss_after < 0.8 * loss_before
    assert abs_rel_after < 0.92 * abs_rel_before
