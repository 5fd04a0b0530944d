"""`make demo`: the whole system on one machine, end to end, in minutes on a CPU.

    python -m bwdp_tools.demo [--toy] [--out demo_out] [--cache demo_cache]

1. renders a training street and a different, held-out street with ``bwdp synth`` (ground-truth depth and poses);
2. trains DispNet + PoseNet on the training street with the full bidirectional weighted loss (``bwdp train``); the
   checkpoint is cached under ``demo_cache/`` keyed by a hash of the configuration, so a second run skips this step;
3. starts the real ROS 2 node (``bwdp_ros.vo_node``) as its own process and streams the held-out street into it as
   sensor_msgs/Image + CameraInfo over DDS (localhost only) at a steady rate, recording depth, odometry and TF;
4. scores what the node published with ``bwdp eval-odom`` (sim(3)-aligned ATE, t_err) and ``bwdp eval-depth`` (AbsRel),
   against two trivial baselines: a constant-velocity extrapolation of the first two ground-truth poses, and a constant
   (median) depth map;
5. writes ``demo_out/`` (trajectory.png, depth.png, metrics.json) and prints a short summary.

The steps live in ``demo_training`` (1-2: settings, rendering, cached training), ``demo_node`` (3) and
``demo_scoring`` (4-5); this module runs them in order. It never imports rclpy: the node and the publisher/recorder
run as child processes (``bwdp_ros.vo_node`` and ``bwdp_tools.recorder``) on the one process manager
(``bwdp_tools.processes``), each in its own process group, stopped in ``finally`` and on SIGINT, SIGTERM and SIGHUP,
so Ctrl-C never leaves a node behind.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bwdp_core.errors import BwdpError, ConfigError
from bwdp_tools.demo_node import stream_through_node
from bwdp_tools.demo_scoring import print_summary, score, write_pictures
from bwdp_tools.demo_training import DEMO_CONFIG, DemoSettings, render_sequence, train_or_reuse
from bwdp_tools.processes import stopping_children_on_signals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toy", action="store_true", help="tiny sizes and budget (smoke test; proves plumbing only)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="results folder (default: demo_out)")
    parser.add_argument("--cache", type=Path, default=Path("demo_cache"),
                        help="rendered data and trained checkpoints, reused by later runs (default: demo_cache)")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG,
                        help="demo settings (default: bwdp_tools/demo.yaml)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="training budget instead of the profile's (a different budget is a different cache key)")


def main(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    settings = DemoSettings.load("toy" if args.toy else "demo", args.config)
    if args.iterations is not None:
        if args.iterations < 1:
            raise ConfigError(f"--iterations must be >= 1, got {args.iterations}")
        settings = DemoSettings(**{**settings.__dict__, "iterations": args.iterations})
    out: Path = args.out.resolve()
    cache: Path = args.cache.resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.monotonic()
    train_root = render_sequence(cache, "train", settings.train_frames, settings.height, settings.width,
                                 settings.train_seed)
    heldout_root = render_sequence(cache, "heldout", settings.heldout_frames, settings.height, settings.width,
                                   settings.heldout_seed)
    timings["render_s"] = time.monotonic() - t

    t = time.monotonic()
    checkpoint, trained = train_or_reuse(cache, settings, train_root)
    timings["train_s" if trained else "train_cached_s"] = time.monotonic() - t

    t = time.monotonic()
    stream_time = settings.heldout_frames / settings.rate_hz
    record_dir = stream_through_node(checkpoint, heldout_root, out / "node", settings.rate_hz,
                                     timeout_s=stream_time + 120.0)
    timings["node_s"] = time.monotonic() - t

    t = time.monotonic()
    metrics, plots = score(record_dir, heldout_root, out, settings, checkpoint)
    odo = metrics["odometry"]
    write_pictures(out, plots, f"held-out street (seed {settings.heldout_seed}), {odo['frames_evaluated']} frames:\n"
                               f"ATE {odo['ate_m']:.2f} m (node) vs {odo['baseline_constant_velocity_ate_m']:.2f} m "
                               "(constant velocity)")
    timings["evaluate_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - t_start
    metrics["timings"] = {k: round(v, 1) for k, v in timings.items()}
    metrics["checkpoint"] = str(checkpoint)
    metrics["settings"] = {k: getattr(settings, k) for k in settings.__dataclass_fields__}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    print_summary(metrics, out)
    return 0


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bwdp_tools.demo", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    with stopping_children_on_signals():  # SIGINT/SIGTERM/SIGHUP -> KeyboardInterrupt; every child stopped at the end
        try:
            return main(args)
        except BwdpError as err:
            print(f"demo: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ndemo: interrupted; stopping the node and every child process", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(cli())
