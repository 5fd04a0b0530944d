"""Depth-collapse probe (issue 13): a small training run that measures WHY depth goes flat.

Trains DispNet + PoseNet with one loss configuration on a small in-memory snippet set (a KITTI-odometry folder, e.g.
the 160 grey frames of KITTI 07, or a `bwdp synth` street rendered in memory) and records, every ``--probe-every``
steps, for each weighted loss term:

  * the gradient norm w.r.t. the full-resolution disparity output (all frames of the batch),
  * the "contrast derivative" dL/dγ of the term along the direction that sharpens log-disparity contrast,
    d_γ = exp(m + (1 + γ)(log d − m)), m = per-frame mean of log d  ->  ∂d/∂γ = d · (log d − m).
    dL/dγ > 0: the term pushes the depth map towards a constant (flattening); < 0: towards more structure.

plus the per-batch depth std/mean (train mode), the occluded fraction BEFORE the 50 % guard and how often the guard
fires.  At the end: depth std/mean and top-quarter / bottom-quarter mean depth on chosen frames (eval mode, as
`bwdp vo` would run it), and median-scaled AbsRel / δ<1.25 on a folder of images with GT depth (optional, grey).

    python -m bench.collapse_probe --data kitti:/work/shared/data/kitti_odom_07_160:0 --preset full --steps 300 \
        --out /tmp/probe_full.json
    python -m bench.collapse_probe --data synth:60:0 --preset full ...

Single-threaded on purpose (shared 2-core machine); sizes are small.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from bwdp_core.losses.config import loss_config


def load_snippets(spec: str, height: int, width: int):
    """(tgt [N,3,H,W], refs [N,2,3,H,W], K [N,3,3], source) of every snippet, no augmentation."""
    from bwdp_core.data.snippets import SnippetDataset

    kind, _, rest = spec.partition(":")
    if kind == "kitti":
        from bwdp_core.data.kitti_odometry import KittiOdometrySource

        path, _, camera = rest.rpartition(":")
        source = KittiOdometrySource(path, "07", camera=int(camera))
    elif kind == "synth":
        from bwdp_core.data.synth_source import SynthSource

        frames, _, seed = rest.partition(":")
        source = SynthSource.render(int(frames), height, width, seed=int(seed or 0))
    else:
        raise SystemExit(f"unknown data spec {spec}")
    ds = SnippetDataset([source], height, width, augment=False)
    items = [ds[i] for i in range(len(ds))]
    tgt = torch.stack([it["tgt_img"] for it in items])
    refs = torch.stack([it["ref_imgs"] for it in items])
    K = torch.stack([it["intrinsics"] for it in items])
    depth = torch.stack([it["depth_gt"] for it in items]) if "depth_gt" in items[0] else None
    return tgt, refs, K, depth, ds


def weighted_terms(cfg, terms):
    out = {"photometric": cfg.w_photo * terms["photometric"], "smoothness": cfg.w_smooth * terms["smoothness"]}
    if "depth_consistency" in terms:
        out["depth_consistency"] = cfg.w_dsc * terms["depth_consistency"]
    if "feature" in terms:
        out["feature"] = cfg.w_feat * terms["feature"]
    return out


@torch.no_grad()
def occlusion_stats(cfg, pred, tgt, refs, K):
    """Pre-guard occluded fraction per pair (over in-view pixels) with the poses the loss uses, and with a
    consistent pair (T_{r->t} = inverse of the forward pass)."""
    from bwdp_core.geometry import inverse_warp, invert_pose
    from bwdp_core.losses.occlusion import occlusion_mask
    from bwdp_core.losses.total import _pairs

    batch, n = tgt.shape[0], len(refs)
    frames = torch.cat([tgt, *refs], 0)
    _, sources = _pairs(frames, batch, n, True)
    depth_t, _ = _pairs(1.0 / pred.disps[0], batch, n, True)
    K_pairs = K.repeat(2 * n, 1, 1)
    out = {}
    for name, bwd in (("loss_pair", pred.poses_ref_to_tgt), ("consistent_pair", invert_pose(pred.poses_tgt_to_ref))):
        poses = torch.cat([pred.poses_tgt_to_ref, bwd], 0)
        warp = inverse_warp(sources, depth_t, None, poses, K_pairs)
        occ = occlusion_mask(warp.flow, warp.flow.roll(n * batch, dims=0), cfg.alpha1, cfg.alpha2)
        frac = (occ * warp.valid_mask).flatten(1).sum(1) / warp.valid_mask.flatten(1).sum(1).clamp(min=1)
        out[name] = frac
    return out


def rotation_disagreement_deg(pred):
    """Angle of T_{t->r} · T_{r->t} (0 for a consistent pair), degrees, per pair."""
    m = pred.poses_tgt_to_ref @ pred.poses_ref_to_tgt
    cos = ((m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2] - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def structure(depth: torch.Tensor) -> dict:
    """depth [1,H,W] or [H,W] -> std/mean and mean(top quarter) / mean(bottom quarter)."""
    d = depth.reshape(depth.shape[-2:]).double()
    q = d.shape[0] // 4
    return {"std_over_mean": float(d.std() / d.mean()), "top_over_bottom": float(d[:q].mean() / d[-q:].mean())}


def eval_folder(disp_net, folder: str, height: int, width: int, grey: bool = True) -> dict:
    import cv2

    from bwdp_core.data.sources import read_image_file
    from bwdp_core.eval.depth_metrics import evaluate_depth_image
    from bwdp_core.eval.eval_depth import data_root_samples
    from bwdp_core.inference.preprocess import predict_depth

    res = []
    for sample in data_root_samples(folder):
        image = read_image_file(sample.image_path)
        if grey:
            g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            image = np.repeat(g[..., None], 3, axis=2)
        gt = sample.load_gt()
        pred = predict_depth(disp_net, image, height, width, out_size=gt.shape)
        r = evaluate_depth_image(gt, pred, garg_crop=True)
        res.append({"name": sample.name, **{k: r.metrics[k] for k in ("abs_rel", "delta1")}, **structure(
            torch.from_numpy(pred))})
    return {"abs_rel": float(np.mean([r["abs_rel"] for r in res])), "a1": float(np.mean([r["delta1"] for r in res])),
            "per_image": res}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--preset", default="full")
    p.add_argument("--overrides", default="{}", help="JSON LossConfig overrides (weights too)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probe-every", type=int, default=25)
    p.add_argument("--eval-frames", default="10,80,150")
    p.add_argument("--eval-folder", default=None)
    p.add_argument("--init", default=None, help="checkpoint to start from (bwdp checkpoint with disp_net/pose_net)")
    p.add_argument("--decoder-norm", default="none", help="DispNet decoder normalisation: none | group")
    p.add_argument("--clip", type=float, default=0.0, help="max global gradient norm (0 = none)")
    p.add_argument("--warmup", type=int, default=0, help="linear lr warm-up steps (0 = none)")
    p.add_argument("--translation-scale", type=float, default=None,
                   help="PoseNet output factor of all six components (default 0.01; the recorded runs used it so): "
                        "model.translation_scale and model.rotation_scale together")
    p.add_argument("--activations", action="store_true", help="record decoder activation magnitudes at probes")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    from bwdp_core.checkpoint import build_models
    from bwdp_core.losses.total import total_loss
    from bwdp_core.model import predict_snippet

    cfg = loss_config(args.preset, **json.loads(args.overrides))
    tgt_all, refs_all, K_all, depth_all, ds = load_snippets(args.data, args.height, args.width)
    pose_scale = {} if args.translation_scale is None else {"translation_scale": args.translation_scale,
                                                             "rotation_scale": args.translation_scale}
    disp_net, pose_net = build_models({"num_layers": 18, "height": args.height, "width": args.width,
                                       "decoder_norm": args.decoder_norm, **pose_scale})
    if args.init:
        state = torch.load(args.init, map_location="cpu", weights_only=False)
        disp_net.load_state_dict(state["disp_net"])
        pose_net.load_state_dict(state["pose_net"])
    acts = {}
    if args.activations:
        for name, mod in disp_net.decoder.named_modules():
            if name.count(".") == 1 and name.split(".")[1] in ("reduce", "fuse"):
                mod.register_forward_hook(lambda m, i, o, n=name: acts.__setitem__(
                    n, (float(o.detach().abs().max()), float(o.detach().max()))))
    params = list(disp_net.parameters()) + list(pose_net.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    disp_net.train()
    pose_net.train()

    log, probes = [], []
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        idx = torch.from_numpy(rng.choice(len(tgt_all), args.batch, replace=False))
        tgt, refs, K = tgt_all[idx], [refs_all[idx, j] for j in range(refs_all.shape[1])], K_all[idx]
        if args.warmup:
            for group in opt.param_groups:
                group["lr"] = args.lr * min(1.0, step / args.warmup)
        pred = predict_snippet(disp_net, pose_net, tgt, refs, cfg)
        total, terms, _ = total_loss(cfg, tgt, refs, K, pred)
        probe = step == 1 or step % args.probe_every == 0 or step == args.steps
        if probe:
            disp = pred.disps[0]
            logd = disp.log()
            direction = (disp * (logd - logd.mean(dim=(2, 3), keepdim=True))).detach()
            rows = torch.linspace(-0.5, 0.5, disp.shape[-2]).view(1, 1, -1, 1)
            ramp = (disp * rows).detach()  # bottom rows nearer (larger disparity): the road-scene prior
            to_gt = None
            if depth_all is not None:  # move target log-disparity towards the GT's (valid pixels, per-frame means)
                gt = depth_all[idx]
                valid = (gt > 0).to(disp.dtype)
                log_gt = torch.where(gt > 0, -gt.clamp(min=1e-3).log(), torch.zeros_like(gt))
                lg = log_gt - (log_gt * valid).sum((2, 3), keepdim=True) / valid.sum((2, 3), keepdim=True)
                ld = logd[: args.batch] - (logd[: args.batch] * valid).sum((2, 3), keepdim=True) / valid.sum(
                    (2, 3), keepdim=True)
                to_gt = torch.zeros_like(disp)
                to_gt[: args.batch] = (disp[: args.batch] * (lg - ld) * valid).detach()
            rec = {"step": step}
            for name, value in weighted_terms(cfg, terms).items():
                g, = torch.autograd.grad(value, disp, retain_graph=True, allow_unused=True)
                g = torch.zeros_like(disp) if g is None else g
                rec[f"gnorm/{name}"] = float(g.norm())
                rec[f"dL_dcontrast/{name}"] = float((g * direction).sum())
                rec[f"dL_dramp/{name}"] = float((g * ramp).sum())
                if to_gt is not None:
                    rec[f"dL_dgt/{name}"] = float((g * to_gt).sum())
            occ = occlusion_stats(cfg, pred, tgt, refs, K)
            rec["occ_pre_guard_loss_pair"] = float(occ["loss_pair"].mean())
            rec["occ_pre_guard_consistent_pair"] = float(occ["consistent_pair"].mean())
            rec["guard_fires"] = float((occ["loss_pair"] > cfg.max_occluded_fraction).float().mean())
            rec["rot_disagreement_deg"] = float(rotation_disagreement_deg(pred).mean().detach())
            d = (1.0 / disp[: args.batch]).detach()
            rec["batch_depth_std_over_mean"] = float((d.flatten(1).std(1) / d.flatten(1).mean(1)).mean())
            rec.update({k: float(v) for k, v in terms.items()})
            rec["disp_saturated_fraction"] = float((disp[: args.batch] > 0.99 * 10.0).float().mean())
            if acts:
                rec["decoder_max_activation"] = max(v[0] for v in acts.values())
                rec["dead_elu_layers"] = sum(1 for v in acts.values() if v[1] < -0.9)  # every output ~ -1
            probes.append(rec)
            short = {k: (float(f"{v:.3g}") if isinstance(v, float) else v) for k, v in rec.items()}
            print(json.dumps(short), flush=True)
        opt.zero_grad(set_to_none=True)
        total.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        log.append(float(total.detach()))
    train_s = time.perf_counter() - t0

    disp_net.eval()
    result = {"args": vars(args), "loss_cfg": cfg.to_dict(), "train_seconds": train_s, "probes": probes,
              "machine": {"load_average": os.getloadavg(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                          "torch_threads": torch.get_num_threads()},
              "loss_first_last": [log[0], float(np.mean(log[-20:]))]}
    frames = []
    with torch.no_grad():
        n = len(tgt_all)
        for f in [int(x) for x in args.eval_frames.split(",") if x]:
            i = min(max(f - 1, 0), n - 1)  # snippet i has target frame i + 1
            disp = disp_net(tgt_all[i:i + 1])[0][0]
            rec = {"frame": ds.locate(i)[1], **structure(1.0 / disp[0])}
            if depth_all is not None:
                from bwdp_core.eval.depth_metrics import evaluate_depth_image
                r = evaluate_depth_image(depth_all[i, 0].numpy(), (1.0 / disp[0, 0]).numpy(), garg_crop=False)
                rec.update(abs_rel=r.metrics["abs_rel"], a1=r.metrics["delta1"])
            frames.append(rec)
        disp_net.train()
        d_tr = disp_net(tgt_all[[min(max(int(f) - 1, 0), n - 1) for f in args.eval_frames.split(",")]])[0][0]
        result["train_mode_std_over_mean"] = [structure(1.0 / x)["std_over_mean"] for x in d_tr]
        disp_net.eval()
    result["frames"] = frames
    if depth_all is not None:
        from bwdp_core.eval.depth_metrics import evaluate_depth_image
        with torch.no_grad():
            ab = []
            for i in range(0, len(tgt_all), 4):
                disp = disp_net(tgt_all[i:i + 1])[0][0]
                r = evaluate_depth_image(depth_all[i, 0].numpy(), (1.0 / disp[0, 0]).numpy(), garg_crop=False)
                ab.append((r.metrics["abs_rel"], r.metrics["delta1"]))
        result["train_street_abs_rel"], result["train_street_a1"] = map(float, np.mean(ab, 0))
    if args.eval_folder:
        result["eval_folder"] = eval_folder(disp_net, args.eval_folder, args.height, args.width)
    summary = {"preset": args.preset, "overrides": args.overrides, "lr": args.lr,
               "frames": [(f["frame"], round(f["std_over_mean"], 3), round(f["top_over_bottom"], 3)) for f in frames],
               "train_mode_std": [round(x, 3) for x in result["train_mode_std_over_mean"]],
               "train_s": round(train_s, 1), "final_probe": {k: probes[-1].get(k) for k in (
                   "decoder_max_activation", "dead_elu_layers", "disp_saturated_fraction",
                   "batch_depth_std_over_mean")}}
    if "eval_folder" in result:
        summary["demo_abs_rel"] = round(result["eval_folder"]["abs_rel"], 3)
        summary["demo_a1"] = round(result["eval_folder"]["a1"], 3)
    if "train_street_abs_rel" in result:
        summary["street_abs_rel"] = round(result["train_street_abs_rel"], 3)
    result["summary"] = summary
    print("SUMMARY", json.dumps(summary), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.out.endswith(".json"):
        torch.save({"disp_net": disp_net.state_dict(), "pose_net": pose_net.state_dict()},
                   args.out[:-5] + ".pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
