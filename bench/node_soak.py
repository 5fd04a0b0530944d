"""Soak test of the live VO node: 128x416 frames at 30 Hz for 10 minutes into the node (a separate process, CPU).

Every minute: processed frames/s, latency image stamp -> odometry received (p50/p95), the node's RSS, and whether
each output (depth/image_rect, odom, /diagnostics) still has its publisher and still arrived in that minute. Passes
when RSS grows <= 50 MB after the first minute, the per-minute latency p95 stays <= 2x the first minute's (bounded: no
queue builds up), no output loses its publisher or stops, and the node stays alive. JSON on stdout and in
bench/results/node_soak.json (with the machine's load).

    python bench/node_soak.py                     # 600 s, fixture checkpoint (ResNet-18 at 128x416)
    python bench/node_soak.py --seconds 60 --out bench/results/node_soak_60s.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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

OUTPUTS = ("depth/image_rect", "odom", "/diagnostics")


def _window(client: VoStreamClient, sent: set, node: VoNodeProcess, minute: int, seconds: float) -> dict:
    """The statistics of the minute that just ended; empties the client's recordings (memory stays flat)."""
    with client._lock:
        odoms = [(recv, stamp_to_ns(m.header.stamp)) for recv, m in client.odom]
        arrived = {"depth/image_rect": len(client.depth), "odom": len(client.odom),
                   "/diagnostics": len(client.diagnostics)}
        levels = [s.level[0] for _, m in client.diagnostics for s in m.status]
    client.clear()
    latencies = np.array([(recv - st) / 1e9 for recv, st in odoms if st in sent])
    return {
        "minute": minute,
        "processed_fps": len(latencies) / seconds,
        "latency_ms": {"p50": float(np.percentile(latencies, 50) * 1e3) if latencies.size else None,
                       "p95": float(np.percentile(latencies, 95) * 1e3) if latencies.size else None},
        "rss_mb": node.rss_bytes() / 2**20,
        "messages": arrived,
        "publishers": {topic: client.node.count_publishers(topic) for topic in OUTPUTS},
        "diagnostics_levels": sorted(set(levels)),
        "loadavg": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="streaming duration (default 600)")
    parser.add_argument("--window", type=float, default=60.0, help="statistics window, s (default 60)")
    parser.add_argument("--rate", type=float, default=30.0, help="publish rate, Hz (default 30)")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--checkpoint", default=None, help="default: a ResNet-18 fixture checkpoint at HxW")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "node_soak.json"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bwdp_bench_soak_"))
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
    domain = pick_domain_id("bench_node_soak")
    params = {"device": args.device, "diagnostics_period": 1.0}
    load_before = os.getloadavg()
    windows = []
    with VoNodeProcess(ckpt, domain, params=params, log_path=tmp / "node.log") as node, \
            VoStreamClient(domain) as client:
        node.wait_ready(300)
        assert client.wait_for_node(30), "node not discovered"
        assert client.prime(frames[0], K, time.time_ns, timeout=60), node.output
        client.clear()
        period, sent, i = 1.0 / args.rate, set(), 0
        t0 = window_start = time.monotonic()
        while True:
            now = time.monotonic()
            if now - window_start >= args.window or now - t0 >= args.seconds:
                client.wait_for(lambda: False, 0.5)  # the frames in flight
                windows.append(_window(client, sent, node, len(windows), now - window_start))
                sent.clear()
                print(json.dumps(windows[-1]), flush=True)
                window_start = time.monotonic()
                if now - t0 >= args.seconds:
                    break
            target = t0 + i * period
            if target > now:
                time.sleep(target - now)
            stamp = time.time_ns()
            client.publish_frame(frames[i % len(frames)], stamp, K)
            sent.add(stamp)
            i += 1
        alive = node.alive()
        errors = [line for line in node.output.splitlines() if "[ERROR]" in line or "Traceback" in line]
    load_after = os.getloadavg()

    rss_growth = windows[-1]["rss_mb"] - windows[0]["rss_mb"]
    p95 = [w["latency_ms"]["p95"] for w in windows if w["latency_ms"]["p95"] is not None]
    outputs_ok = all(w["messages"][t] > 0 and w["publishers"][t] >= 1 for w in windows for t in OUTPUTS)
    result = {
        "seconds": args.seconds,
        "frames_sent": i,
        "windows": windows,
        "rss_growth_mb_after_first_window": rss_growth,
        "latency_p95_ms_first_last_max": [p95[0], p95[-1], max(p95)] if p95 else None,
        "every_output_published_every_window": outputs_ok,
        "node_alive_at_end": alive,
        "node_error_lines": errors[:5],
        "passed": {"rss_growth_le_50mb": rss_growth <= 50.0,
                   "p95_bounded_le_2x_first": bool(p95) and max(p95) <= 2 * p95[0],
                   "no_dropped_publisher": outputs_ok, "alive": alive},
        "config": {"rate_hz": args.rate, "size": [args.height, args.width], "window_s": args.window,
                   "checkpoint": str(args.checkpoint or "fixture ResNet-18"), "device": args.device},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_before": load_before,
                    "loadavg_after": load_after},
    }
    text = json.dumps(result, indent=2)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0 if all(result["passed"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
