"""Benchmark: seconds to read one training batch of snippets, with and without the frame cache (`data.frame_cache_mb`).

Builds the training dataset exactly as `bwdp train --config CONFIG` does (the source given as a `--set
data.source=...` value, the config's size and snippet shape), then reads ``--epochs`` epochs in the training order
(shuffled, seed 0) on one core, once per cache size. Every frame of an L-frame snippet dataset is read by up to L
snippets an epoch; the cache decodes it once. Prints JSON and writes bench/results/data_loading.json (or --out) with the
load average.

    python bench/data_loading.py \
        '{type: kitti_odom, path: ../shared/data/kitti_odom_07_160, sequences: ["07"], camera: 0}' \
        [--config sequence] [--epochs 2] [--batch 4] [--cache-mb 0 256]
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

from bwdp_core.train.config import load_config  # noqa: E402
from bwdp_core.train.data import load_sources, snippet_dataset  # noqa: E402


def seconds_per_batch(cfg: dict, epochs: int, batch: int) -> dict:
    """Read ``epochs`` shuffled epochs item by item; seconds per batch of ``batch`` snippets (first, later epochs)."""
    dataset = snippet_dataset(load_sources(cfg["data"]["source"], cfg["data"]), cfg["data"],
                              cfg["data"]["augment"], seed=0)
    rng = np.random.default_rng(0)
    per_epoch = []
    for _ in range(epochs):
        start = time.perf_counter()
        for index in rng.permutation(len(dataset)):
            dataset[int(index)]
        per_epoch.append((time.perf_counter() - start) / len(dataset) * batch)
    return {"snippets": len(dataset), "first_epoch_s_per_batch": round(per_epoch[0], 4),
            "later_epochs_s_per_batch": round(float(np.mean(per_epoch[1:])), 4) if epochs > 1 else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="data.source as YAML, e.g. '{type: images, path: frames/}'")
    parser.add_argument("--config", default="sequence", help="training config (file or bundled name)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--cache-mb", type=int, nargs="+", default=[0, 256])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_loading.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    runs = {}
    for cache_mb in args.cache_mb:
        cfg = load_config(args.config, [f"data.source={args.source}", f"data.frame_cache_mb={cache_mb}"])
        runs[f"cache_{cache_mb}mb"] = seconds_per_batch(cfg, args.epochs, args.batch)
    result = {"benchmark": "data_loading", "source": args.source, "config": args.config,
              "size": [cfg["data"]["height"], cfg["data"]["width"]], "snippet_length": cfg["data"]["snippet_length"],
              "augment": cfg["data"]["augment"], "batch": args.batch, "epochs": args.epochs, "runs": runs,
              "command": "python " + " ".join(sys.argv),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
