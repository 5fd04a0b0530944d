"""Benchmark: `bwdp synth` rendering time per frame on one CPU core (issue target: <= 100 ms at 128x416).

Renders the frames of one street (scene built once, as `render_sequence` does) with one torch / numpy thread and reports
the median CPU and wall time per frame.  Prints JSON and writes bench/results/synth_render.json with the load average.

    python bench/synth_render.py [--frames 50] [--height 128] [--width 416] [--seed 0]
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy / torch load their thread pools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bwdp_core.synth.render import camera_poses, kitti_intrinsics, make_scene, render_frame  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synth_render.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    start = time.perf_counter()
    scene = make_scene(args.seed)
    scene_s = time.perf_counter() - start
    K = kitti_intrinsics(args.height, args.width)
    poses = camera_poses(scene, args.frames)
    render_frame(scene, poses[0], K, args.height, args.width, frame_index=0)  # texture caches warm
    cpu_ms, wall_ms = [], []
    for i, pose in enumerate(poses):
        c0, w0 = time.process_time(), time.perf_counter()
        render_frame(scene, pose, K, args.height, args.width, frame_index=i)
        cpu_ms.append((time.process_time() - c0) * 1e3)
        wall_ms.append((time.perf_counter() - w0) * 1e3)
    result = {
        "benchmark": "synth_render",
        "size": f"{args.height}x{args.width}",
        "frames": args.frames,
        "threads": 1,
        "scene_build_s": round(scene_s, 3),
        "cpu_ms_per_frame_median": round(statistics.median(cpu_ms), 2),
        "wall_ms_per_frame_median": round(statistics.median(wall_ms), 2),
        "wall_ms_per_frame_p90": round(sorted(wall_ms)[int(0.9 * (len(wall_ms) - 1))], 2),
        "target_ms_per_frame": 100,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
