"""Benchmark: seconds per optimisation step (forward + backward + Adam) of the full method on CPU.

3-frame snippets (tgt + 2 refs), batch 4, 128x416, DispNet-R18 + PoseNet-R18, loss preset "full",
torch.set_num_threads(2).  Several variants are timed INTERLEAVED (one step of each in turn, each with its own
networks and optimizer), so a load change on the shared machine hits all of them alike.  Prints JSON and writes
bench/results/train_step.json, with the 1-minute load average before and after.

    python bench/train_step.py [--steps 4] [--variants default fused_adam channels_last inverse_pose fastest]
                               [--config sequence] [--height 64 --width 224]

The networks and the loss are those of `bwdp train --config CONFIG` (default: bwdp_core/config/train.yaml, i.e. the
plain decoder; ``--config sequence`` = the one-recording recipe: GroupNorm decoder, scale-invariant warp, its
λ_smooth), built by the training code itself (bwdp_core.train.step), so a variant measures what training would do.

variants: default        = the full method as the config sets it (second PoseNet pass, torch's default Adam,
                           train.channels_last)
          contiguous     = default in the contiguous (NCHW) memory format
          fused_adam     = + torch.optim.Adam(fused=True)
          channels_last  = + networks and inputs in channels_last memory format (train.channels_last)
          inverse_pose   = + T_{r->t} = invert_pose(T_{t->r}) (LossConfig.inverse_pose; no second PoseNet pass)
          fastest        = fused_adam + channels_last + inverse_pose
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bwdp_core.losses.total import total_loss  # noqa: E402
from bwdp_core.train.config import load_config  # noqa: E402
from bwdp_core.train.step import SnippetModel, as_prediction, build_loss_config, build_networks  # noqa: E402

VARIANTS = {
    "default": {},
    "contiguous": {"channels_last": False},
    "fused_adam": {"fused": True},
    "channels_last": {"channels_last": True},
    "inverse_pose": {"inverse_pose": True},
    "fastest": {"fused": True, "channels_last": True, "inverse_pose": True},
}
PHASES = ("networks_forward", "loss_forward", "backward", "adam")


class Variant:
    def __init__(self, name, cfg, batch, height, width, fused=False, channels_last=None, inverse_pose=False):
        torch.manual_seed(0)
        self.name = name
        disp_net, pose_net = build_networks(cfg)
        self.cfg = dataclasses.replace(build_loss_config(cfg), inverse_pose=inverse_pose)
        if channels_last is None:  # as the config says (train.channels_last)
            channels_last = bool(cfg["train"]["channels_last"])
        self.model = SnippetModel(disp_net, pose_net, self.cfg, channels_last=channels_last).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4, **({"fused": True} if fused else {}))
        g = torch.Generator().manual_seed(0)
        self.tgt = torch.rand(batch, 3, height, width, generator=g)
        self.refs = [torch.rand(batch, 3, height, width, generator=g) for _ in range(2)]
        self.K = torch.tensor([[0.58 * width, 0, width / 2], [0, 0.58 * width, height / 2], [0, 0, 1]]).expand(
            batch, 3, 3).contiguous()
        self.times, self.phases = [], []

    def step(self, record: bool):
        t0 = time.perf_counter()
        pred = as_prediction(self.model(self.tgt, self.refs))
        t1 = time.perf_counter()
        total, _, _ = total_loss(self.cfg, self.tgt, self.refs, self.K, pred)
        t2 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        t3 = time.perf_counter()
        self.optimizer.step()
        t4 = time.perf_counter()
        if record:
            self.times.append(t4 - t0)
            self.phases.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))

    def summary(self):
        return {"seconds_per_step_median": statistics.median(self.times), "seconds_per_step_min": min(self.times),
                "seconds_per_step_mean": statistics.mean(self.times),
                "phases_median_s": {p: statistics.median(x[i] for x in self.phases) for i, p in enumerate(PHASES)}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant (after --warmup)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--config", default=None, help="training config (file or bundled name, e.g. sequence); "
                        "default bwdp_core/config/train.yaml")
    parser.add_argument("--preset", default="full")
    parser.add_argument("--variants", nargs="+", default=["default", "fastest"], choices=list(VARIANTS))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train_step.json"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    cfg = load_config(args.config, ["data.source.path=/unused", f"loss.preset={args.preset}",
                                    f"data.height={args.height}", f"data.width={args.width}", "model.init=null"])
    variants = [Variant(name, cfg, args.batch, args.height, args.width, **VARIANTS[name])
                for name in args.variants]
    for step in range(args.warmup + args.steps):
        for variant in variants:
            variant.step(record=step >= args.warmup)

    result = {
        "benchmark": "train_step",
        "seconds_per_step": variants[0].summary()["seconds_per_step_median"],
        "headline_variant": variants[0].name,
        "variants": {v.name: {**VARIANTS[v.name], **v.summary()} for v in variants},
        "steps": args.steps, "warmup": args.warmup, "threads": args.threads, "batch": args.batch,
        "height": args.height, "width": args.width, "snippet_length": 3, "preset": args.preset,
        "config": args.config or "train.yaml", "decoder_norm": cfg["model"]["decoder_norm"],
        "num_scales": variants[0].cfg.num_scales,
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
