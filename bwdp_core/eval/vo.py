"""`bwdp vo`: offline visual odometry — PoseNet's frame-to-frame motion chained into a camera-to-world trajectory.

For consecutive frames (i−1, i) the network runs as PoseNet(tgt = frame i, ref = frame i−1), which predicts
T_{t→r} = T_{i−1←i}: it maps points of camera i into camera i−1, i.e. it *is* the pose of camera i expressed in
camera i−1. Chaining therefore needs no inversion:

    T_w←0 = I,    T_w←i = T_w←(i−1) · T_(i−1)←i

(the first camera defines the world frame, as in KITTI's poses files). The trajectory has the network's scale;
``bwdp eval-odom`` aligns it (sim3) to the ground truth.

    bwdp vo --checkpoint ckpt.pt --images DIR --intrinsics cam.txt --out traj.txt [--format kitti|tum]
    bwdp vo --checkpoint ckpt.pt --kitti-seq ROOT/sequences/09 --out 09.txt
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bwdp_core.errors import DataError


def chain_relative_poses(relative: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Camera-to-world poses [N+1, 4, 4] from N relative poses T_(i−1)←i (pose of camera i in camera i−1)."""
    poses = [np.eye(4)]
    for T_prev_cur in relative:
        poses.append(poses[-1] @ np.asarray(T_prev_cur, dtype=np.float64))
    return np.stack(poses)


def run_vo(pose_net, source, height: int, width: int, device="cpu", progress: bool = True,
           batch_size: int = 8) -> np.ndarray:
    """Chained camera-to-world trajectory [N, 4, 4] of a FrameSource (``len``, ``load_image(i)``).

    Consecutive pairs are run ``batch_size`` at a time (eval-mode networks: the result does not depend on batching).
    """
    import torch
    from tqdm import tqdm

    from bwdp_core.eval.inference import image_to_tensor
    from bwdp_core.geometry import pose_vec_to_mat

    n = len(source)
    if n < 2:
        raise DataError(f"{getattr(source, 'name', 'sequence')} has {n} frame(s); visual odometry needs at least 2")
    relative: list[np.ndarray] = []
    current: list = []
    previous: list = []

    def flush():
        # tgt = current frames, ref = previous frames -> T_(i-1)<-i for each pair
        vec = pose_net(torch.cat(current), torch.cat(previous))
        relative.extend(pose_vec_to_mat(vec.float()).double().cpu().numpy())
        current.clear()
        previous.clear()

    with torch.inference_mode():
        prev = image_to_tensor(source.load_image(0), height, width, device)
        for i in tqdm(range(1, n), desc="vo", unit="frame", disable=None if progress else True):
            cur = image_to_tensor(source.load_image(i), height, width, device)
            current.append(cur)
            previous.append(prev)
            prev = cur
            if len(current) >= max(1, batch_size):
                flush()
        if current:
            flush()
    return chain_relative_poses(relative)


def open_kitti_sequence(path: str | Path):
    """``--kitti-seq``: a sequence folder ``ROOT/sequences/NN``, or a ROOT holding exactly one sequence."""
    from bwdp_core.data.kitti_odometry import KittiOdometrySource, kitti_odometry_sequences

    path = Path(path)
    if (path / "sequences").is_dir():
        names = kitti_odometry_sequences(path)
        if len(names) != 1:
            raise DataError(f"{path} holds sequences {', '.join(names)}: pass one of them as "
                            f"--kitti-seq {path / 'sequences' / names[0]}")
        return KittiOdometrySource(path, names[0])
    if not path.is_dir():
        raise DataError(f"KITTI odometry sequence folder {path} does not exist")
    return KittiOdometrySource(path.parent.parent, path.name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="bwdp checkpoint (.pt)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images, in name order")
    src.add_argument("--kitti-seq", help="KITTI odometry sequence folder (ROOT/sequences/NN)")
    parser.add_argument("--intrinsics", default=None,
                        help="with --images: cam.txt (3x3 or fx fy cx cy) or \"fx fy cx cy\" (default DIR/cam.txt)")
    parser.add_argument("--out", required=True, help="trajectory file to write")
    parser.add_argument("--format", choices=("kitti", "tum"), default="kitti",
                        help="kitti: 12 numbers per pose; tum: 'stamp x y z qx qy qz qw'")
    parser.add_argument("--fps", type=float, default=10.0,
                        help="frame rate for TUM timestamps when the source has none (default 10, KITTI's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--batch-size", type=int, default=8, help="frame pairs per PoseNet call (default 8)")


def main(args: argparse.Namespace) -> int:
    from bwdp_core.checkpoint import load_models
    from bwdp_core.device import resolve_device
    from bwdp_core.eval.trajectory_io import write_trajectory

    if args.images:
        from bwdp_core.data.image_folder import ImageFolderSource
        source = ImageFolderSource(args.images, intrinsics=args.intrinsics)
    else:
        if args.intrinsics:
            raise DataError("--intrinsics is only for --images (a KITTI sequence has calib.txt)")
        source = open_kitti_sequence(args.kitti_seq)
    if args.fps <= 0:
        raise DataError(f"--fps must be positive, got {args.fps}")
    device = resolve_device(args.device)
    _, pose_net, meta = load_models(args.checkpoint, device)
    start = time.perf_counter()
    poses = run_vo(pose_net, source, int(meta["height"]), int(meta["width"]), device,
                   batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    timestamps = source.timestamps if source.timestamps is not None else np.arange(len(poses)) / args.fps
    out = write_trajectory(args.out, poses, args.format, timestamps if args.format == "tum" else None)
    path_length = float(np.sum(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)))
    print(f"{len(poses)} poses from {getattr(source, 'name', args.images or args.kitti_seq)} "
          f"({(len(poses) - 1) / max(elapsed, 1e-9):.1f} pairs/s on {device}), path length {path_length:.3f} "
          f"(network units) -> {out} [{args.format}]")
    return 0
