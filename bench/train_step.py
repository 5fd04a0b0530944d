"""Benchmark: seconds per optimisation step (forward + backward + Adam) of the full method on CPU.

3-frame snippets (tgt + 2 refs), batch 4, 128x416, DispNet-R18 + PoseNet-R18, loss preset "full",
torch.set_num_threads(2).  Prints JSON and writes bench/results/train_step.json.

    python bench/train_step.py [--steps 5] [--warmup 1] [--threads 2] [--preset full] [--inverse-pose]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bwdp_core.losses import loss_config  # noqa: E402
from bwdp_core.losses.total import total_loss  # noqa: E402
from bwdp_core.model import predict_snippet  # noqa: E402
from bwdp_core.nets.disp_net import DispNet  # noqa: E402
from bwdp_core.nets.pose_net import PoseNet  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--preset", default="full")
    parser.add_argument("--inverse-pose", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--adam", choices=("default", "foreach", "fused"), default="default",
                        help="torch.optim.Adam implementation (default = torch's choice for CPU)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "train_step.json"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    disp_net, pose_net = DispNet(18), PoseNet(18)
    if args.channels_last:
        disp_net, pose_net = disp_net.to(memory_format=torch.channels_last), pose_net.to(memory_format=torch.channels_last)
    disp_net.train(), pose_net.train()
    cfg = loss_config(args.preset, inverse_pose=args.inverse_pose)
    adam_kwargs = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[args.adam]
    optimizer = torch.optim.Adam(list(disp_net.parameters()) + list(pose_net.parameters()), lr=1e-4, **adam_kwargs)
    b, h, w = args.batch, args.height, args.width
    tgt = torch.rand(b, 3, h, w)
    refs = [torch.rand(b, 3, h, w) for _ in range(2)]
    K = torch.tensor([[0.58 * w, 0, w / 2], [0, 1.92 * h, h / 2], [0, 0, 1]]).expand(b, 3, 3).contiguous()

    times, phases = [], []
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        pred = predict_snippet(disp_net, pose_net, tgt, refs, cfg)
        t1 = time.perf_counter()
        total, _, _ = total_loss(cfg, tgt, refs, K, pred)
        t2 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if step >= args.warmup:
            times.append(t4 - t0)
            phases.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))

    n = len(phases)
    result = {
        "benchmark": "train_step",
        "seconds_per_step": sum(times) / n,
        "seconds_per_step_min": min(times),
        "phases_mean_s": {name: sum(p[i] for p in phases) / n
                          for i, name in enumerate(("networks_forward", "loss_forward", "backward", "adam"))},
        "steps": n, "warmup": args.warmup, "threads": args.threads, "batch": b, "height": h, "width": w,
        "snippet_length": 3, "preset": args.preset, "inverse_pose": args.inverse_pose,
        "channels_last": args.channels_last, "adam": args.adam, "num_scales": cfg.num_scales,
        "torch": torch.__version__, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
