"""Benchmark: T_{r->t} from a second PoseNet pass vs. the inverse of T_{t->r} (LossConfig.inverse_pose).

Short training runs of the full method on bwdp synth data, one per (option, seed), identical in everything else
(data, initial weights, batch order).  Each run is evaluated on its training frames and on a held-out sequence:
median-scaled AbsRel of depth, rotation error (deg) and scale-aligned relative translation error of T_{t->r},
and the forward-backward pose inconsistency ‖T_{r->t} T_{t->r} − I‖.  Prints JSON and writes
bench/results/pose_direction.json.

    python bench/pose_direction.py [--steps 150] [--seeds 0 1] [--height 32] [--width 96] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bwdp_core.losses import loss_config  # noqa: E402
from bwdp_core.losses.total import total_loss  # noqa: E402
from bwdp_core.model import predict_snippet  # noqa: E402
from bwdp_core.nets.disp_net import DispNet  # noqa: E402
from bwdp_core.nets.pose_net import PoseNet  # noqa: E402
from bwdp_core.synth.render import render_sequence  # noqa: E402


def load(frames, height, width, seed):
    seq = render_sequence(frames, height, width, seed=seed)
    images = torch.from_numpy(seq.images).permute(0, 3, 1, 2).float() / 255
    return images, torch.from_numpy(seq.depths), torch.from_numpy(seq.poses), torch.from_numpy(seq.K).float()


def median_scaled_abs_rel(pred_depth, gt_depth):
    errors = []
    for pred, gt in zip(pred_depth, gt_depth):
        valid = gt > 0
        g, p = gt[valid], pred[valid]
        errors.append(((g - p * g.median() / p.median()).abs() / g).mean().item())
    return float(np.mean(errors))


def rotation_angle_deg(R):
    cos = ((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


@torch.no_grad()
def evaluate(disp_net, pose_net, cfg, images, gt_depth, poses_c2w):
    disp_net.eval(), pose_net.eval()
    depth = 1.0 / disp_net(images)[0][0][:, 0]
    centres = torch.arange(1, len(images) - 1)
    tgt, refs = images[centres], [images[centres - 1], images[centres + 1]]
    pred = predict_snippet(disp_net, pose_net, tgt, refs, cfg)
    ref_index = torch.cat([centres - 1, centres + 1])
    tgt_index = centres.repeat(2)
    gt_T = (torch.linalg.inv(poses_c2w[ref_index]) @ poses_c2w[tgt_index]).float()  # T_{t->r}
    est_T = pred.poses_tgt_to_ref
    rot_err = rotation_angle_deg(est_T[:, :3, :3].transpose(1, 2) @ gt_T[:, :3, :3])
    t_est, t_gt = est_T[:, :3, 3], gt_T[:, :3, 3]
    scale = (t_est * t_gt).sum() / t_est.pow(2).sum().clamp(min=1e-12)  # one monocular scale for the sequence
    trans_err = (scale * t_est - t_gt).norm(dim=1) / t_gt.norm(dim=1)
    inconsistency = (pred.poses_ref_to_tgt @ est_T - torch.eye(4)).flatten(1).norm(dim=1)
    disp_net.train(), pose_net.train()
    return {"abs_rel": median_scaled_abs_rel(depth, gt_depth), "rot_err_deg": rot_err.mean().item(),
            "trans_err_rel": trans_err.mean().item(), "fwd_bwd_inconsistency": inconsistency.mean().item()}


def train_run(inverse_pose, seed, args, train_data, test_data):
    images, gt_depth, poses, K = train_data
    torch.manual_seed(seed)
    disp_net, pose_net = DispNet(18), PoseNet(18)
    cfg = loss_config(args.preset, inverse_pose=inverse_pose)
    optimizer = torch.optim.Adam(list(disp_net.parameters()) + list(pose_net.parameters()), lr=args.lr)
    centres = torch.arange(1, len(images) - 1)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    losses = []
    for _ in range(args.steps):
        index = centres[torch.randint(len(centres), (args.batch,), generator=generator)]
        tgt, refs = images[index], [images[index - 1], images[index + 1]]
        pred = predict_snippet(disp_net, pose_net, tgt, refs, cfg)
        total, _, _ = total_loss(cfg, tgt, refs, K.expand(args.batch, 3, 3), pred)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        losses.append(total.item())
    return {"inverse_pose": inverse_pose, "seed": seed, "train_seconds": time.perf_counter() - start,
            "loss_first10": float(np.mean(losses[:10])), "loss_last10": float(np.mean(losses[-10:])),
            "train_frames": evaluate(disp_net, pose_net, cfg, images, gt_depth, poses),
            "held_out": evaluate(disp_net, pose_net, cfg, *test_data[:3])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--preset", default="full")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "pose_direction.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    runs = []
    for seed in args.seeds:
        train_data = load(args.frames, args.height, args.width, seed)
        test_data = load(8, args.height, args.width, 1000 + seed)
        for inverse_pose in (False, True):
            runs.append(train_run(inverse_pose, seed, args, train_data, test_data))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)

    def mean_of(inverse_pose, split, key):
        return float(np.mean([r[split][key] for r in runs if r["inverse_pose"] == inverse_pose]))

    summary = {}
    for name, inverse_pose in (("second_pass", False), ("inverse", True)):
        summary[name] = {f"{split}/{key}": mean_of(inverse_pose, split, key)
                         for split in ("train_frames", "held_out")
                         for key in ("abs_rel", "rot_err_deg", "trans_err_rel", "fwd_bwd_inconsistency")}
        summary[name]["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs
                                                        if r["inverse_pose"] == inverse_pose]))
    inverse_at_least_as_good = all(summary["inverse"][f"{split}/abs_rel"] <= summary["second_pass"][f"{split}/abs_rel"]
                                   for split in ("train_frames", "held_out"))
    result = {"benchmark": "pose_direction", "args": vars(args), "summary": summary,
              "inverse_at_least_as_good_abs_rel": inverse_at_least_as_good, "runs": runs,
              "load_average": os.getloadavg(), "torch": torch.__version__}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
