"""PoseNet: relative camera motion between two frames from a 6-channel ResNet and a small convolutional head.

Architecture (method notes, "Networks"): the two frames are normalised and stacked along channels, a ResNet with a
6-channel first conv encodes them, then 1x1 conv (256) -> 3x3 conv (256) -> 3x3 conv (256) -> 1x1 conv (6), ReLU
between,
global mean over the 1/32 map, times 0.01 (keeps the initial motion near identity). The translation and rotation
parts may use other factors (``translation_scale``, ``rotation_scale``): the output of a freshly initialised head moves
by a similar amount per Adam step in every component, so each factor sets how fast that part of the motion can grow
(see ``model.translation_scale`` / ``model.rotation_scale`` in bwdp_core/config/train.yaml).
"""
from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from bwdp_core.nets.disp_net import normalize_image
from bwdp_core.nets.resnet_encoder import ResNetEncoder

POSE_SCALE = 0.01
POSE_FACTORS = ("rotation_scale", "translation_scale")  # PoseNet's output factors, model metadata keys
HEAD_CHANNELS = 256


class PoseHead(nn.Module):
    """[B, C, h, w] encoder map -> [B, 6] pose vector (before the 0.01 scaling)."""

    def __init__(self, in_channels: int, channels: int = HEAD_CHANNELS):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, channels, 1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, 6, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.squeeze(x))
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.out(x).mean(dim=(2, 3))


class PoseNet(nn.Module):
    """Relative pose T_{t->r} (maps points of tgt's camera into ref's camera) as a 6-vector.

    forward(tgt [B,3,H,W], ref [B,3,H,W], RGB in [0,1], H and W divisible by 32) -> [B,6] = (tx,ty,tz,rx,ry,rz),
    already multiplied by ``translation_scale`` (tx, ty, tz) and ``rotation_scale`` (rx, ry, rz), both 0.01 by
    default; convert with ``bwdp_core.geometry.pose_vec_to_mat``.
    ``pretrained_path``: optional torchvision ImageNet ResNet state-dict file; its conv1 is duplicated and halved.
    """

    def __init__(self, num_layers: int = 18, pretrained_path: Optional[str | os.PathLike] = None,
                 rotation_scale: float = POSE_SCALE, translation_scale: float = POSE_SCALE):
        super().__init__()
        self.num_layers = num_layers
        self.rotation_scale = float(rotation_scale)
        self.translation_scale = float(translation_scale)
        self.encoder = ResNetEncoder(num_layers, in_channels=6)
        if pretrained_path is not None:
            self.encoder.load_imagenet_weights(pretrained_path)
        self.head = PoseHead(self.encoder.num_ch_enc[-1])
        # (tx, ty, tz) x translation_scale, (rx, ry, rz) x rotation_scale; not saved in the state dict (the
        # checkpoint's model metadata holds both), moved with the module by .to()
        self.register_buffer("output_scale", torch.tensor([self.translation_scale] * 3 + [self.rotation_scale] * 3),
                             persistent=False)

    def forward(self, tgt: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        x = normalize_image(torch.cat([tgt, ref], dim=1))
        return self.output_scale * self.head(self.encoder(x)[-1])
