"""`bwdp vo`: offline visual odometry over an image sequence (the chaining is in bwdp_core.eval.vo).

    bwdp vo --checkpoint ckpt.pt --images DIR --intrinsics cam.txt --out traj.txt [--format kitti|tum]
    bwdp vo --checkpoint ckpt.pt --kitti-seq ROOT/sequences/09 --out 09.txt
    bwdp vo ... --camera-height 1.65     # metres: the node's processing frame by frame, scale from the ground plane
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from bwdp_core.checkpoint import load_models
from bwdp_core.data.image_folder import ImageFolderSource
from bwdp_core.device import resolve_device
from bwdp_core.errors import DataError
from bwdp_core.eval.trajectory_io import write_trajectory
from bwdp_core.eval.vo import open_kitti_sequence, run_pipeline, run_vo
from bwdp_core.inference import settings
from bwdp_core.inference.preprocess import image_to_tensor
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig, near_constant_depth_warning

#: frames whose depth the near-constant-depth check looks at (the first ones of the sequence)
DEPTH_CHECK_FRAMES = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="bwdp checkpoint (.pt)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images, in name order")
    src.add_argument("--kitti-seq", help="KITTI odometry sequence folder (ROOT/sequences/NN)")
    parser.add_argument("--camera", type=int, choices=(0, 1, 2, 3), default=None,
                        help="with --kitti-seq: image_<C> and P<C> (0 = left grey, 2 = left colour; default: image_2 "
                             "when present, else the first camera the sequence has)")
    parser.add_argument("--intrinsics", default=None,
                        help="with --images: cam.txt (3x3 or fx fy cx cy) or \"fx fy cx cy\" (default DIR/cam.txt)")
    parser.add_argument("--out", required=True, help="trajectory file to write")
    parser.add_argument("--format", choices=("kitti", "tum"), default="kitti",
                        help="kitti: 12 numbers per pose; tum: 'stamp x y z qx qy qz qw'")
    parser.add_argument("--fps", type=float, default=10.0,
                        help="frame rate for TUM timestamps when the source has none (default 10, KITTI's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--batch-size", type=int, default=8, help="frame pairs per PoseNet call (default 8)")
    parser.add_argument("--camera-height", type=float, default=0.0,
                        help="camera height above the ground (m): run the node's processing (depth + pose per frame) "
                             "with the ground-plane metric scale (road homography), so the trajectory is in metres; "
                             "0 = network units")
    parser.add_argument("--ground-max-tilt", type=float, default=settings.default("ground_max_tilt"),
                        help=settings.SETTING_BY_NAME["ground_max_tilt"].description)


def main(args: argparse.Namespace) -> int:

    if args.images:
        if args.camera is not None:
            raise DataError("--camera is only for --kitti-seq (an image folder is one camera)")
        source = ImageFolderSource(args.images, intrinsics=args.intrinsics)
    else:
        if args.intrinsics:
            raise DataError("--intrinsics is only for --images (a KITTI sequence has calib.txt)")
        source = open_kitti_sequence(args.kitti_seq, args.camera)
    if args.fps <= 0:
        raise DataError(f"--fps must be positive, got {args.fps}")
    timestamps = source.timestamps if source.timestamps is not None else np.arange(len(source)) / args.fps
    device = resolve_device(args.device)
    if args.camera_height:  # the node's processing, frame by frame (it checks the depth itself: frame.warning)
        config = VOConfig.from_settings({"camera_height": args.camera_height, "ground_max_tilt": args.ground_max_tilt})
        vo = VisualOdometry(DepthPoseEstimator(args.checkpoint, device=str(device)), config)
        start = time.perf_counter()
        poses, scales = run_pipeline(vo, source, timestamps, warn=lambda line: print(f"bwdp vo: {line}",
                                                                                      file=sys.stderr, flush=True))
        units = f"m; ground-plane scale {scales[-1]:.4f} m per unit"
    else:
        disp_net, pose_net, meta = load_models(args.checkpoint, device)
        warning = check_depth_structure(disp_net, source, int(meta["height"]), int(meta["width"]), device,
                                        args.checkpoint)
        if warning:
            print(f"bwdp vo: {warning}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        poses = run_vo(pose_net, source, int(meta["height"]), int(meta["width"]), device,
                       batch_size=args.batch_size, translation_unit=meta["pose_translation_unit"], disp_net=disp_net)
        units = "network units"
    elapsed = time.perf_counter() - start
    out = write_trajectory(args.out, poses, args.format, timestamps if args.format == "tum" else None)
    path_length = float(np.sum(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)))
    print(f"{len(poses)} poses from {getattr(source, 'name', args.images or args.kitti_seq)} "
          f"({(len(poses) - 1) / max(elapsed, 1e-9):.1f} pairs/s on {device}), path length {path_length:.3f} "
          f"({units}) -> {out} [{args.format}]")
    return 0


def check_depth_structure(disp_net, source, height: int, width: int, device, checkpoint: str) -> str | None:
    """DispNet on the first DEPTH_CHECK_FRAMES frames -> the near-constant-depth warning line, or None."""
    depths = []
    with torch.inference_mode():
        for i in range(min(DEPTH_CHECK_FRAMES, len(source))):
            disps, _ = disp_net(image_to_tensor(source.load_image(i), height, width, device))
            depths.append((1.0 / disps[0][0, 0]).float().cpu().numpy())
    return near_constant_depth_warning(depths, checkpoint)
