"""DispNet: ResNet encoder + five-level decoder with skip connections, predicting disparity at four scales.

Architecture (method notes, "Networks"): decoder channels 16, 32, 64, 128, 256; each level = 3x3 conv (ELU,
replicate padding),
nearest x2 upsampling, concatenation with the encoder feature of the same resolution, 3x3 conv (ELU); a 3x3 conv head
per output scale; disp = 10 * sigmoid(x) + 0.01 so depth = 1 / disp lies in (0.1, 100) (scale-ambiguous units).
"""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bwdp_core.errors import ConfigError
from bwdp_core.nets.resnet_encoder import ResNetEncoder

IMAGE_MEAN = 0.45
IMAGE_STD = 0.225
DISP_SCALE = 10.0
DISP_OFFSET = 0.01
DECODER_CHANNELS = (16, 32, 64, 128, 256)
NUM_SCALES = 4
DECODER_NORMS = ("none", "group")
GROUPS = 8  # GroupNorm groups per decoder conv (channels 16..256)


def normalize_image(img: torch.Tensor, mean: float = IMAGE_MEAN, std: float = IMAGE_STD) -> torch.Tensor:
    """Map an image in [0, 1] to the network's input range: (x - 0.45) / 0.225. Any shape."""
    return (img - mean) / std


def disp_to_depth(disp: torch.Tensor) -> torch.Tensor:
    """Depth from DispNet's disparity: depth = 1 / disp (same shape; disp >= 0.01 so depth <= 100)."""
    return 1.0 / disp


class ConvELU(nn.Module):
    """3x3 convolution with edge-replicating padding, optional GroupNorm, then ELU; keeps the spatial size.

    Replicate (not reflect) padding: it avoids zero-padding border artefacts like reflection does, and also works on the
    1-pixel-high 1/32 map of a 32-pixel-high input, where reflection padding is undefined.
    ``norm="group"``: GroupNorm (GROUPS groups, learned affine) between conv and ELU, so a coherent drift of the conv
    weights under Adam cannot blow the activations up (issue 13: from scratch they grew from ~3 to 10^2-10^3 in
    40 steps and saturated the disparity head); ``"none"``: the method notes' plain conv + ELU.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str = "none"):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="replicate")
        self.norm = nn.GroupNorm(min(GROUPS, out_channels), out_channels) if norm == "group" else nn.Identity()
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class UpLevel(nn.Module):
    """One decoder level: conv, x2 nearest upsampling, optional skip concatenation, conv.

    forward(x [B, C_in, h, w], skip [B, C_skip, 2h, 2w] or None) -> [B, C_out, 2h, 2w]
    """

    def __init__(self, in_channels: int, out_channels: int, skip_channels: int, norm: str = "none"):
        super().__init__()
        self.reduce = ConvELU(in_channels, out_channels, norm)
        self.fuse = ConvELU(out_channels + skip_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor]) -> torch.Tensor:
        x = F.interpolate(self.reduce(x), scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.fuse(x)


class DispHead(nn.Module):
    """3x3 conv to one channel, then disp = 10 * sigmoid + 0.01.  [B, C, h, w] -> [B, 1, h, w]."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 3, padding=1, padding_mode="replicate")
        self.scale = DISP_SCALE
        self.offset = DISP_OFFSET

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.sigmoid(self.conv(x)) + self.offset


class DispDecoder(nn.Module):
    """Five upsampling levels from 1/32 to full resolution; disparity heads at 1/8, 1/4, 1/2 and 1/1.

    forward(features: 5 encoder maps, num_scales=4) -> list of ``num_scales`` disparities [B,1,H/2^s,W/2^s],
    s = 0..num_scales-1 (full resolution first). Inference asks for 1: the heads of the coarser scales are not run.
    """

    def __init__(self, num_ch_enc: List[int], channels: Tuple[int, ...] = DECODER_CHANNELS, norm: str = "none"):
        super().__init__()
        c0, c1, c2, c3, c4 = channels
        e0, e1, e2, e3, e4 = num_ch_enc
        self.level4 = UpLevel(e4, c4, e3, norm)  # 1/32 -> 1/16
        self.level3 = UpLevel(c4, c3, e2, norm)  # -> 1/8
        self.level2 = UpLevel(c3, c2, e1, norm)  # -> 1/4
        self.level1 = UpLevel(c2, c1, e0, norm)  # -> 1/2
        self.level0 = UpLevel(c1, c0, 0, norm)  # -> 1/1, no skip
        self.head3 = DispHead(c3)
        self.head2 = DispHead(c2)
        self.head1 = DispHead(c1)
        self.head0 = DispHead(c0)

    def forward(self, features: List[torch.Tensor], num_scales: int = NUM_SCALES) -> List[torch.Tensor]:
        disps = []
        x = self.level4(features[4], features[3])
        x = self.level3(x, features[2])
        if num_scales > 3:
            disps.append(self.head3(x))
        x = self.level2(x, features[1])
        if num_scales > 2:
            disps.append(self.head2(x))
        x = self.level1(x, features[0])
        if num_scales > 1:
            disps.append(self.head1(x))
        x = self.level0(x, None)
        disps.append(self.head0(x))
        return disps[::-1]


class DispNet(nn.Module):
    """Monocular disparity network.

    forward(img [B,3,H,W] RGB in [0,1], H and W divisible by 32, num_scales=4) -> (disps, features):
        disps:    list of ``num_scales`` tensors [B,1,H/2^s,W/2^s], s = 0.., values in (0.01, 10.01)
        features: the 5 encoder feature maps (see ResNetEncoder), used by the feature-perception loss (eq. 5).
    ``pretrained_path``: optional torchvision ImageNet ResNet state-dict file for the encoder.
    ``decoder_norm``: "none" (method notes) or "group" (GroupNorm in every decoder conv, see ConvELU).
    """

    def __init__(self, num_layers: int = 18, pretrained_path: Optional[str | os.PathLike] = None,
                 decoder_norm: str = "none"):
        super().__init__()
        if decoder_norm not in DECODER_NORMS:
            raise ConfigError(f"model.decoder_norm must be one of {', '.join(DECODER_NORMS)}, got {decoder_norm!r}")
        self.num_layers = num_layers
        self.decoder_norm = decoder_norm
        self.encoder = ResNetEncoder(num_layers, in_channels=3)
        if pretrained_path is not None:
            self.encoder.load_imagenet_weights(pretrained_path)
        self.decoder = DispDecoder(self.encoder.num_ch_enc, norm=decoder_norm)

    def forward(self, img: torch.Tensor, num_scales: int = NUM_SCALES) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        features = self.encoder(normalize_image(img))
        return self.decoder(features, num_scales), features
