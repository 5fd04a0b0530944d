"""Per-frame inference benchmark: DispNet on one frame + PoseNet on one pair, batch 1.

For each size (default 128x416 and 256x832) and device (CPU with --threads threads; CUDA when present) it times every
inference variant of ``bwdp_core.inference.backends`` plus the naive baseline (full DispNet forward under no_grad),
interleaving the variants round by round so that load from other processes hits all of them alike. FLOPs are counted
once with ``torch.utils.flop_counter.FlopCounterMode`` (conv/matmul FLOPs of the eager pair). Prints JSON and writes
it to bench/results/infer.json. Not a test: no assertions on time.

    python bench/infer.py [--sizes 128x416,256x832] [--threads 2] [--rounds 15] [--device auto|cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bwdp_core.inference.backends import optimize_for_inference  # noqa: E402
from bwdp_core.nets import DispNet, PoseNet  # noqa: E402

TARGETS_MS = {"128x416": 125.0, "256x832": 380.0}  # issue 3, ResNet-18 pair on the 2-core dev CPU
CPU_VARIANTS = ("eager", "channels_last", "torchscript", "onnxruntime", "bf16")
CUDA_VARIANTS = ("eager", "channels_last", "torchscript", "bf16")
BASELINE = "eager_no_grad_full"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def count_flops(disp_net, pose_net, img, ref) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        disp_net(img)
        pose_net(img, ref)
    return int(counter.get_total_flops())


def make_step(runner, img, ref, sync):
    def step():
        runner.depth(img)
        runner.pose(img, ref)
        sync()

    return step


def baseline_step(disp_net, pose_net, img, ref, sync):
    def step():
        with torch.no_grad():
            disp_net(img)
            pose_net(img, ref)
        sync()

    return step


def bench_size(height, width, device, variants, rounds, warmup, num_layers, threads):
    load_before = [round(v, 2) for v in os.getloadavg()]
    torch.manual_seed(0)
    disp_net = DispNet(num_layers).to(device).eval()
    pose_net = PoseNet(num_layers).to(device).eval()
    img = torch.rand(1, 3, height, width, device=device)
    ref = torch.rand(1, 3, height, width, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    flops = count_flops(disp_net, pose_net, img, ref)

    with torch.no_grad():
        ref_depth = 1.0 / disp_net(img)[0][0]
        ref_pose = pose_net(img, ref)
    steps, setup_s, parity, errors = {BASELINE: baseline_step(disp_net, pose_net, img, ref, sync)}, {}, {}, {}
    for name in variants:
        start = time.perf_counter()
        try:
            runner = optimize_for_inference(disp_net, pose_net, height, width, backend=name, device=device,
                                            num_threads=threads)
        except Exception as exc:  # report and go on: one broken backend must not hide the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        setup_s[name] = round(time.perf_counter() - start, 2)
        depth, pose = runner.depth(img), runner.pose(img, ref)
        parity[name] = {
            "depth_max_rel_diff": float(((depth.float() - ref_depth).abs() / ref_depth).max()),
            "pose_max_abs_diff": float((pose.float() - ref_pose).abs().max()),
        }
        steps[name] = make_step(runner, img, ref, sync)

    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    times = {name: [] for name in names}
    for r in range(rounds):  # interleaved, rotating order: background load hits every variant alike
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            start = time.perf_counter()
            steps[name]()
            times[name].append(1000.0 * (time.perf_counter() - start))

    results = {}
    for name in names:
        ms = sorted(times[name])
        median = statistics.median(ms)
        results[name] = {
            "median_ms": round(median, 2),
            "p10_ms": round(ms[int(0.1 * (len(ms) - 1))], 2),
            "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
            "min_ms": round(ms[0], 2),
            "gflop_per_s": round(flops / 1e9 / (median / 1000.0), 1),
            "speedup_vs_baseline": None,
        }
        if name in setup_s:
            results[name]["setup_s"] = setup_s[name]
            results[name]["parity_vs_eager"] = parity[name]
    base = results[BASELINE]["median_ms"]
    for entry in results.values():
        entry["speedup_vs_baseline"] = round(base / entry["median_ms"], 2)
    exact = [n for n in names if n != BASELINE and parity[n]["depth_max_rel_diff"] < 1e-3]  # fp32-equivalent only
    best = min(exact, key=lambda n: results[n]["median_ms"], default=BASELINE)
    key = f"{height}x{width}"
    return {
        "size": key,
        "device": str(device),
        "load_avg_before": load_before,  # 1/5/15-min load of the shared machine around this size's timing
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "gflop_per_frame": round(flops / 1e9, 3),
        "variants": results,
        "errors": errors,
        "best": best,  # fastest variant whose depth matches eager within 1e-3 relative (bf16 is reported, not picked)
        "best_median_ms": results[best]["median_ms"],
        "target_ms": TARGETS_MS.get(key) if device.type == "cpu" else None,
        "meets_target": (results[best]["median_ms"] <= TARGETS_MS[key]) if device.type == "cpu" and key in TARGETS_MS
        else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128x416,256x832", help="comma-separated HxW list (multiples of 32)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and ONNX Runtime)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--num-layers", type=int, default=18, choices=(18, 50))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto = the CPU, plus CUDA when present")
    parser.add_argument("--variants", default=None, help="comma-separated subset of backends to time")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other (size, device) entries already in --out (re-time one size when quiet)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                      "infer.json"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    devices = []
    if args.device in ("auto", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append(torch.device("cuda"))
    report = {
        "benchmark": "infer: DispNet(one frame) + PoseNet(one pair) per frame, batch 1",
        "num_layers": args.num_layers,
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__,
        },
        "load_avg_before": [round(v, 2) for v in os.getloadavg()],
        "rounds": args.rounds,
        "results": [],
    }
    try:
        import onnxruntime

        report["machine"]["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    for device in devices:
        variants = CPU_VARIANTS if device.type == "cpu" else CUDA_VARIANTS
        if args.variants:
            variants = tuple(v for v in args.variants.split(",") if v in variants)
        for height, width in sizes:
            report["results"].append(
                bench_size(height, width, device, variants, args.rounds, args.warmup, args.num_layers, args.threads)
            )
    report["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    if args.merge and os.path.isfile(args.out):
        with open(args.out) as handle:
            previous = json.load(handle)
        fresh = {(r["size"], r["device"]) for r in report["results"]}
        kept = [r for r in previous.get("results", []) if (r["size"], r["device"]) not in fresh]
        report["results"] = kept + report["results"]
    text = json.dumps(report, indent=2)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
