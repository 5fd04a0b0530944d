"""`bwdp synth`: render a procedural street with ground truth into the KITTI odometry layout."""
from __future__ import annotations

import argparse
import re
import time

from bwdp_core.errors import ConfigError
from bwdp_core.synth.render import (
    CULL_DISTANCE,
    START_S,
    STEP_M,
    camera_poses,
    check_seed,
    check_size,
    kitti_intrinsics,
    make_scene,
    render_frame,
)
from bwdp_core.synth.write import write_frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output root (gets sequences/<seq>/... and poses/<seq>.txt)")
    parser.add_argument("--frames", type=int, default=100, help="number of frames (>= 2), 1 m apart")
    parser.add_argument("--height", type=int, default=128, help="image height in pixels")
    parser.add_argument("--width", type=int, default=416, help="image width in pixels")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (same seed, same images)")
    parser.add_argument("--sequence", default="00", help="sequence name (folder sequences/<name>)")
    parser.add_argument("--moving-object", action="store_true", help="add an oncoming car in the left lane")
    parser.add_argument("--static", action="store_true", help="camera does not move (all poses identical)")


def main(args: argparse.Namespace) -> int:
    check_size(args.frames, args.height, args.width)
    check_seed(args.seed)
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", args.sequence):
        raise ConfigError(f"--sequence must be a plain folder name, got {args.sequence!r}")
    start = time.perf_counter()
    scene = make_scene(args.seed, path_length=START_S + STEP_M * args.frames + CULL_DISTANCE,
                       moving_object=args.moving_object)
    K = kitti_intrinsics(args.height, args.width)
    poses = camera_poses(scene, args.frames, static=args.static)
    frames = (render_frame(scene, pose, K, args.height, args.width, frame_index=n) for n, pose in enumerate(poses))
    seq_dir = write_frames(args.out, K, poses, frames, sequence=args.sequence)
    seconds = time.perf_counter() - start
    print(f"bwdp synth: wrote {args.frames} frames {args.height}x{args.width} (seed {args.seed}"
          f"{', moving object' if args.moving_object else ''}) to {seq_dir} in {seconds:.1f} s")
    return 0
