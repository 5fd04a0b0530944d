"""`bwdp make-bag --images DIR | --kitti-seq DIR --out BAG`: a rosbag2 to try the VO node (or `bwdp replay`)
without a robot.

Writes sensor_msgs/Image (rgb8, or CompressedImage with --compressed) and a CameraInfo per frame, plus ground truth as
nav_msgs/Odometry (camera-to-world, optical axes; frame `world` -> the camera frame) when the source has poses
(KITTI `poses/NN.txt`, or --poses for an image folder). Stamps: --start + the source's times.txt, else frames at --rate.
Storage MCAP (default) or sqlite3; written with `rosbags` (no ROS install needed).

    bwdp synth --out synth --frames 50
    bwdp make-bag --kitti-seq synth/sequences/00 --out synth_bag
    ros2 bag play synth_bag --clock      # on a robot;  here: bwdp replay synth_bag ...
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bwdp_core.data.bag_io import write_image_bag
from bwdp_core.data.image_folder import ImageFolderSource
from bwdp_core.data.kitti_odometry import KittiOdometrySource
from bwdp_core.errors import DataError

DEFAULT_START_S = 1_700_000_000.0  # a plausible wall-clock stamp (many ROS tools dislike stamps near zero)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--kitti-seq", metavar="DIR",
                     help="KITTI odometry sequence folder ROOT/sequences/NN (ground truth from ROOT/poses/NN.txt)")
    src.add_argument("--images", metavar="DIR", help="folder of images (sorted by name); intrinsics from DIR/cam.txt "
                                                   "or --intrinsics")
    parser.add_argument("--intrinsics", nargs="+", metavar="V",
                        help="fx fy cx cy, or a cam.txt path (for --images)")
    parser.add_argument("--camera", type=int, default=2,
                        help="with --kitti-seq: image_N folder and PN calibration (default 2, colour; 0 = left grey)")
    parser.add_argument("--poses", metavar="FILE", help="ground-truth poses (KITTI format) for --images")
    parser.add_argument("--out", required=True, metavar="BAG", help="rosbag2 folder to write")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--rate", type=float, default=None,
                        help="frames per second for the stamps (default: the source's times.txt, else 10)")
    parser.add_argument("--start", type=float, default=DEFAULT_START_S, help="stamp of the first frame, seconds")
    parser.add_argument("--max-frames", type=int, default=None, help="write at most this many frames")
    parser.add_argument("--compressed", action="store_true", help="CompressedImage (JPEG) instead of raw rgb8")
    parser.add_argument("--image-topic", default=None,
                        help="default /camera/image_raw (or /camera/image_raw/compressed)")
    parser.add_argument("--camera-info-topic", default="/camera/camera_info")
    parser.add_argument("--gt-topic", default="/ground_truth/odom")
    parser.add_argument("--frame-id", default="camera_optical_frame")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")


def open_kitti_sequence(path, camera: int = 2):
    """ROOT/sequences/NN (or ROOT with sequence 00) -> KittiOdometrySource of image_<camera>."""

    path = Path(path)
    if (path / "sequences").is_dir():
        return KittiOdometrySource(path, "00", camera=camera)
    if not path.is_dir():
        raise DataError(f"KITTI sequence folder {path} does not exist")
    return KittiOdometrySource(path.parent.parent, path.name, camera=camera)


def load_kitti_sequence(path, camera: int = 2) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
    """(images uint8 RGB, K 3x3, camera-to-world poses [N,4,4] or None) of a KITTI-layout sequence folder."""
    source = open_kitti_sequence(path, camera)
    return [source.load_image(i) for i in range(len(source))], source.intrinsics, source.poses


def _stamps_ns(source, count: int, start_s: float, rate: float | None) -> list[int]:
    if rate is None and getattr(source, "timestamps", None) is not None:
        times = np.asarray(source.timestamps[:count], dtype=np.float64)
        times = times - times[0]
    else:
        rate = 10.0 if rate is None else rate
        if not rate > 0:
            raise DataError(f"--rate must be > 0, got {rate}")
        times = np.arange(count) / rate
    return [int(round((start_s + t) * 1e9)) for t in times]


def main(args: argparse.Namespace) -> int:

    if args.kitti_seq:
        source = open_kitti_sequence(args.kitti_seq, args.camera)
    else:

        intrinsics = None if args.intrinsics is None else " ".join(args.intrinsics)
        source = ImageFolderSource(args.images, intrinsics=intrinsics, poses_file=args.poses)
    count = len(source) if args.max_frames is None else min(len(source), max(0, args.max_frames))
    if count < 1:
        raise DataError(f"{source.name}: no frames to write")
    stamps = _stamps_ns(source, count, args.start, args.rate)
    poses = None if source.poses is None else np.asarray(source.poses[:count])
    bag = write_image_bag(
        args.out, (source.load_image(i) for i in range(count)), stamps, source.intrinsics,
        image_topic=args.image_topic, info_topic=args.camera_info_topic, frame_id=args.frame_id,
        storage=args.storage, compressed=args.compressed, gt_poses=poses, gt_topic=args.gt_topic,
        overwrite=args.overwrite,
    )
    image_topic = args.image_topic or ("/camera/image_raw/compressed" if args.compressed else "/camera/image_raw")
    gt = f", ground truth on {args.gt_topic}" if poses is not None else ""
    print(f"wrote {bag} ({args.storage}): {count} frames on {image_topic} + {args.camera_info_topic}{gt}")
    return 0
