"""Loss landscape between a constant depth map and the true one (issue 13): is "flat" a minimum of some term?

For one snippet (tgt + 2 refs) with known depth and poses, every frame's depth is interpolated in log space between
its own constant (geometric mean) and the reference structure:

    D_γ = exp(m + γ (log D − m)),   m = mean log D over the frame;   γ = 0: constant, γ = 1: the reference depth.

and each loss term (unweighted and weighted) is evaluated along γ with the true poses, and with the reverse pose
T_{r->t} taken as the inverse of T_{t->r} perturbed by a small rotation (what a second, independent PoseNet pass gives).
Reported per γ: every term, the total, the occluded fraction before the guard and the fraction of pairs the 50 % guard
switches off.  Pure forward passes, no training: a few seconds on one thread.

Data: ``synth`` (a rendered street: exact depth and poses) or ``kitti:ROOT:FRAME`` (real frames, GT poses; the
reference depth is a road-plane prior: camera 1.65 m above a flat road below the horizon, 40 m elsewhere — a
structured depth, not GT).

    python -m bench.collapse_landscape --data synth --out /tmp/landscape_synth.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bwdp_core.geometry import euler_to_rotation, invert_pose
from bwdp_core.losses.config import loss_config
from bwdp_core.losses.total import total_loss
from bwdp_core.model import SnippetPrediction

GAMMAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)


def snippet(spec: str, height: int, width: int):
    """(frames [3,3,H,W] tgt first, depths [3,1,H,W], T_{t->r} [2,4,4], K [1,3,3])."""
    from bwdp_core.data.augment import resize_image, resize_intrinsics
    from bwdp_core.data.snippets import image_to_tensor

    kind, _, rest = spec.partition(":")
    if kind == "synth":
        from bwdp_core.synth.render import render_sequence

        seq = render_sequence(5, height, width, seed=int(rest or 0))
        ids = [2, 1, 3]
        images = [image_to_tensor(seq.images[i]) for i in ids]
        depth = np.where(np.isfinite(seq.depths) & (seq.depths > 0), seq.depths, 80.0).clip(0.5, 80.0)
        depths = [torch.from_numpy(depth[i]).float()[None] for i in ids]
        poses, K = seq.poses, seq.K
    else:
        from bwdp_core.data.kitti_odometry import KittiOdometrySource

        root, _, frame = rest.rpartition(":")
        src = KittiOdometrySource(root, "07", camera=0)
        t = int(frame)
        ids = [t, t - 1, t + 1]
        images = [image_to_tensor(resize_image(src.load_image(i), (height, width))) for i in ids]
        K = resize_intrinsics(src.intrinsics, src.image_size, (height, width))
        ys = np.arange(height, dtype=np.float64)[:, None] + np.zeros((1, width))
        below = ys - K[1, 2]
        road = np.where(below > 0.5, K[1, 1] * 1.65 / np.maximum(below, 1e-6), 40.0).clip(1.0, 40.0)
        depths = [torch.from_numpy(road).float()[None] for _ in ids]
        poses = src.poses
    T_w = [torch.as_tensor(poses[i], dtype=torch.float64) for i in ids]
    fwd = torch.stack([torch.linalg.inv(T_w[j]) @ T_w[0] for j in (1, 2)]).float()  # T_ref_tgt
    return torch.stack(images), torch.stack(depths), fwd, torch.as_tensor(K, dtype=torch.float32)[None]


def flatten_towards(depth: torch.Tensor, gamma: float) -> torch.Tensor:
    log = depth.log()
    m = log.mean(dim=(1, 2, 3), keepdim=True)
    return torch.exp(m + gamma * (log - m))


def perturbed_inverse(fwd: torch.Tensor, degrees: float) -> torch.Tensor:
    bwd = invert_pose(fwd)
    if degrees == 0:
        return bwd
    angle = torch.deg2rad(torch.tensor(degrees)) / np.sqrt(3.0)
    R = euler_to_rotation(torch.full((fwd.shape[0], 3), float(angle)))
    out = bwd.clone()
    out[:, :3, :3] = R @ bwd[:, :3, :3]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="synth")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=224)
    p.add_argument("--disagreement", default="0,0.1,0.2", help="second-pass rotation disagreements, degrees")
    p.add_argument("--presets", default="baseline,bi,bi_occ,bi_occ_dsc,bi_occ_dsc_aw,full")
    p.add_argument("--overrides", default="{}")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)

    from bwdp_core.nets.disp_net import DispNet

    frames, depths, fwd, K = snippet(args.data, args.height, args.width)
    with torch.no_grad():
        features = DispNet(18)(frames)[1]  # random-init encoder (what training starts from)
    tgt, refs = frames[:1], [frames[1:2], frames[2:3]]
    rows = []
    for dis in [float(x) for x in args.disagreement.split(",")]:
        bwd = perturbed_inverse(fwd, dis)
        for preset in args.presets.split(","):
            cfg = loss_config(preset, **json.loads(args.overrides))
            for gamma in GAMMAS:
                d = flatten_towards(depths, gamma)
                disps = [1.0 / d] + [F.interpolate(1.0 / d, scale_factor=0.5 ** s, mode="area") for s in (1, 2, 3)]
                pred = SnippetPrediction(disps=disps, features=features, pose_vecs=torch.zeros(2, 6),
                                         poses_tgt_to_ref=fwd, poses_ref_to_tgt=bwd, num_refs=2, batch_size=1)
                cfg_pre = loss_config(preset, **{**json.loads(args.overrides), "max_occluded_fraction": 1.0})
                with torch.no_grad():
                    total, terms, _ = total_loss(cfg, tgt, refs, K, pred)
                    _, terms_pre, _ = total_loss(cfg_pre, tgt, refs, K, pred) if cfg.occlusion else (None, terms, None)
                row = {"disagreement_deg": dis, "preset": preset, "gamma": gamma, "total": float(total),
                       **{k: float(v) for k, v in terms.items()},
                       "occluded_pre_guard": float(terms_pre["occluded_fraction"])}
                rows.append(row)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    # compact table: total per gamma, and the argmin
    for dis in sorted({r["disagreement_deg"] for r in rows}):
        print(f"--- second-pass disagreement {dis}°  (total loss per γ; occluded-before-guard per γ)")
        for preset in args.presets.split(","):
            sel = [r for r in rows if r["disagreement_deg"] == dis and r["preset"] == preset]
            tot = " ".join(f"{r['total']:.4f}" for r in sel)
            occ = " ".join(f"{r['occluded_pre_guard']:.2f}" for r in sel)
            best = min(sel, key=lambda r: r["total"])["gamma"]
            print(f"{preset:14s} total {tot} | argmin γ={best} | occ {occ}")
    print("terms of full at disagreement 0 / max:")
    for dis in (0.0, max(r["disagreement_deg"] for r in rows)):
        for r in [r for r in rows if r["preset"] == "full" and r["disagreement_deg"] == dis]:
            print(" ", dis, r["gamma"], {k: round(r[k], 4) for k in ("photometric", "smoothness", "depth_consistency",
                                                                      "feature", "occluded_fraction", "valid_fraction")
                                         if k in r})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
