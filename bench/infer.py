"""Per-frame inference benchmark: DispNet on one frame + PoseNet on one pair, batch 1.

For each size (default 128x416 and 256x832) and device (CPU with --threads threads; CUDA when present) it times every
inference variant of ``bwdp_core.inference.backends`` plus the naive baseline (full DispNet forward under no_grad),
interleaving the variants round by round so that load from other processes hits all of them alike. Also timed in the
same rounds: ``dense_gemm``, one fp32 matrix product (--gemm-n, torch, same threads) whose FLOP/s is the machine's
dense-GEMM reference (each variant's ``fraction_of_gemm``). FLOPs are counted once with
``torch.utils.flop_counter.FlopCounterMode`` (conv/matmul FLOPs of the eager pair; the int8 variant is credited with
the same fp32-equivalent FLOPs). Depth and pose are timed separately too (``depth_ms``, ``pose_ms``).

Variants beyond the backends: ``onnxruntime_int8`` (the files of `bwdp export --int8`, calibrated on a rendered
street; timing only, its accuracy cost is bench/int8_accuracy.py's) and ``onnxruntime_spin`` (ONNX Runtime with
spinning idle threads, its default, against bwdp's sleeping ones). ``--contend N`` starts N busy-looping processes
for the timing (a robot's other nodes); the machine's own load is recorded either way (``load_avg_*``, and
``under_load`` when the 1-minute load before the size exceeded 0.5).
Prints JSON and writes it to bench/results/infer.json. Not a test: no assertions on time.

    python bench/infer.py [--sizes 128x416,256x832] [--threads 2] [--rounds 15] [--device auto|cpu|cuda] [--contend 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bwdp_core.checkpoint import make_checkpoint, save_checkpoint  # noqa: E402
from bwdp_core.data.synth_source import SynthSource  # noqa: E402
from bwdp_core.eval.export import export_models  # noqa: E402
from bwdp_core.inference.backends import optimize_for_inference  # noqa: E402
from bwdp_core.nets import DispNet, PoseNet  # noqa: E402

TARGETS_MS = {"128x416": 125.0, "256x832": 380.0}  # issue 3, ResNet-18 pair on the 2-core dev CPU
CPU_VARIANTS = ("eager", "channels_last", "torchscript", "onnxruntime", "onnxruntime_spin", "onnxruntime_int8", "bf16")
CUDA_VARIANTS = ("eager", "channels_last", "torchscript", "bf16")
BASELINE = "eager_no_grad_full"
GEMM = "dense_gemm"
UNDER_LOAD = 0.5  # 1-minute load average above which a figure is marked as taken under load


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


def make_step(runner, img, ref, sync, parts):
    """One depth + pose; appends (depth ms, pose ms) to ``parts``."""
    def step():
        start = time.perf_counter()
        runner.depth(img)
        sync()
        middle = time.perf_counter()
        runner.pose(img, ref)
        sync()
        parts.append((1000.0 * (middle - start), 1000.0 * (time.perf_counter() - middle)))

    return step


def gemm_step(n, device, sync):
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)

    def step():
        torch.mm(a, b)
        sync()

    return step


def int8_export(disp_net, pose_net, height, width, folder):
    """The int8 files of these networks, as `bwdp export --format onnx --int8` makes them (a rendered street of 16
    frames for the calibration: the random networks only need plausible activation ranges for a timing)."""
    ckpt = os.path.join(folder, "bench.pt")
    save_checkpoint(ckpt, make_checkpoint(disp_net, pose_net, height, width))
    report = export_models(ckpt, folder, "onnx", calibration=[SynthSource.render(16, height, width, seed=5)],
                           calibration_frames=8)
    with open(os.path.join(folder, "export.json"), "w") as handle:  # what `bwdp export` writes next to the files
        json.dump(report, handle)
    return folder


def start_contenders(count):
    """``count`` busy-looping processes (killed by the caller)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def baseline_step(disp_net, pose_net, img, ref, sync):
    def step():
        with torch.no_grad():
            disp_net(img)
            pose_net(img, ref)
        sync()

    return step


