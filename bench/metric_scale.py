"""Benchmark: metric scale from the camera height (issue 9) on a `bwdp synth` street and on the KITTI 07 frames.

Runs the node's processing (`VisualOdometry` with camera_height, the path `bwdp vo --camera-height` runs) over a
sequence in the KITTI odometry layout and reports, with no alignment scale:

  scale_factor = GT path length / estimated path length     (target 1.00 +- 0.03 synth, +- 0.05 KITTI)
  ATE after SE(3) alignment only (rotation + translation, no scale), the frames with an accepted ground fit, the final
  scale and its spread. --oracle replaces the networks by the renderer's depth and motion (a synth sequence with depth/)
  expressed in an arbitrary unit (x 0.37): the accuracy of the ground fit + filter alone, without a network's errors.
  The JSON (bench/results/metric_scale.json) keeps every run, the models and the load.

    python bench/metric_scale.py --name synth --root SYNTH_ROOT --sequence 00 --camera 2 --camera-height 1.6 \
        --checkpoint synth.pt
    python bench/metric_scale.py --name synth_oracle --root SYNTH_ROOT --camera-height 1.6 --oracle
    python bench/metric_scale.py --name kitti07 --root /work/shared/data/kitti_odom_07_160 --sequence 07 --camera 0 \
        --camera-height 1.65 --checkpoint kitti.pt
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy / torch load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bwdp_core.data.kitti_odometry import KittiOdometrySource  # noqa: E402
from bwdp_core.eval.odometry import evaluate_odometry  # noqa: E402
from bwdp_core.eval.vo import run_pipeline  # noqa: E402
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig  # noqa: E402


def path_length(poses: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)))


class OracleEstimator:
    """The renderer's depth (depth/*.npy) and GT motion in a unit of 1 / UNIT m, in place of the networks."""

    UNIT = 0.37

    def __init__(self, source, gt_poses):
        if source.depth_files is None:
            raise SystemExit("--oracle needs a sequence with depth/ (bwdp synth)")
        self.source, self.gt = source, gt_poses
        self.height, self.width = source.image_size
        self.device = torch.device("cpu")
        self._next = 0

    def to_tensor(self, image):  # frames come in order: the tensor carries the frame index
        index, self._next = self._next, self._next + 1
        return torch.tensor([[[[float(index)]]]])

    def depth(self, x):
        depth = np.load(self.source.depth_files[int(x.item())]).astype(np.float32) * np.float32(self.UNIT)
        depth[depth <= 0] = np.nan
        return depth

    def relative_pose(self, x_cur, x_prev):
        T = np.linalg.inv(self.gt[int(x_prev.item())]) @ self.gt[int(x_cur.item())]
        T[:3, 3] *= self.UNIT
        return T


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="key of this run in the JSON (e.g. synth, kitti07)")
    parser.add_argument("--root", required=True, help="KITTI odometry layout root")
    parser.add_argument("--sequence", default="00")
    parser.add_argument("--camera", type=int, default=2)
    parser.add_argument("--camera-height", type=float, required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--oracle", action="store_true", help="ground-truth depth and motion instead of networks")
    parser.add_argument("--model-note", default="", help="how the checkpoint was made (goes into the JSON)")
    parser.add_argument("--frames", type=int, default=0, help="first N frames only (0 = all)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metric_scale.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    source = KittiOdometrySource(args.root, args.sequence, camera=args.camera)
    n = len(source) if args.frames <= 0 else min(args.frames, len(source))
    gt = source.poses[:n]
    timestamps = source.timestamps[:n] if source.timestamps is not None else np.arange(n) * 0.1

    class FirstFrames:  # the first n frames of the source
        intrinsics = source.intrinsics
        name = source.name

        def __len__(self):
            return n

        def load_image(self, i):
            return source.load_image(i)

    estimator = (OracleEstimator(source, gt) if args.oracle else
                 DepthPoseEstimator(args.checkpoint, device="cpu", backend=args.backend, num_threads=1))
    vo = VisualOdometry(estimator, VOConfig(camera_height=args.camera_height))
    start = time.perf_counter()
    poses, scales = run_pipeline(vo, FirstFrames(), timestamps, progress=False)
    seconds = time.perf_counter() - start
    status = vo.scale_status
    se3 = evaluate_odometry(poses, gt, align="se3")
    sim3 = evaluate_odometry(poses, gt, align="sim3")
    result = {
        "scale_factor_gt_over_estimate": path_length(gt) / max(path_length(poses), 1e-12),
        "gt_path_length_m": path_length(gt),
        "estimated_path_length_m": path_length(poses),
        "ate_se3_m": se3["ate_m"]["rmse"],
        "ate_sim3_m": sim3["ate_m"]["rmse"],
        "sim3_alignment_scale": sim3["alignment"]["scale"],
        "final_scale_m_per_unit": float(scales[-1]),
        "scale_spread": status.spread,
        "ground_found": status.initialised,
        "frames": n,
        "camera_height_m": args.camera_height,
        "checkpoint": args.checkpoint,
        "model": args.model_note,
        "network_size": f"{estimator.height}x{estimator.width}",
        "backend": "oracle" if args.oracle else estimator.backend,
        "frames_per_s": n / seconds,
        "command": "python " + " ".join(sys.argv),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    everything = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "metric_scale"}
    everything[args.name] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(everything, indent=2))
    print(json.dumps({args.name: result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
