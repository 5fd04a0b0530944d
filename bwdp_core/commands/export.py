"""`bwdp export`: both networks to TorchScript or ONNX, with a parity check (bwdp_core.eval.export does the work);
``--int8 --calibration SOURCE`` adds int8 ONNX files calibrated on frames of SOURCE.

SOURCE is what a training run reads: a training config YAML (its ``data.source``), a data-source YAML mapping
(``{type: ..., path: ...}``, see bwdp_core.data.build), or a path: a KITTI-layout root (``sequences/``, e.g. a `bwdp
synth` output), a rosbag (folder with metadata.yaml, .mcap or .db3), a video file, or an image folder (with cam.txt).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bwdp_core.data.build import build_sources
from bwdp_core.data.sources import FrameSource
from bwdp_core.errors import ConfigError
from bwdp_core.eval.export import export_models
from bwdp_core.train.config import read_yaml

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm")
BAG_EXTENSIONS = (".mcap", ".db3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="bwdp checkpoint (.pt)")
    parser.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    parser.add_argument("--out", default="export", help="output folder (default ./export)")
    parser.add_argument("--depth-output", choices=("disparity", "depth"), default="disparity",
                        help="what the exported depth network returns at full resolution")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed |exported - PyTorch| on the parity check (default 1e-4)")
    parser.add_argument("--int8", action="store_true",
                        help="also write int8 ONNX files (static QDQ quantisation, per-channel weights); needs "
                             "--format onnx and --calibration")
    parser.add_argument("--calibration", metavar="SOURCE",
                        help="frames for the int8 calibration: a training config, a data-source YAML, a KITTI-layout "
                             "root, a rosbag, a video or an image folder (use the training source)")
    parser.add_argument("--calibration-frames", type=int, default=32,
                        help="calibration frames drawn evenly from SOURCE (default 32)")


def calibration_sources(spec: str) -> list[FrameSource]:
    """The frame sources SOURCE names (see module docstring); ConfigError / DataError when it names none."""
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        cfg = read_yaml(path)
        data = cfg.get("data") if isinstance(cfg.get("data"), dict) else None
        return build_sources(data["source"] if data and "source" in data else cfg)
    if not path.exists():
        raise ConfigError(f"--calibration {spec}: no such file or folder")
    if path.is_dir() and (path / "sequences").is_dir():
        return build_sources({"type": "kitti_odom", "path": str(path)})
    if path.suffix in BAG_EXTENSIONS or (path.is_dir() and (path / "metadata.yaml").is_file()):
        return build_sources({"type": "rosbag", "path": str(path)})
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return build_sources({"type": "video", "path": str(path)})
    if path.is_dir():
        return build_sources({"type": "images", "path": str(path)})
    raise ConfigError(f"--calibration {spec}: not a config, KITTI-layout root, rosbag, video or image folder")


def main(args: argparse.Namespace) -> int:
    if args.int8 and not args.calibration:
        raise ConfigError("--int8 needs --calibration SOURCE (frames like the ones the networks will see)")
    if args.calibration and not args.int8:
        raise ConfigError("--calibration is only used with --int8")
    if args.calibration_frames < 1:
        raise ConfigError(f"--calibration-frames must be >= 1, got {args.calibration_frames}")
    sources = calibration_sources(args.calibration) if args.int8 else None
    report = export_models(args.checkpoint, args.out, args.format, args.depth_output, args.tolerance,
                           calibration=sources, calibration_frames=args.calibration_frames)
    (Path(args.out) / "export.json").write_text(json.dumps(report, indent=2))
    for name, path in report["files"].items():
        print(f"{name}: {path}  max abs diff vs PyTorch {report['max_abs_diff'][name]:.3e}")
    if report.get("int8"):
        dev = report["int8_deviation"]
        for name, path in report["int8_files"].items():
            print(f"{name} int8: {path}")
        print(f"int8 vs fp32 on {dev['frames']} other frames of the source: depth relative difference median "
              f"{dev['depth_rel_median']:.2e} (p95 {dev['depth_rel_p95']:.2e}), pose max abs difference "
              f"{dev['pose_translation_max_abs']:.2e} (translation) {dev['pose_rotation_max_abs_rad']:.2e} rad "
              "(rotation); no tolerance applies to int8 (bench/int8_accuracy.py measures its cost)")
    if not report["passed"]:
        print(f"bwdp export: parity check failed (tolerance {report['tolerance']:g})")
        return 1
    print(f"parity check passed (tolerance {report['tolerance']:g})")
    return 0
