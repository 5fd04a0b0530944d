"""`bwdp train --config FILE [--set key=value ...] [--resume] [--out DIR]`.

One GPU / CPU:   bwdp train --config my.yaml --out runs/exp1
Several GPUs:    torchrun --nproc_per_node 4 -m bwdp_core.commands.cli train --config my.yaml --out runs/exp1
Several nodes:   torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 --nproc_per_node 4 \\
                     -m bwdp_core.commands.cli train --config my.yaml --out runs/exp1
Continue:        the same command plus --resume (reads OUT/checkpoints/last.pt), or just
                 bwdp train --resume --out runs/exp1   (takes the config the run saved in OUT/config.yaml)

Outputs: OUT/checkpoints/last.pt (periodic + final), OUT/checkpoints/best.pt (best validation), OUT/tensorboard/,
OUT/metrics.jsonl, OUT/config.yaml (the full resolved config).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bwdp_core.train.config import load_config
from bwdp_core.train.distributed import cleanup, init_distributed
from bwdp_core.train.loop import run_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config; unset keys come from config/train.yaml "
                        "(with --resume and no --config: OUT/config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one key, value parsed as YAML (e.g. --set train.lr=2e-4); repeatable")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output folder from its latest checkpoint")
    parser.add_argument("--out", metavar="DIR", help="output folder (overrides the config's `out`)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs still go to TensorBoard)")


def main(args: argparse.Namespace) -> int:

    config_file = args.config
    if config_file is None and args.resume and args.out:
        saved = Path(args.out) / "config.yaml"  # the resolved config the interrupted run wrote
        if saved.is_file():
            config_file = saved
    cfg = load_config(config_file, args.overrides, args.out)
    ctx = init_distributed(cfg["train"]["device"])
    try:

        result = run_training(cfg, ctx, resume=args.resume, show_progress=not args.no_progress)
    finally:
        cleanup(ctx)
    if ctx.is_main:
        best = result.get("best")
        extra = f", best {best['metric']}={best['value']:.4f} at step {best.get('step')}" if best else ""
        print(f"trained to step {result['step']}{extra}; last checkpoint: {result['last_checkpoint']}")
    return 0
