"""`bwdp eval-depth`: depth metrics of a checkpoint (KITTI Eigen protocol, or any images + GT folder); the protocol
itself is in bwdp_core.eval.eval_depth.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bwdp_core.checkpoint import load_models
from bwdp_core.device import resolve_device
from bwdp_core.errors import DataError
from bwdp_core.eval.depth_metrics import MAX_DEPTH, MIN_DEPTH, format_table
from bwdp_core.eval.eval_depth import data_root_samples, eigen_samples, evaluate_checkpoint, folder_samples
from bwdp_core.eval.plots import depth_strip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="bwdp checkpoint (.pt)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--split-file", help="Eigen-style test list (<date>/<drive> <frame> l|r), e.g. the 697 frames")
    src.add_argument("--images", help="folder of images (with --depth)")
    src.add_argument("--data", help="folder in a known layout (bwdp synth / KITTI odometry style, or rgb + depth)")
    parser.add_argument("--raw-root", help="KITTI raw root (with --split-file): <date>/<drive>/image_02/data, calib")
    parser.add_argument("--gt-png-root", help="KITTI depth-benchmark GT root (instead of projecting velodyne scans)")
    parser.add_argument("--depth", help="GT depth folder for --images (<stem>.npy metres or <stem>.png uint16/256)")
    parser.add_argument("--velo-depth", choices=("velodyne", "camera"), default="velodyne",
                        help="velodyne GT value: the scanner's forward distance (published protocol) or camera z")
    parser.add_argument("--skip-missing", action="store_true", help="skip split frames without GT instead of failing")
    parser.add_argument("--no-median-scaling", action="store_true", help="metric model: no per-image median scaling")
    parser.add_argument("--crop", choices=("auto", "garg", "none"), default="auto",
                        help="auto: Garg crop for --split-file, none for folders")
    parser.add_argument("--min-depth", type=float, default=MIN_DEPTH)
    parser.add_argument("--max-depth", type=float, default=MAX_DEPTH)
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N frames (0 = all)")
    parser.add_argument("--num-visuals", type=int, default=4, help="frames in the colormap strip (0 = none)")
    parser.add_argument("--out", default=None, help="folder for metrics.json and depth_strip.png")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def main(args: argparse.Namespace) -> int:

    if not 0 <= args.min_depth < args.max_depth:
        raise DataError("depth range must satisfy 0 <= --min-depth < --max-depth, got "
                        f"{args.min_depth}..{args.max_depth}")
    missing: list[str] = []
    if args.split_file:
        if not args.raw_root:
            raise DataError("--split-file needs --raw-root (the KITTI raw folder with the images)")
        samples, missing = eigen_samples(args.split_file, args.raw_root, args.gt_png_root, args.velo_depth,
                                         args.skip_missing)
        protocol = ("kitti_eigen_depth_benchmark_png" if args.gt_png_root else
                    "kitti_eigen_velodyne" + ("_camera_z" if args.velo_depth == "camera" else ""))
    elif args.images:
        if not args.depth:
            raise DataError("--images needs --depth (the folder of GT depth files)")
        samples, protocol = folder_samples(args.images, args.depth), "image_folder"
    else:
        samples, protocol = data_root_samples(args.data), "data_folder"
    if args.limit > 0:
        samples = samples[:args.limit]
    if not samples:
        raise DataError("nothing to evaluate: no frame has ground truth")
    garg = args.crop == "garg" or (args.crop == "auto" and bool(args.split_file))
    median = not args.no_median_scaling

    device = resolve_device(args.device)
    disp_net, _, meta = load_models(args.checkpoint, device)
    height, width = int(meta["height"]), int(meta["width"])
    start = time.perf_counter()
    summary = evaluate_checkpoint(disp_net, samples, height, width, device=device, median_scaling=median,
                                  garg_crop=garg, min_depth=args.min_depth, max_depth=args.max_depth,
                                  num_visuals=args.num_visuals)
    elapsed = time.perf_counter() - start
    visuals = summary.pop("visuals")
    report = {"protocol": protocol, "checkpoint": str(args.checkpoint), "prediction_size": [height, width],
              "median_scaling": median, "crop": "garg" if garg else "none",
              "min_depth": args.min_depth, "max_depth": args.max_depth,
              "num_missing_gt": len(missing), **summary}
    print(f"{protocol}: {summary['num_images']} images ({summary['num_skipped']} without valid GT, {len(missing)} "
          f"without GT file), crop {report['crop']}, median scaling {'on' if median else 'off'} "
          f"(scale median {summary['scale_median']:.3f}, std {summary['scale_std']:.3f}), {elapsed:.1f} s on {device}")
    print(format_table(summary["metrics"]))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if visuals:
            report["strip"] = str(depth_strip(visuals, out / "depth_strip.png"))
        (out / "metrics.json").write_text(json.dumps(report, indent=2))
        print(f"wrote {out / 'metrics.json'}" + (f" and {report['strip']}" if visuals else ""))
    return 0
