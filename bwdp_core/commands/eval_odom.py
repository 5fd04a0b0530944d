"""`bwdp eval-odom --pred FILE --gt FILE [--align sim3|se3|scale|none] [--out DIR]`: trajectory metrics.

KITTI t_err (%) / r_err (deg/100 m) over 100..800 m segments, ATE and RPE through evo, a top-view plot and JSON.
Files are KITTI (12 numbers per line) or TUM (8), detected from their content.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bwdp_core.eval.odometry import ALIGN_MODES, align_and_associate, evaluate_odometry, format_summary
from bwdp_core.eval.plots import plot_trajectories_top_view
from bwdp_core.eval.trajectory_io import read_trajectory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, help="predicted trajectory (KITTI or TUM format)")
    parser.add_argument("--gt", required=True, help="ground-truth trajectory (KITTI or TUM format)")
    parser.add_argument("--align", choices=ALIGN_MODES, default="sim3",
                        help="Umeyama alignment of the prediction before all metrics (default: sim3, for monocular)")
    parser.add_argument("--max-time-diff", type=float, default=0.01,
                        help="seconds; TUM stamps closer than this are associated (both files TUM)")
    parser.add_argument("--out", default=None, help="folder for metrics.json and trajectory.png")


def main(args: argparse.Namespace) -> int:
    pred = read_trajectory(args.pred)
    gt = read_trajectory(args.gt)
    result = evaluate_odometry(pred, gt, align=args.align, max_time_diff=args.max_time_diff)
    result["pred_file"] = str(args.pred)
    result["gt_file"] = str(args.gt)
    print(format_summary(result))
    if args.out:

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        gt_poses, pred_poses, _, _ = align_and_associate(pred, gt, args.align, args.max_time_diff)
        k = result["kitti"]
        title = f"{Path(args.pred).name}: ATE {result['ate_m']['rmse']:.3f} m"
        if k["t_err_percent"] is not None:
            title += f", t_err {k['t_err_percent']:.2f} %"
        plot = plot_trajectories_top_view(gt_poses, pred_poses, out / "trajectory.png", title=title,
                                          pred_label="prediction" + ("" if args.align == "none"
                                                                          else f" ({args.align} aligned)"))
        result["plot"] = str(plot)
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
        print(f"wrote {out / 'metrics.json'} and {plot}")
    return 0
