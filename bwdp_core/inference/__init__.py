"""Inference: the network-input preprocessing (preprocess.py), the runtime backends (backends.py), the camera
intrinsics rule (intrinsics.py) and the ROS-free VO processing shared by the node and `bwdp replay` (vo_pipeline.py)."""
