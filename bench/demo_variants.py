"""Benchmark: the `make demo` training with one setting changed, scored on the demo's held-out street.

Each variant is the demo's exact training (tools/bwdp_tools/demo.yaml: full preset, 32x96, 600 steps, batch 4,
lr 5e-4, one thread) plus ``--set`` overrides and a seed; then ``bwdp vo`` on the held-out street (another seed of
``bwdp synth``, never trained on), ``bwdp eval-odom --align sim3`` (ATE, t_err) and ``bwdp eval-depth`` (AbsRel,
median-scaled). This is how the eq. 6 mask was decided and how the demo's odometry regression was bisected.

    python bench/demo_variants.py --variant NAME "k=v k=v" [--variant ...] [--seeds 0 1] [--work DIR] [--out FILE]
                                  [--profile demo|toy]

An empty override string is the demo as configured. The JSON goes to bench/results/demo_variants.json (or --out),
with the load average before and after each run and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH.parent / "tools"))

from bwdp_tools.demo_training import (  # noqa: E402
    DemoError,
    DemoSettings,
    bwdp_command,
    render_sequence,
    run_step,
    train_command,
)


def bwdp(*args, log: Path) -> float:
    """Run one `bwdp` command to completion (output to ``log``); return its wall time in seconds."""
    start = time.monotonic()
    run_step(bwdp_command(*args), f"bwdp {args[0]}", log=log)
    return time.monotonic() - start


def run_variant(work: Path, settings: DemoSettings, train_root: Path, heldout_root: Path, overrides: list[str],
                seed: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    extra = {"train.seed": seed, **dict(item.partition("=")[::2] for item in overrides)}
    load_before = os.getloadavg()
    start = time.monotonic()
    run_step(train_command(settings, train_root, work / "run", extra), "bwdp train", log=work / "train.log")
    train_s = time.monotonic() - start
    checkpoint = work / "run" / "checkpoints" / "last.pt"
    bwdp("vo", "--checkpoint", checkpoint, "--kitti-seq", heldout_root / "sequences" / "00", "--out",
         work / "pred.txt", log=work / "vo.log")
    bwdp("eval-odom", "--pred", work / "pred.txt", "--gt", heldout_root / "poses" / "00.txt", "--align", "sim3",
         "--out", work / "odom", log=work / "odom.log")
    bwdp("eval-depth", "--checkpoint", checkpoint, "--data", heldout_root, "--device", "cpu", "--out",
         work / "depth", log=work / "depth.log")
    odom = json.loads((work / "odom" / "metrics.json").read_text())
    depth = json.loads((work / "depth" / "metrics.json").read_text())["metrics"]
    steps = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    return {"overrides": overrides, "seed": seed, "train_wall_s": round(train_s, 1),
            "load_before": [round(v, 2) for v in load_before],
            "load_after": [round(v, 2) for v in os.getloadavg()],
            "ate_sim3_m": odom["ate_m"]["rmse"], "t_err_percent": odom["kitti"]["t_err_percent"],
            "depth_abs_rel": depth["abs_rel"], "depth_delta1": depth["delta1"],
            "depth_std_over_mean_by_step": [(s["step"], round(s["loss"]["depth_std_over_mean"], 4))
                                            for s in steps if "depth_std_over_mean" in s.get("loss", {})]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), required=True,
                        help='a name and space-separated key=value overrides of the demo training ("" = as is)')
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--profile", default="demo", help="demo.yaml section (toy: a plumbing check in seconds)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bwdp_demo_variants"))
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "demo_variants.json")
    args = parser.parse_args(argv)

    settings = DemoSettings.load(args.profile)
    train_root = render_sequence(args.work, "train", settings.train_frames, settings.height, settings.width,
                                 settings.train_seed)
    heldout_root = render_sequence(args.work, "heldout", settings.heldout_frames, settings.height, settings.width,
                                   settings.heldout_seed)
    result = {"benchmark": "demo_variants", "command": " ".join(["python", "bench/demo_variants.py", *(
        argv if argv is not None else sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": {}}
    for name, overrides in args.variant:
        for seed in args.seeds:
            key = f"{name}/seed{seed}"
            print(f"[demo_variants] {key}: {overrides or '(demo as configured)'}", flush=True)
            result["runs"][key] = run_variant(args.work / name / f"seed{seed}", settings, train_root, heldout_root,
                                              overrides.split(), seed)
            print(f"[demo_variants] {key}: ATE {result['runs'][key]['ate_sim3_m']:.3f} m, "
                  f"AbsRel {result['runs'][key]['depth_abs_rel']:.3f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoError as err:  # a bwdp step failed: its log says why
        sys.exit(f"demo_variants: {err}")
