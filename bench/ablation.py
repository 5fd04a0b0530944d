"""Benchmark: the paper's Table II on our own data - the six cumulative loss presets, same budget, several seeds.

    python bench/ablation.py [--seeds 0 1] [--presets baseline bi bi_occ bi_occ_dsc bi_occ_dsc_aw full] \\
        [--synth-frames 400 --height 64 --width 224 --iterations 600] \\
        [--kitti ../shared/data/kitti_odom_07_160 --sequence 07 --camera 0 --kitti-iterations N]

(i) Synthetic street: `bwdp synth` renders a training street (seed 1) and a held-out street (seed 7, never trained on);
    every (preset, seed) trains with `bwdp train` on the first with the same budget and is scored with `bwdp eval-depth
    --data` on the second: median-scaled AbsRel and delta < 1.25. A run whose checkpoint stops short of the budget
    resumes (`bwdp train --resume`), a finished one is only scored again, so presets can be added to a work folder.
(ii) Real sequence (with --kitti): every (preset, seed) runs bench/real_sequence.py (the one-sequence recipe with
    `loss.preset` set, `bwdp vo`, `bwdp eval-odom`): ATE after sim(3) alignment and the yaw ratio through the turns.
Writes bench/results/ablation[_<tag>].json: per run, and per preset the mean and spread over seeds; the load average
and the machine. The paper's KITTI Eigen AbsRel per row is stored beside it for the README table.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import real_sequence  # noqa: E402

from bwdp_core.checkpoint import load_checkpoint  # noqa: E402
from bwdp_core.losses.config import PRESETS  # noqa: E402

PAPER_ABS_REL = {"baseline": 0.1418, "bi": 0.1390, "bi_occ": 0.1262, "bi_occ_dsc": 0.1234, "bi_occ_dsc_aw": 0.1219,
                 "full": 0.1199}


def synth_run(work: Path, preset: str, seed: int, args) -> dict:
    """Train one preset on the synthetic street and score its depth on the held-out street."""
    out = work / f"synth_{preset}_s{seed}"
    train_root, heldout_root = work / "synth_train", work / "synth_heldout"
    sets = [f"data.source={json.dumps({'type': 'kitti_odom', 'path': str(train_root)})}",
            f"loss.preset={preset}", f"train.seed={seed}", f"train.iterations={args.iterations}",
            f"data.height={args.height}", f"data.width={args.width}"] + args.synth_set
    train_args = ["train", "--config", args.synth_config, "--out", str(out / "train"), "--no-progress"]
    for item in sets:
        train_args += ["--set", item]
    last = out / "train" / "checkpoints" / "last.pt"
    done = int(load_checkpoint(last).get("step", 0)) if last.is_file() else 0  # a run cut short resumes
    wall_file = out / "train_wall.json"  # {"train_wall_s", "resumed_from_step"} of the run that finished it
    if done < args.iterations:
        wall = real_sequence.bwdp(*train_args, *(["--resume"] if done else []), log=out.with_suffix(".train.log"))
        wall_file.write_text(json.dumps({"train_wall_s": round(wall, 1), "resumed_from_step": done}))
    timing = json.loads(wall_file.read_text()) if wall_file.is_file() else {"train_wall_s": None}
    real_sequence.bwdp("eval-depth", "--checkpoint", str(out / "train" / "checkpoints" / "last.pt"), "--data",
                       str(heldout_root), "--num-visuals", "0", "--out", str(out / "eval"),
                       log=out.with_suffix(".eval.log"))
    metrics = json.loads((out / "eval" / "metrics.json").read_text())["metrics"]
    return {"preset": preset, "seed": seed, **timing, "abs_rel": round(metrics["abs_rel"], 4),
            "delta1": round(metrics["delta1"], 4)}


def kitti_run(work: Path, preset: str, seed: int, args) -> dict:
    """The one-sequence recipe with one preset on the real sequence: ATE and yaw through the turns."""
    name = f"ablation_{preset}_s{seed}"
    argv = [str(args.kitti), "--sequence", args.sequence, "--camera", str(args.camera), "--config", args.kitti_config,
            "--name", name, "--work", str(work / name), "--results", str(work / "real"), "--no-classical",
            "--set", f"loss.preset={preset}", "--set", f"train.seed={seed}"]
    if args.kitti_iterations:
        argv += ["--set", f"train.iterations={args.kitti_iterations}"]
    if args.depth_gt is not None:
        argv += ["--depth-gt", str(args.depth_gt)]
    for item in args.kitti_set:
        argv += ["--set", item]
    real_sequence.main(argv)
    result = json.loads((work / "real" / f"real_sequence_{name}.json").read_text())
    learned = result["odometry"]["learned"]
    ratios = [t["learned_ratio"] for t in result["yaw_through_turns"]]
    depth = result["depth_structure"]["per_frame"]
    gt = result.get("depth_gt") or {}
    return {"preset": preset, "seed": seed, "train_wall_s": result["train_wall_s"], "ate_sim3_m": learned["ate_sim3_m"],
            "t_err_percent": learned["t_err_percent"], "yaw_ratios": ratios,
            "depth_std_over_mean_min": min(d["std_over_mean"] for d in depth),
            "abs_rel": gt.get("abs_rel"), "delta1": gt.get("delta1")}


def run_all(run, args) -> list[dict]:
    """``run(work, preset, seed, args)`` for every (preset, seed), ``args.jobs`` at a time (each is a `bwdp train`
    subprocess with its own threads), results in (preset, seed) order."""
    pairs = [(p, s) for p in args.presets for s in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        return list(pool.map(lambda pair: run(args.work, *pair, args), pairs))


def summarise(runs: list[dict], keys: tuple[str, ...]) -> dict:
    """Per preset: mean and (max - min)/2 over seeds of each key."""
    table = {}
    for preset in dict.fromkeys(r["preset"] for r in runs):
        chosen = [r for r in runs if r["preset"] == preset]
        row = {"seeds": [r["seed"] for r in chosen]}
        for key in keys:
            values = np.array([r[key] for r in chosen if r.get(key) is not None], dtype=float)
            if values.size:
                row[f"{key}_mean"] = round(float(values.mean()), 4)
                row[f"{key}_halfrange"] = round(float(values.max() - values.min()) / 2, 4)
        table[preset] = row
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PAPER_ABS_REL), choices=sorted(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--synth-frames", type=int, default=400)
    parser.add_argument("--heldout-frames", type=int, default=160)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--iterations", type=int, default=600, help="training steps per synthetic run")
    parser.add_argument("--synth-config", default="sequence", help="training config of the synthetic runs")
    parser.add_argument("--synth-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `bwdp train --set` for the synthetic runs")
    parser.add_argument("--no-synth", action="store_true", help="skip part (i)")
    parser.add_argument("--kitti", type=Path, default=None, help="KITTI odometry root for part (ii)")
    parser.add_argument("--sequence", default="07")
    parser.add_argument("--camera", type=int, default=0)
    parser.add_argument("--kitti-config", default="sequence")
    parser.add_argument("--kitti-iterations", type=int, default=0, help="override the recipe's steps (0 = keep)")
    parser.add_argument("--kitti-set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--depth-gt", type=Path, default=None,
                        help="folder with rgb/ and depth/ (kitti_depth_demo layout): AbsRel of each KITTI run's model")
    parser.add_argument("--jobs", type=int, default=1,
                        help="synthetic runs at once (with --synth-set train.threads=1: 2 on 2 cores); "
                             "KITTI runs go one at a time")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bwdp_ablation"))
    parser.add_argument("--tag", default="", help="suffix of the result file (ablation_<tag>.json)")
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "ablation", "presets": args.presets, "seeds": args.seeds, "jobs": args.jobs,
              "command": "python " + " ".join(sys.argv),
              "paper_kitti_eigen_abs_rel": PAPER_ABS_REL,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    start = time.perf_counter()
    if not args.no_synth:
        for root, frames, seed in ((args.work / "synth_train", args.synth_frames, 1),
                                   (args.work / "synth_heldout", args.heldout_frames, 7)):
            if not (root / "poses").is_dir():
                real_sequence.bwdp("synth", "--out", str(root), "--frames", str(frames), "--height", str(args.height),
                                   "--width", str(args.width), "--seed", str(seed))
        runs = run_all(synth_run, args)
        result["synth"] = {"train_frames": args.synth_frames, "heldout_frames": args.heldout_frames,
                           "size": [args.height, args.width], "iterations": args.iterations,
                           "config": args.synth_config, "extra_set": args.synth_set, "runs": runs,
                           "table": summarise(runs, ("abs_rel", "delta1"))}
    if args.kitti is not None:
        runs = [kitti_run(args.work, p, s, args) for p in args.presets for s in args.seeds]  # one at a time: its
        # CPU-time figures come from the process's children (real_sequence.CPU_SECONDS)
        result["kitti"] = {"source": str(args.kitti), "sequence": args.sequence, "config": args.kitti_config,
                           "iterations_override": args.kitti_iterations or None, "extra_set": args.kitti_set,
                           "runs": runs, "table": summarise(runs, ("ate_sim3_m", "t_err_percent",
                                                                   "depth_std_over_mean_min", "abs_rel", "delta1"))}
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / (f"ablation_{args.tag}.json" if args.tag else "ablation.json")
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k]["table"] for k in ("synth", "kitti") if k in result}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
