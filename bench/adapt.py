"""Benchmark: online adaptation (issue 9) -- a synth-trained model replayed over the KITTI 07 frames with and without
`bwdp replay --adapt`, then a second pass with the saved adapted model.

Deterministic: the adaptation steps run inline after every frame (--adapt-steps-per-frame), so the same command gives
the same numbers. Reports ATE after sim(3) alignment (target: with adaptation <= 0.5x without), the training loss's
photometric term over the second half of the frames (snippets i-1, i, i+1) for the start and the adapted weights, and
frames/s of each replay. JSON in bench/results/adapt.json with the load and the machine.

    bwdp make-bag --kitti-seq /work/shared/data/kitti_odom_07_160/sequences/07 --camera 0 --out k07.bag
    python bench/adapt.py --bag k07.bag --checkpoint synth.pt --work /tmp/adapt_bench [--steps-per-frame 1] \
        [--network-size 64 224]

--network-size runs the start model at another input size (the networks are fully convolutional, as `model.init`
uses them): a copy of the checkpoint that declares that size, e.g. a 32x96 synth model at KITTI's 64x224.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy / torch load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bwdp_core.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from bwdp_core.commands import cli  # noqa: E402
from bwdp_core.data.bag_io import image_from_msg, iter_messages  # noqa: E402
from bwdp_core.data.kitti_odometry import KittiOdometrySource  # noqa: E402
from bwdp_core.inference import settings  # noqa: E402
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, scale_intrinsics_to  # noqa: E402
from bwdp_core.train.adapt import AdaptConfig, Adapter  # noqa: E402

IMAGE_TOPIC = "/camera/image_raw"


def replay(bag: Path, checkpoint: Path, out: Path, extra: list[str]) -> dict:
    start = time.perf_counter()
    code = cli.main(["replay", str(bag), "--image-topic", IMAGE_TOPIC, "--checkpoint", str(checkpoint),
                     "--out", str(out), "--num-threads", "1", "--device", "cpu", "--colormaps", "2", *extra])
    if code != 0:
        raise SystemExit(f"bwdp replay failed ({code})")
    seconds = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"ate_sim3_m": metrics["ate_m"]["rmse"], "t_err_percent": metrics["kitti"].get("t_err_percent"),
            "frames": summary["frames_processed"], "tracking_lost": summary["tracking_lost"],
            "wall_s": seconds, "frames_per_s": summary["frames_processed"] / seconds,
            "inference_ms_per_frame": 1e3 * summary["inference_s_per_frame"],
            "adaptation": summary.get("adaptation")}


def resized_checkpoint(checkpoint: Path, height: int, width: int, out: Path) -> Path:
    """A copy of ``checkpoint`` that declares the network input size height x width (same weights)."""
    ckpt = load_checkpoint(checkpoint)
    ckpt["model"].update(height=int(height), width=int(width))
    data = (ckpt.get("config") or {}).get("data")
    if isinstance(data, dict):
        data.update(height=int(height), width=int(width))
    save_checkpoint(out, ckpt)
    return out


def photometric_second_half(checkpoint: Path, images: list[np.ndarray], K: np.ndarray) -> dict:
    """Mean loss terms over snippets (i-1, i, i+1) of the second half of ``images``, weights of ``checkpoint``."""
    estimator = DepthPoseEstimator(checkpoint, device="cpu", backend="eager", warmup_iterations=0, num_threads=1)
    judge = Adapter(checkpoint, estimator, AdaptConfig())
    judge.model.eval()
    tensors = [estimator.to_tensor(img)[0] for img in images]
    K_net = torch.from_numpy(scale_intrinsics_to(K, images[0].shape[:2], (estimator.height, estimator.width))).float()
    centres = list(range(len(images) // 2, len(images) - 1))
    sums: dict[str, float] = {}
    for start in range(0, len(centres), 8):
        batch_centres = centres[start:start + 8]
        batch = {"tgt_img": torch.stack([tensors[i] for i in batch_centres]),
                 "ref_imgs": torch.stack([torch.stack([tensors[i - 1], tensors[i + 1]]) for i in batch_centres]),
                 "intrinsics": K_net.expand(len(batch_centres), 3, 3).clone()}
        for name, value in judge.evaluate(batch).items():
            sums[name] = sums.get(name, 0.0) + value * len(batch_centres)
    return {name: value / len(centres) for name, value in sums.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", type=Path, required=True)
    parser.add_argument("--kitti-root", default="/work/shared/data/kitti_odom_07_160")
    parser.add_argument("--sequence", default="07")
    parser.add_argument("--checkpoint", type=Path, required=True, help="the synth-trained start model")
    parser.add_argument("--model-note", default="")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--steps-per-frame", type=int, default=1)
    parser.add_argument("--lr", type=float, default=settings.default("adapt_lr"), help="default: the node's adapt_lr")
    parser.add_argument("--steps-per-swap", type=int, default=10)
    parser.add_argument("--network-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="run the start model at this input size (default: its training size)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "adapt.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.network_size:
        args.checkpoint = resized_checkpoint(args.checkpoint, *args.network_size,
                                             args.work / f"start_{args.network_size[0]}x{args.network_size[1]}.pt")
    adapted = args.work / "adapted.pt"
    runs = {
        "without": replay(args.bag, args.checkpoint, args.work / "without", []),
        "with_adapt": replay(args.bag, args.checkpoint, args.work / "with_adapt",
                             ["--adapt", "--adapt-steps-per-frame", str(args.steps_per_frame), "--adapt-lr",
                              str(args.lr), "--adapt-steps-per-swap", str(args.steps_per_swap),
                              "--save-model", str(adapted)]),
    }
    runs["second_pass_saved_model"] = replay(args.bag, adapted, args.work / "second_pass", [])
    source = KittiOdometrySource(args.kitti_root, args.sequence, camera=0)
    images = [image_from_msg(msg) for _, msg in iter_messages(args.bag, IMAGE_TOPIC)]
    loss = {"start_model": photometric_second_half(args.checkpoint, images, source.intrinsics),
            "adapted_model": photometric_second_half(adapted, images, source.intrinsics)}
    result = {
        "benchmark": "adapt",
        "ate_ratio_with_over_without": runs["with_adapt"]["ate_sim3_m"] / runs["without"]["ate_sim3_m"],
        "target_ate_ratio": 0.5,
        "runs": runs,
        "loss_second_half": loss,
        "start_checkpoint": str(args.checkpoint),
        "model": args.model_note,
        "settings": {"steps_per_frame": args.steps_per_frame, "lr": args.lr, "steps_per_swap": args.steps_per_swap,
                     "network_size": args.network_size},
        "command": "python " + " ".join(sys.argv),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