def bench_size(height, width, device, variants, rounds, warmup, num_layers, threads, gemm_n, tmp):
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
    steps[GEMM] = gemm_step(gemm_n, device, sync)
    parts = {}
    for name in variants:
        start = time.perf_counter()
        try:
            options = {"backend": name}
            if name == "onnxruntime_spin":
                options = {"backend": "onnxruntime", "ort_spinning": True}
            elif name == "onnxruntime_int8":
                options["int8_dir"] = int8_export(disp_net, pose_net, height, width,
                                                  tempfile.mkdtemp(prefix=f"int8_{height}x{width}_", dir=tmp))
            runner = optimize_for_inference(disp_net, pose_net, height, width, device=device, num_threads=threads,
                                            **options)
        except Exception as exc:  # report and go on: one broken backend must not hide the others
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        setup_s[name] = round(time.perf_counter() - start, 2)
        depth, pose = runner.depth(img), runner.pose(img, ref)
        parity[name] = {
            "depth_max_rel_diff": float(((depth.float() - ref_depth).abs() / ref_depth).max()),
            "pose_max_abs_diff": float((pose.float() - ref_pose).abs().max()),
        }
        parts[name] = []
        steps[name] = make_step(runner, img, ref, sync, parts[name])

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
    gemm_flops = 2.0 * gemm_n ** 3
    gemm_gflops = gemm_flops / 1e9 / (statistics.median(times[GEMM]) / 1000.0)
    for name in names:
        ms = sorted(times[name])
        median = statistics.median(ms)
        if name == GEMM:
            results[name] = {"median_ms": round(median, 2), "n": gemm_n, "gflop_per_s": round(gemm_gflops, 1)}
            continue
        results[name] = {
            "median_ms": round(median, 2),
            "p10_ms": round(ms[int(0.1 * (len(ms) - 1))], 2),
            "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
            "min_ms": round(ms[0], 2),
            "gflop_per_s": round(flops / 1e9 / (median / 1000.0), 1),
            "fraction_of_gemm": round(flops / 1e9 / (median / 1000.0) / gemm_gflops, 3),
            "speedup_vs_baseline": None,
        }
        if parts.get(name):
            results[name]["depth_ms"] = round(statistics.median(p[0] for p in parts[name][warmup:]), 2)
            results[name]["pose_ms"] = round(statistics.median(p[1] for p in parts[name][warmup:]), 2)
        if name in setup_s:
            results[name]["setup_s"] = setup_s[name]
            results[name]["parity_vs_eager"] = parity[name]
    base = results[BASELINE]["median_ms"]
    for name, entry in results.items():
        if name != GEMM:
            entry["speedup_vs_baseline"] = round(base / entry["median_ms"], 2)
    exact = [n for n in names if n not in (BASELINE, GEMM)
             and parity[n]["depth_max_rel_diff"] < 1e-3]  # fp32-equivalent only
    best = min(exact, key=lambda n: results[n]["median_ms"], default=BASELINE)
    key = f"{height}x{width}"
    return {
        "size": key,
        "device": str(device),
        "load_avg_before": load_before,  # 1/5/15-min load of the shared machine around this size's timing
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "under_load": load_before[0] > UNDER_LOAD,
        "gflop_per_frame": round(flops / 1e9, 3),
        "dense_gemm_gflop_per_s": round(gemm_gflops, 1),
        "variants": results,
        "errors": errors,
        "best": best,  # fastest variant matching eager within 1e-3 relative (bf16, int8: reported, not picked)
        "best_fraction_of_gemm": results[best].get("fraction_of_gemm"),
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
    parser.add_argument("--gemm-n", type=int, default=1536, help="size of the dense fp32 GEMM reference (n x n x n)")
    parser.add_argument("--contend", type=int, default=0, help="busy-looping processes started for the timing")
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
        "contenders": args.contend,
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
        contenders = start_contenders(args.contend)
        try:
            with tempfile.TemporaryDirectory(prefix="bwdp_bench_infer_") as tmp:
                for height, width in sizes:
                    report["results"].append(bench_size(height, width, device, variants, args.rounds, args.warmup,
                                                        args.num_layers, args.threads, args.gemm_n, tmp))
        finally:
            for proc in contenders:
                proc.kill()
                proc.wait()
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
