"""Benchmark: how long depth stays flat at the start of training, per variant, on a tiny rendered street.

Each variant trains `bwdp train` from scratch on an in-memory `bwdp synth` street (8 frames, 32x96, batch 3,
lr 5e-4, one thread, no augmentation, full preset: the configuration of the slow test
tests/test_depth_collapse.py::test_full_method_learns_structured_depth_on_a_synth_street) plus ``--set`` overrides,
and records the batch depth std/mean of every step (``depth_std_over_mean`` in metrics.jsonl). ``flat_steps`` counts
the steps below the collapse warning's threshold (bwdp_core.geometry.NEAR_CONSTANT_DEPTH). A minute per variant.

    python bench/flat_phase.py --variant default "" --variant no_smoothness "loss.weights.w_smooth=0" [--steps 60]

JSON to bench/results/flat_phase.json (or --out), with the load average and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from bwdp_core.geometry import NEAR_CONSTANT_DEPTH  # noqa: E402


def tiny_config(path: Path, steps: int) -> Path:
    cfg = {"data": {"source": {"type": "synth", "frames": 8, "height": 32, "width": 96, "seed": 0},
                    "height": 32, "width": 96, "augment": False, "val_fraction": 0.0},
           "train": {"batch": 3, "iterations": steps, "workers": 0, "threads": 1, "log_every": 1, "ckpt_every": 1000,
                     "val_every": 0, "image_every": 0, "lr": 5.0e-4, "seed": 0},
           "loss": {"preset": "full"}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_variant(work: Path, overrides: list[str], steps: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    config = tiny_config(work / "c.yaml", steps)
    cmd = [sys.executable, "-m", "bwdp_core.commands.cli", "train", "--config", str(config), "--out", str(work / "run")]
    for item in overrides:
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"flat_phase: bwdp train failed for {overrides}: {proc.stderr.strip()[-800:]}")
    rows = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    stats = [round(r["loss"]["depth_std_over_mean"], 4) for r in rows if "loss" in r]
    return {"overrides": overrides, "wall_s": round(time.monotonic() - start, 1),
            "flat_steps": sum(v < NEAR_CONSTANT_DEPTH for v in stats),
            "min_after_step_1": min(stats[1:]), "mean_last_5": round(sum(stats[-5:]) / 5, 4),
            "depth_std_over_mean_by_step": stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), required=True,
                        help='a name and space-separated key=value overrides ("" = the configuration as is)')
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "flat_phase.json")
    args = parser.parse_args(argv)
    result = {"benchmark": "flat_phase", "command": " ".join(["python", "bench/flat_phase.py", *(
        argv if argv is not None else sys.argv[1:])]), "threshold": NEAR_CONSTANT_DEPTH,
        "load_before": [round(v, 2) for v in os.getloadavg()],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": {}}
    with tempfile.TemporaryDirectory(prefix="bwdp_flat_") as tmp:
        for name, overrides in args.variant:
            run = result["runs"][name] = run_variant(Path(tmp) / name, overrides.split(), args.steps)
            print(f"[flat_phase] {name}: {run['flat_steps']} flat steps of {args.steps}, "
                  f"last-5 std/mean {run['mean_last_5']:.3f}", flush=True)
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
