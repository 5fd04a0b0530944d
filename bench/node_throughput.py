"""Throughput of the live VO node: a publisher sends 128x416 frames at 30 Hz to the node (a separate process, CPU).

Reports processed FPS, latency image stamp -> odometry received (p50/p95; the stamp is the publish time), frames
dropped by the node's keep-latest design, the node's RSS growth after warm-up, and the machine's load. JSON on stdout
and in bench/results/node_throughput.json.

    python bench/node_throughput.py                     # 60 s, fixture checkpoint (ResNet-18 at 128x416)
    python bench/node_throughput.py --seconds 20 --checkpoint model.pt --backend eager

Targets on the 2-core dev CPU: >= 8 FPS processed, p95 <= 200 ms, RSS growth <= 50 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "node_throughput.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bwdp_bench_node_"))
    ckpt = args.checkpoint or make_constant_motion_checkpoint(tmp / "fixture.pt", args.height, args.width,
                                                              motion=(0, 0, 0.03, 0, 0, 0))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, size=(args.height, args.width, 3), dtype=np.uint8) for _ in range(16)]
    K = np.array([[0.58 * args.width, 0, args.width / 2], [0, 1.92 * args.height, args.height / 2], [0, 0, 1.0]])
    domain = pick_domain_id("bench_node_throughput")
    params = {"device": args.device, "inference_backend": args.backend, "num_threads": args.num_threads,
              "diagnostics_period": 5.0}
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
        diag = [line for line in node.output.splitlines() if "diagnostics: processed" in line]
    load_after = os.getloadavg()

    sent_set = set(sent)
    answered = [(recv, st) for recv, st in odoms if st in sent_set]
    latencies = np.array([(recv - st) / 1e9 for recv, st in answered])
    result = {
        "frames_sent": len(sent),
        "send_rate_hz": len(sent) / duration,
        "frames_processed": len(answered),
        "processed_fps": len(answered) / duration,
        "frames_dropped": len(sent) - len(answered),
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
                   "device": args.device, "num_threads": args.num_threads},
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after},
        "targets": {"processed_fps": ">= 8", "p95_ms": "<= 200", "rss_growth_mb": "<= 50"},
    }
    text = json.dumps(result, indent=2)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
