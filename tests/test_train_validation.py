"""The best.pt criterion: AbsRel against GT depth when samples carry it, else the validation photometric loss."""
from __future__ import annotations

import pytest
import torch

from bwdp_core.checkpoint import build_models
from bwdp_core.losses.config import loss_config
from bwdp_core.train.validation import validate


def _batches(with_gt: bool, disp_net=None, scale: float = 1.0):
    torch.manual_seed(0)
    batches = []
    for _ in range(2):
        tgt = torch.rand(2, 3, 32, 96)
        batch = {"tgt_img": tgt, "ref_imgs": torch.rand(2, 2, 3, 32, 96),
                 "intrinsics": torch.tensor([[50.0, 0, 47.5], [0, 50.0, 15.5], [0, 0, 1]]).expand(2, 3, 3)}
        if with_gt:
            with torch.no_grad():
                depth = 1.0 / disp_net(tgt)[0][0]
            batch["depth_gt"] = depth * scale
        batches.append(batch)
    return batches


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    disp_net, pose_net = build_models({"num_layers": 18})
    return disp_net.eval(), pose_net.eval()


def test_gt_depth_gives_abs_rel_after_median_scaling(nets):
    disp_net, pose_net = nets
    # GT = the network's own depth x 7: after per-image median scaling the error is zero
    metrics = validate(disp_net, pose_net, loss_config("full"), _batches(True, disp_net, 7.0), torch.device("cpu"),
                       use_gt=True)
    assert metrics["metric"] == "abs_rel" and metrics["value"] == pytest.approx(0.0, abs=1e-5)
    assert metrics["delta1"] == 1.0

    # a GT that disagrees in structure gives a clearly positive AbsRel
    bad = _batches(True, disp_net, 7.0)
    for batch in bad:
        batch["depth_gt"] = batch["depth_gt"].flip(-1).flip(-2) + torch.linspace(0, 20, 96)
    worse = validate(disp_net, pose_net, loss_config("full"), bad, torch.device("cpu"), use_gt=True)
    assert worse["value"] > 0.01


def test_without_gt_the_photometric_loss_decides(nets):
    disp_net, pose_net = nets
    disp_net.train()
    metrics = validate(disp_net, pose_net, loss_config("full"), _batches(False), torch.device("cpu"), use_gt=True,
                       max_batches=1)
    assert metrics["metric"] == "photometric" and 0 < metrics["value"] < 1
    assert disp_net.training and not pose_net.training  # modes restored
