"""Checkpoints with known behaviour, for tests, benchmarks and demos without a trained model (no rclpy needed).

make_constant_motion_checkpoint(path, motion=(0, 0, 0.1, 0, 0, 0)) writes a real bwdp checkpoint whose PoseNet
returns exactly ``motion`` (tx, ty, tz, rx, ry, rz; T_prev_cur in optical axes) for every pair of frames, and whose
DispNet returns a constant depth when ``depth`` is given (else its seeded random initialisation).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from bwdp_core.checkpoint import build_models, make_checkpoint, save_checkpoint


def make_constant_motion_checkpoint(
    path: str | os.PathLike,
    height: int = 64,
    width: int = 192,
    motion: Sequence[float] = (0.0, 0.0, 0.1, 0.0, 0.0, 0.0),
    depth: Optional[float] = None,
    seed: int = 0,
    num_layers: int = 18,
) -> Path:
    """Write the checkpoint to ``path`` and return it. ``depth`` must lie in (0.1, 100) (DispNet's range)."""
    torch.manual_seed(seed)
    disp_net, pose_net = build_models({"num_layers": num_layers, "height": height, "width": width})
    with torch.no_grad():
        head = pose_net.head.out  # last 1x1 conv; PoseNet = output_scale * mean(head)
        head.weight.zero_()
        head.bias.copy_(torch.tensor([float(m) for m in motion]) / pose_net.output_scale)
        if depth is not None:
            disp = 1.0 / float(depth)
            scale, offset = disp_net.decoder.head0.scale, disp_net.decoder.head0.offset
            p = (disp - offset) / scale
            if not 0.0 < p < 1.0:
                raise ValueError(f"depth {depth} is outside DispNet's range")
            decoder = disp_net.decoder
            for head_d in (decoder.head0, decoder.head1, decoder.head2, decoder.head3):
                head_d.conv.weight.zero_()
                head_d.conv.bias.fill_(float(torch.logit(torch.tensor(p, dtype=torch.float64))))
    ckpt = make_checkpoint(disp_net, pose_net, height, width, config={"fixture": "constant_motion",
                                                                      "motion": [float(m) for m in motion]})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, ckpt)
    return path
