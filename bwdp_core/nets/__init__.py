"""Networks: ResNet encoder (torchvision-compatible keys), DispNet (multi-scale disparity) and PoseNet (6-DoF)."""
from bwdp_core.nets.disp_net import DispNet, disp_to_depth, normalize_image
from bwdp_core.nets.pose_net import PoseNet
from bwdp_core.nets.resnet_encoder import ResNetEncoder

__all__ = ["DispNet", "PoseNet", "ResNetEncoder", "disp_to_depth", "normalize_image"]
