"""`bwdp <command>`: one console script; each command lives in its own module and is imported only when used.

A command module provides ``add_arguments(parser)`` and ``main(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from bwdp_core.errors import BwdpError

DEBUG_ENV = "BWDP_DEBUG"  # set to show the traceback of an unexpected error instead of its one-line summary

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("bwdp_core.commands.synth", "render a procedural street scene with ground truth (KITTI odometry layout)"),
    "prepare-kitti": ("bwdp_core.commands.prepare_kitti", "resize KITTI raw drives into a training folder"),
    "train": ("bwdp_core.commands.train", "train DispNet + PoseNet with the bidirectional weighted loss"),
    "eval-depth": ("bwdp_core.commands.eval_depth", "depth metrics (KITTI Eigen protocol or any images + GT folder)"),
    "eval-odom": ("bwdp_core.commands.eval_odom", "trajectory metrics: KITTI t_err/r_err, ATE and RPE (evo)"),
    "vo": ("bwdp_core.commands.vo", "offline visual odometry over an image sequence"),
    "export": ("bwdp_core.commands.export", "export both networks to TorchScript or ONNX with a parity check"),
    "make-bag": ("bwdp_core.commands.make_bag", "write a rosbag2 (Image + CameraInfo [+ GT odometry]) from images"),
    "replay": ("bwdp_core.commands.replay", "run the VO node's processing on every frame of a rosbag2, offline"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="bwdp")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module)
        if argv and argv[0] == name:  # import only the command that runs
            importlib.import_module(module).add_arguments(cmd)
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except BwdpError as err:
        print(f"bwdp {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `bwdp eval-odom ... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"bwdp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug or a library's own check: one line for the user, the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"bwdp {args.command}: error: unexpected {type(err).__name__}: {err} (set {DEBUG_ENV}=1 to see the "
              "traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
