"""bwdp_core: self-supervised monocular depth and ego-motion with the bidirectional weighted loss (ROS-free)."""
__version__ = "0.1.0"
