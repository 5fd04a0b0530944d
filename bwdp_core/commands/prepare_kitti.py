"""`bwdp prepare-kitti`: resize KITTI raw drives into a training folder (bwdp_core.data.prepare_kitti does the work).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bwdp_core.data.prepare_kitti import STATIC_METHODS, prepare_kitti


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ("Static frames: --static-method auto uses --static-frames when given, else the oxts speed "
                     "(sqrt(vf^2+vl^2) < --min-speed m/s) when the drive has oxts/data, else image motion (mean "
                     "absolute grey difference to the last kept frame < --min-motion). Re-running skips finished "
                     "sequences (per-sequence .done marker with the settings).")
    parser.add_argument("raw_root", help="KITTI raw root (holds <date>/calib_cam_to_cam.txt and <date>/<drive>_sync)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--exclude-scenes", metavar="FILE",
                        help="drives to leave out, one per line (e.g. the Eigen test scenes list)")
    parser.add_argument("--static-frames", metavar="FILE", help="'<date> <drive>_sync <frame>' lines to drop")
    parser.add_argument("--static-method", choices=STATIC_METHODS, default="auto",
                        help="how static frames are found (default auto: list, else oxts, else image)")
    parser.add_argument("--min-speed", type=float, default=0.3, help="oxts: minimum speed in m/s (default 0.3)")
    parser.add_argument("--min-motion", type=float, default=2.0,
                        help="image: minimum mean |grey difference| 0-255 to the last kept frame (default 2.0)")
    parser.add_argument("--ext", choices=("jpg", "png"), default="jpg", help="output image format (default jpg)")
    parser.add_argument("--workers", type=int, default=None, help="resize threads (default min(4, CPUs))")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    summary = prepare_kitti(args.raw_root, args.out, args.height, args.width, args.exclude_scenes,
                            args.static_frames, args.static_method, args.min_speed, args.min_motion, args.ext,
                            args.workers, progress=not args.no_progress)
    print(f"prepare-kitti: {len(summary['prepared'])} sequences written, {len(summary['skipped_done'])} already done, "
          f"{len(summary['excluded'])} drives excluded, {len(summary['too_short'])} too short; "
          f"{len(summary['sequences'])} listed in {Path(args.out) / 'train.txt'}")
    return 0
