"""Accuracy cost of the faster inference paths on a held-out sequence: int8 (ONNX Runtime QDQ) and PoseNet on a
half-size input, each against the fp32 networks of the same checkpoint.

Depth: median-scaled AbsRel (and a1) against the sequence's ground-truth depth (``bwdp synth`` writes it), every
``--depth-step``-th frame; or, for a real sequence without depth (KITTI odometry), on a folder of other real frames
with GT depth (``--depth-gt``, rgb/ + depth/ as kitti_depth_demo, converted to grey with ``--grey``, as
bench/real_sequence.py scores a grey-trained model). Odometry: PoseNet(tgt = frame i, ref = frame i-1) chained over
the whole sequence, ATE (RMSE, m) after sim(3) alignment to the ground-truth poses. The int8 networks are made exactly
as `bwdp export --format onnx --int8 --calibration SOURCE` makes them (calibration frames from the training source;
for the one-recording recipe that is the recording it then runs on, so there "held-out" means the odometry is
scored on the frames it learned from, as bench/real_sequence.py does).
Limits (issue 11): AbsRel change <= 0.005 and ATE change <= 5 % for a path to be allowed as a default; the KITTI
segment error (t_err) may not grow by more than 5 % either (a trajectory shrunk towards standing still can score a
lower ATE after the sim(3) alignment).

    python bench/int8_accuracy.py --checkpoint CKPT --calibration TRAIN_SOURCE --heldout SYNTH_ROOT [--sequence 00]
    python bench/int8_accuracy.py --checkpoint CKPT --calibration RUN/config.yaml --heldout KITTI_ROOT --sequence 07 \
        --camera 0 --depth-gt ../shared/data/kitti_depth_demo --grey
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bwdp_core.checkpoint import load_models  # noqa: E402
from bwdp_core.commands.export import calibration_sources  # noqa: E402
from bwdp_core.data.kitti_odometry import KittiOdometrySource  # noqa: E402
from bwdp_core.data.sources import read_image_file  # noqa: E402
from bwdp_core.eval.depth_metrics import compute_depth_metrics  # noqa: E402
from bwdp_core.eval.eval_depth import folder_samples  # noqa: E402
from bwdp_core.eval.export import export_models  # noqa: E402
from bwdp_core.eval.odometry import evaluate_odometry  # noqa: E402
from bwdp_core.eval.vo import chain_relative_poses  # noqa: E402
from bwdp_core.geometry import pose_vec_to_mat  # noqa: E402
from bwdp_core.inference.backends import optimize_for_inference  # noqa: E402
from bwdp_core.inference.preprocess import image_to_tensor  # noqa: E402
from bwdp_core.inference.vo_pipeline import translation_in_depth_units  # noqa: E402

ABS_REL_LIMIT = 0.005
ATE_LIMIT = 0.05  # relative change


class HalfSizePose:
    """PoseNet (eager fp32) on both frames shrunk 2x (area averaging): a quarter of PoseNet's FLOPs. PoseNet alone
    takes any size (global mean over its last map), so the half size need not be a multiple of 32."""

    def __init__(self, pose_net):
        self.pose_net = pose_net.eval()

    @torch.inference_mode()
    def pose(self, tgt, ref):
        return self.pose_net(F.avg_pool2d(tgt, 2), F.avg_pool2d(ref, 2))


def depth_pairs(source, depth_step: int, depth_gt: Path | None, grey: bool) -> list[tuple]:
    """(image uint8 RGB [H, W, 3], GT depth [H', W']) pairs to score depth on: every ``depth_step``-th frame of the
    held-out source, or every image of the ``depth_gt`` folder (grey replicated to three channels with ``grey``)."""
    if depth_gt is None:
        return [(source.load_image(i), source.load_depth(i)) for i in range(0, len(source), depth_step)]
    pairs = []
    for sample in folder_samples(depth_gt / "rgb", depth_gt / "depth"):
        image = read_image_file(sample.image_path)
        if grey:
            image = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        pairs.append((image, sample.load_gt()))
    return pairs


def evaluate(depth_runner, pose_runner, source, pairs, height, width, translation_unit="depth"):
    """Depth metrics on ``pairs`` and ATE / t_err of PoseNet chained over ``source``. A scale-invariant-warp model
    ("target_mean_depth") has each translation multiplied by the mean depth of its frame, from ``depth_runner``, as
    `bwdp vo` and the node do."""
    start = time.perf_counter()
    frames = [image_to_tensor(source.load_image(i), height, width) for i in range(len(source))]
    gts, preds = [], []
    for image, gt in pairs:
        depth = depth_runner.depth(image_to_tensor(image, height, width))[0, 0].float().numpy()
        if depth.shape != gt.shape:  # resize the disparity, as bwdp eval-depth does
            depth = 1.0 / cv2.resize(1.0 / depth, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
        gts.append(gt)
        preds.append(depth)
    depth_metrics = compute_depth_metrics(gts, preds, median_scaling=True, garg_crop=False)
    relative = []
    for i in range(1, len(frames)):
        T = pose_vec_to_mat(pose_runner.pose(frames[i], frames[i - 1]).double())[0].numpy()
        mean_depth = float(depth_runner.depth(frames[i]).mean()) if translation_unit != "depth" else None
        relative.append(translation_in_depth_units(T, translation_unit, mean_depth))
    odom = evaluate_odometry(chain_relative_poses(relative), source.poses, align="sim3")
    return {"abs_rel": depth_metrics["metrics"]["abs_rel"], "delta1": depth_metrics["metrics"]["delta1"],
            "depth_images": depth_metrics["num_images"], "ate_rmse_m": odom["ate_m"]["rmse"],
            "kitti_t_err_percent": odom["kitti"].get("t_err_percent"), "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--calibration", required=True, help="training source for the int8 calibration frames")
    parser.add_argument("--calibration-frames", type=int, default=32)
    parser.add_argument("--heldout", required=True, help="held-out KITTI-layout root (e.g. a `bwdp synth` output)")
    parser.add_argument("--sequence", default="00")
    parser.add_argument("--camera", type=int, default=2, help="camera of the held-out sequence (0 = KITTI's grey)")
    parser.add_argument("--depth-gt", type=Path, default=None,
                        help="folder with rgb/ and depth/ to score depth on (when the held-out sequence has none)")
    parser.add_argument("--grey", action="store_true", help="convert the --depth-gt images to grey")
    parser.add_argument("--depth-step", type=int, default=4, help="depth metrics on every n-th frame")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "int8_accuracy.json"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = [round(v, 2) for v in os.getloadavg()]
    disp_net, pose_net, meta = load_models(args.checkpoint)
    height, width = int(meta["height"]), int(meta["width"])
    source = KittiOdometrySource(args.heldout, args.sequence, camera=args.camera)
    pairs = depth_pairs(source, args.depth_step, args.depth_gt, args.grey)
    unit = meta["pose_translation_unit"]
    with tempfile.TemporaryDirectory(prefix="bwdp_int8_acc_") as tmp:
        export = export_models(args.checkpoint, tmp, "onnx", calibration=calibration_sources(args.calibration),
                               calibration_frames=args.calibration_frames)
        Path(tmp, "export.json").write_text(json.dumps(export))  # the manifest, as `bwdp export` writes it
        fp32 = optimize_for_inference(disp_net, pose_net, height, width, backend="onnxruntime",
                                      num_threads=args.threads)
        int8 = optimize_for_inference(disp_net, pose_net, height, width, backend="onnxruntime_int8",
                                      num_threads=args.threads, int8_dir=tmp)
        results = {
            "fp32": evaluate(fp32, fp32, source, pairs, height, width, unit),
            "int8": evaluate(int8, int8, source, pairs, height, width, unit),
        }
        results["fp32_pose_half_size"] = evaluate(fp32, HalfSizePose(pose_net), source, pairs, height, width, unit)
    base = results["fp32"]
    for entry in results.values():
        entry["abs_rel_change"] = round(entry["abs_rel"] - base["abs_rel"], 5)
        entry["ate_relative_change"] = round(entry["ate_rmse_m"] / base["ate_rmse_m"] - 1.0, 4)
        entry["t_err_relative_change"] = round(entry["kitti_t_err_percent"] / base["kitti_t_err_percent"] - 1.0, 4)
        # t_err too: a trajectory shrunk towards standing still can get a *lower* ATE after the sim(3) alignment
        entry["within_limits"] = bool(abs(entry["abs_rel_change"]) <= ABS_REL_LIMIT
                                      and entry["ate_relative_change"] <= ATE_LIMIT
                                      and entry["t_err_relative_change"] <= ATE_LIMIT)
    report = {
        "benchmark": "accuracy of int8 and half-size-pose inference vs fp32, held-out sequence",
        "checkpoint": args.checkpoint, "pose_translation_unit": unit, "input_size": [height, width],
        "checkpoint_step": meta.get("step"),
        "heldout": f"{args.heldout} sequence {args.sequence} camera {args.camera} ({len(source)} frames)",
        "depth_gt": (f"{args.depth_gt} ({'grey' if args.grey else 'colour'})" if args.depth_gt
                     else f"held-out sequence, every {args.depth_step}th frame"),
        "calibration": export.get("calibration"), "int8_deviation_on_calibration_holdout": export.get("int8_deviation"),
        "limits": {"abs_rel_change": ABS_REL_LIMIT, "ate_relative_change": ATE_LIMIT},
        "results": results,
        "machine": {"cpu_count": os.cpu_count(), "threads": args.threads, "load_avg_before": load_before,
                    "load_avg_after": [round(v, 2) for v in os.getloadavg()]},
    }
    text = json.dumps(report, indent=2)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
