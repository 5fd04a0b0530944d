"""ResNet-18/50 feature encoder, written here (torchvision is not needed).

The module tree mirrors torchvision's ``ResNet`` (without ``avgpool``/``fc``) so that its state-dict keys are the same
(``conv1.weight``, ``bn1.running_mean``, ``layer1.0.conv1.weight``, ``layer2.0.downsample.0.weight``, ...). An ImageNet
weights file saved from torchvision therefore loads with :meth:`ResNetEncoder.load_imagenet_weights`.

The encoder does NOT normalise its input: :class:`~bwdp_core.nets.disp_net.DispNet` and
:class:`~bwdp_core.nets.pose_net.PoseNet` do that before calling it.
"""
from __future__ import annotations

import os
from typing import Dict, List

import torch
from torch import nn

from bwdp_core.errors import CheckpointError, ConfigError

IMAGENET_INPUT_CHANNELS = 3


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut; ResNet-18/34 building block."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as in torchvision "ResNet v1.5"), 1x1 expand x4; ResNet-50 building block."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Identity when shapes agree, else 1x1 conv + BN named ``downsample.0`` / ``downsample.1`` like torchvision."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))


# num_layers -> (block type, blocks per stage)
_ARCHITECTURES = {18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResNetEncoder(nn.Module):
    """ResNet-18 or ResNet-50 trunk returning five feature maps.

    forward(x [B, in_channels, H, W], already normalised) -> list of 5 tensors:
        conv1+bn1+relu  [B, 64, H/2,  W/2]
        layer1          [B, C1, H/4,  W/4]
        layer2          [B, C2, H/8,  W/8]
        layer3          [B, C3, H/16, W/16]
        layer4          [B, C4, H/32, W/32]
    with ``num_ch_enc`` = [64, 64, 128, 256, 512] (ResNet-18) or [64, 256, 512, 1024, 2048] (ResNet-50).
    H and W must be divisible by 32 for the decoder's skips to line up.
    """

    def __init__(self, num_layers: int = 18, in_channels: int = 3):
        super().__init__()
        if num_layers not in _ARCHITECTURES:
            raise ConfigError(f"num_layers={num_layers!r} is not supported (choose 18 or 50)")
        block, blocks_per_stage = _ARCHITECTURES[num_layers]
        self.num_layers = num_layers
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        planes_in = 64
        stages = []
        for stage_index, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stage)):
            stride = 1 if stage_index == 0 else 2
            blocks = []
            for block_index in range(num_blocks):
                blocks.append(block(planes_in, planes, stride if block_index == 0 else 1))
                planes_in = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_ch_enc = [64] + [p * block.expansion for p in (64, 128, 256, 512)]
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        f0 = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(f0))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [f0, f1, f2, f3, f4]

    def load_imagenet_weights(self, path: str | os.PathLike) -> None:
        """Load a torchvision-style ResNet state dict (a ``.pth`` file, with or without ``fc.*`` keys).

        Accepts a bare state dict or one wrapped under ``"state_dict"``/``"model"``, with or without a ``module.``
        prefix. For a 6-channel encoder, a 3-channel ``conv1.weight`` is duplicated along the input channels and halved,
        so a pair of identical frames produces the same response as one frame through the ImageNet network.
        Raises CheckpointError (naming ``path``) when the file is missing, unreadable, or does not match this network.
        """
        state = read_state_dict_file(path, what="ImageNet weights")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        own = self.state_dict()
        conv1 = state.get("conv1.weight")
        if (
            isinstance(conv1, torch.Tensor)
            and conv1.dim() == 4
            and conv1.shape[1] == IMAGENET_INPUT_CHANNELS
            and self.in_channels != IMAGENET_INPUT_CHANNELS
        ):
            if self.in_channels % IMAGENET_INPUT_CHANNELS != 0:
                raise CheckpointError(
                    f"{path}: cannot adapt 3-channel conv1 to in_channels={self.in_channels}"
                )
            repeats = self.in_channels // IMAGENET_INPUT_CHANNELS
            state["conv1.weight"] = conv1.repeat(1, repeats, 1, 1) / repeats
        # Old torchvision files predate BatchNorm's num_batches_tracked buffer: those may be absent.
        missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise CheckpointError(
                f"{path} does not match a ResNet-{self.num_layers} encoder: "
                f"{len(missing)} missing keys {_preview(missing)}, {len(unexpected)} unexpected keys "
                f"{_preview(unexpected)}"
            )
        for key, value in state.items():
            if not isinstance(value, torch.Tensor) or value.shape != own[key].shape:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise CheckpointError(
                    f"{path} does not match a ResNet-{self.num_layers} encoder with {self.in_channels} input channels: "
                    f"'{key}' has shape {got}, expected {tuple(own[key].shape)}"
                )
        self.load_state_dict(state, strict=False)


def read_state_dict_file(path: str | os.PathLike, what: str = "weights") -> Dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save`` (loaded with ``weights_only=True`` onto the CPU).

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` and strips a DataParallel ``module.`` prefix.
    Raises CheckpointError naming the path when the file is missing, corrupt or not a dict of tensors.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{what} file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors, truncated zip archives, non-tensor pickles
        raise CheckpointError(f"{what} file {path} cannot be read ({type(exc).__name__}: {_first_line(exc)})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"{what} file {path} does not contain a state dict (got {type(obj).__name__})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _preview(keys: List[str], n: int = 3) -> str:
    return "[" + ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") + "]"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
