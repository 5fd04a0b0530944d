"""Benchmark: the live VO node over DDS (localhost), odometry rate with `adapt:=true` vs `adapt:=false` (issue 9: with
adaptation >= 50 % of without on a 2-core CPU; adaptation must not starve inference).

Streams the KITTI 07 frames (a bag written by `bwdp make-bag --camera 0`) into the node at --rate Hz (above what the
node can process, so the odometry rate is its processing capacity: the node keeps only the newest frame), laps times,
and counts odometry messages per second. The node's own diagnostics give the adaptation steps and swaps. JSON (merged
into bench/results/adapt.json under "node") with the load average and the machine.

    python bench/adapt_node.py --bag k07 --checkpoint synth.pt [--rate 30] [--laps 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ros"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from bwdp_core.data.bag_io import image_from_msg, iter_messages  # noqa: E402
from bwdp_core.data.kitti_odometry import KittiOdometrySource  # noqa: E402
from bwdp_tools.node_process import VoNodeProcess, vo_config_path  # noqa: E402
from bwdp_tools.processes import pick_domain_id  # noqa: E402
from bwdp_tools.stream import VoStreamClient  # noqa: E402


def run_node(checkpoint: Path, images: list, K: np.ndarray, adapt: bool, rate: float, laps: int, log: Path) -> dict:
    domain = pick_domain_id("bench_adapt_node")
    params = {"device": "cpu", "num_threads": 1, "adapt": adapt, "diagnostics_period": 2.0,
              "publish_tf": False, "publish_camera_tf": False}
    node = VoNodeProcess(checkpoint, domain, params=params, params_file=vo_config_path(), log_path=log)
    client = None
    try:
        node.start()
        client = VoStreamClient(domain)
        node.wait_ready(timeout=300)
        assert client.wait_for_node(60), "node not discovered"
        stamp = [time.time_ns()]

        def next_stamp():
            stamp[0] += 100_000_000
            return stamp[0]

        assert client.prime(images[0], K, next_stamp, timeout=120), node.output
        client.clear()
        load_before = os.getloadavg()
        start = time.monotonic()
        sent = []
        for _ in range(laps):
            sent += client.stream(images, K, rate, start_ns=next_stamp())
            stamp[0] = sent[-1]
        client.wait_for(lambda: False, 1.0)  # the last frames' odometry
        seconds = time.monotonic() - start
        odom = len(client.odom)
        load_after = os.getloadavg()
        diag = re.findall(r"adapt: (\d+) steps, (\d+) swaps, (\d+) roll-backs", node.output)
        return {"adapt": adapt, "frames_sent": len(sent), "odometry_received": odom, "seconds": seconds,
                "odometry_per_s": odom / seconds, "adapt_steps_swaps_rollbacks": [int(v) for v in diag[-1]]
                if diag else None, "loadavg_before": load_before, "loadavg_after": load_after}
    finally:
        if client is not None:
            client.close()
        node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", type=Path, required=True)
    parser.add_argument("--kitti-root", default="/work/shared/data/kitti_odom_07_160")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--laps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "adapt.json")
    args = parser.parse_args()
    images = [image_from_msg(msg) for _, msg in iter_messages(args.bag, "/camera/image_raw")]
    K = KittiOdometrySource(args.kitti_root, "07", camera=0).intrinsics
    logs = Path(tempfile.mkdtemp(prefix="bench_adapt_node_"))
    off = run_node(args.checkpoint, images, K, False, args.rate, args.laps, logs / "off.log")
    on = run_node(args.checkpoint, images, K, True, args.rate, args.laps, logs / "on.log")
    node = {"adapt_off": off, "adapt_on": on, "rate_ratio_on_over_off": on["odometry_per_s"] / off["odometry_per_s"],
            "target_ratio": 0.5, "stream_rate_hz": args.rate, "checkpoint": str(args.checkpoint),
            "node_settings": "num_threads 1, backend auto, adapt defaults (adapt_threads 1, adapt_share 0.5, "
                             "worker thread at nice +10)",
            "command": "python " + " ".join(sys.argv),
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}, "logs": str(logs)}
    everything = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "adapt"}
    everything["node"] = node
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(everything, indent=2))
    print(json.dumps(node, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
