"""Throughput of the live VO node: a publisher sends 128x416 frames at 30 Hz to the node (a separate process, CPU).

Reports processed FPS (odometry), depth FPS (depth images received; the client subscribes to depth), latency image
stamp -> odometry received (p50/p95; the stamp is the publish time) and stamp -> depth received, frames dropped by the
node's keep-latest design, the node's RSS growth after warm-up, and the machine's load (``under_load`` when the
1-minute load before the run exceeded 0.5). JSON on stdout and in bench/results/node_throughput.json; ``--label NAME
--merge`` keeps the runs of other labels already in the file (one file for the configurations compared).

    python bench/node_throughput.py                     # 60 s, fixture checkpoint (ResNet-18 at 128x416)
    python bench/node_throughput.py --seconds 20 --checkpoint model.pt --backend eager
    python bench/node_throughput.py --depth-every-n 3 --int8 --label int8_depth3 --merge

``--int8`` exports the checkpoint with `bwdp export --int8` (calibration: a rendered street) and runs the node with
inference_backend onnxruntime_int8. Targets (issue 11, 2 cores): odometry >= 30 FPS, depth >= 10 FPS, p95 stamp ->
odom <= 100 ms, RSS growth <= 50 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bwdp_core.checkpoint import load_models  # noqa: E402
from bwdp_core.data.synth_source import SynthSource  # noqa: E402
from bwdp_core.eval.export import export_models  # noqa: E402
from bwdp_ros.conversions import stamp_to_ns  # noqa: E402
from bwdp_tools.fixtures import make_constant_motion_checkpoint  # noqa: E402
from bwdp_tools.node_process import VoNodeProcess  # noqa: E402
from bwdp_tools.processes import pick_domain_id  # noqa: E402
from bwdp_tools.stream import VoStreamClient  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming duration (default 60)")
    parser.add_argument("--rate", type=float, default=30.0, help="publish rate, Hz (default 30)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--checkpoint", default=None, help="default: a ResNet-18 fixture checkpoint at HxW")
    parser.add_argument("--backend", default="auto", help="node parameter inference_backend (default auto)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-threads", type=int, default=0, help="node parameter num_threads (0 = torch default)")
    parser.add_argument("--depth-every-n", type=int, default=1, help="node parameter depth_every_n")
    parser.add_argument("--depth-threads", type=int, default=1, help="node parameter depth_threads")
    parser.add_argument("--int8", action="store_true", help="export int8 files and use onnxruntime_int8")
    parser.add_argument("--label", default="default", help="name of this configuration in the JSON")
    parser.add_argument("--merge", action="store_true", help="keep the other labels' runs already in --out")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "node_throughput.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bwdp_bench_node_"))
    try:
        return _measure(args, tmp)
    finally:  # the fixture checkpoint is ~100 MB; the node log is summarised in the JSON
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(args: argparse.Namespace, tmp: Path) -> int:
    ckpt = args.checkpoint or make_constant_motion_checkpoint(tmp / "fixture.pt", args.height, args.width,
                                                              motion=(0, 0, 0.03, 0, 0, 0))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, size=(args.height, args.width, 3), dtype=np.uint8) for _ in range(16)]
    K = np.array([[0.58 * args.width, 0, args.width / 2], [0, 1.92 * args.height, args.height / 2], [0, 0, 1.0]])
    domain = pick_domain_id("bench_node_throughput")
    params = {"device": args.device, "inference_backend": args.backend, "num_threads": args.num_threads,
              "diagnostics_period": 5.0, "depth_every_n": args.depth_every_n, "depth_threads": args.depth_threads}
    if args.int8:
        int8_dir = tmp / "int8"
        _, _, meta = load_models(ckpt)
        report = export_models(ckpt, int8_dir, "onnx", calibration=[SynthSource.render(16, int(meta["height"]),
                                                                                        int(meta["width"]), seed=5)],
                               calibration_frames=8)
        (int8_dir / "export.json").write_text(json.dumps(report))
        params.update(inference_backend="onnxruntime_int8", int8_model_dir=str(int8_dir))
    load_before = os.getloadavg()
    with VoNodeProcess(ckpt, domain, params=params, log_path=tmp / "node.log") as node, \
            VoStreamClient(domain) as client:
        t_start = time.monotonic()
        node.wait_ready(300)
        startup_s = time.monotonic() - t_start
        assert client.wait_for_node(30), "node not discovered"
        assert client.prime(frames[0], K, time.time_ns, timeout=60), node.output
        rss_ready = node.rss_bytes()
        client.clear()

        period = 1.0 / args.rate
        sent, rss_warm, t0 = [], None, time.monotonic()
        i = 0
        while True:
            now = time.monotonic()
            if now - t0 >= args.seconds:
                break
            target = t0 + i * period
            if target > now:
                time.sleep(target - now)
            stamp = time.time_ns()
            client.publish_frame(frames[i % len(frames)], stamp, K)
            sent.append(stamp)
            i += 1
            if rss_warm is None and time.monotonic() - t0 >= min(5.0, args.seconds / 4):
                rss_warm = node.rss_bytes()
        duration = time.monotonic() - t0
        client.wait_for(lambda: False, 1.0)  # let the last frame finish
        rss_end = node.rss_bytes()
        with client._lock:
            odoms = [(recv, stamp_to_ns(m.header.stamp)) for recv, m in client.odom]
            depths = [(recv, stamp_to_ns(m.header.stamp)) for recv, m in client.depth]
        diag = [line for line in node.output.splitlines() if "diagnostics: processed" in line]
    load_after = os.getloadavg()

    sent_set = set(sent)
    answered = [(recv, st) for recv, st in odoms if st in sent_set]
    latencies = np.array([(recv - st) / 1e9 for recv, st in answered])
    depth_answered = [(recv, st) for recv, st in depths if st in sent_set]
    depth_latencies = np.array([(recv - st) / 1e9 for recv, st in depth_answered])
    result = {
        "label": args.label,
        "frames_sent": len(sent),
        "send_rate_hz": len(sent) / duration,
        "frames_processed": len(answered),
        "processed_fps": len(answered) / duration,
        "frames_dropped": len(sent) - len(answered),
        "depth_frames": len(depth_answered),
        "depth_fps": len(depth_answered) / duration,
        "depth_latency_ms": {"p50": float(np.percentile(depth_latencies, 50) * 1e3) if depth_latencies.size else None,
                             "p95": float(np.percentile(depth_latencies, 95) * 1e3) if depth_latencies.size else None},
        "latency_ms": {"p50": float(np.percentile(latencies, 50) * 1e3) if latencies.size else None,
                       "p95": float(np.percentile(latencies, 95) * 1e3) if latencies.size else None,
                       "max": float(latencies.max() * 1e3) if latencies.size else None},
        "rss_mb": {"ready": rss_ready / 2**20, "after_warmup": (rss_warm or rss_ready) / 2**20, "end": rss_end / 2**20,
                   "growth_after_warmup": (rss_end - (rss_warm or rss_ready)) / 2**20},
        "node_startup_s": startup_s,
        "node_last_diagnostics": diag[-1].split("]: ", 1)[-1] if diag else None,
        # the node's own measure (now - stamp when odom is published), one p50/p95 per diagnostics window
        "node_window_latency_ms": [[int(x) for x in re.findall(r"p50 (\d+) ms p95 (\d+) ms", line)[0]]
                                   for line in diag if "p50" in line],
        "config": {"seconds": args.seconds, "rate_hz": args.rate, "size": [args.height, args.width],
                   "checkpoint": str(args.checkpoint or "fixture ResNet-18"), "backend": args.backend,
                   "device": args.device, "num_threads": args.num_threads, "depth_every_n": args.depth_every_n,
                   "depth_threads": args.depth_threads, "int8": args.int8},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after,
                    "under_load": load_before[0] > 0.5},
        "targets": {"processed_fps": ">= 30", "depth_fps": ">= 10", "p95_ms": "<= 100", "rss_growth_mb": "<= 50"},
    }
    out = Path(args.out)
    runs = []
    if args.merge and out.is_file():
        previous = json.loads(out.read_text())
        runs = [r for r in previous.get("runs", [previous]) if r.get("label", "default") != args.label]
    text = json.dumps({"runs": runs + [result]}, indent=2)
    print(json.dumps(result, indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
