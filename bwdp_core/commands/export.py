"""`bwdp export`: both networks to TorchScript or ONNX, with a parity check (bwdp_core.eval.export does the work).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bwdp_core.eval.export import export_models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="bwdp checkpoint (.pt)")
    parser.add_argument("--format", choices=("torchscript", "onnx"), required=True)
    parser.add_argument("--out", default="export", help="output folder (default ./export)")
    parser.add_argument("--depth-output", choices=("disparity", "depth"), default="disparity",
                        help="what the exported depth network returns at full resolution")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest allowed |exported - PyTorch| on the parity check (default 1e-4)")


def main(args: argparse.Namespace) -> int:
    report = export_models(args.checkpoint, args.out, args.format, args.depth_output, args.tolerance)
    (Path(args.out) / "export.json").write_text(json.dumps(report, indent=2))
    for name, path in report["files"].items():
        print(f"{name}: {path}  max abs diff vs PyTorch {report['max_abs_diff'][name]:.3e}")
    if not report["passed"]:
        print(f"bwdp export: parity check failed (tolerance {report['tolerance']:g})")
        return 1
    print(f"parity check passed (tolerance {report['tolerance']:g})")
    return 0
