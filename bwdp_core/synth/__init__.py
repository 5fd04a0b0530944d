"""Procedural street scenes with exact ground truth (depth, poses, intrinsics, occlusion) for tests and benchmarks.

    from bwdp_core.synth import render_sequence, write_kitti_odometry
    seq = render_sequence(frames=20, height=128, width=416, seed=0)
    write_kitti_odometry(seq, "out/")            # or: bwdp synth --out out/ --frames 20
"""
from bwdp_core.synth.render import (
                                    SynthSequence,
                                    camera_poses,
                                    kitti_intrinsics,
                                    render_frame,
                                    render_layers,
                                    render_sequence,
)
from bwdp_core.synth.scene import Scene, make_scene
from bwdp_core.synth.write import read_poses, write_kitti_odometry

__all__ = ["SynthSequence", "Scene", "camera_poses", "kitti_intrinsics", "make_scene", "read_poses", "render_frame",
           "render_layers", "render_sequence", "write_kitti_odometry"]
