"""Benchmark: learn depth and motion from ONE real recording with the one-sequence recipe, and score it.

    python bench/real_sequence.py ../shared/data/kitti_odom_07_160 --sequence 07 --camera 0 \\
        --depth-gt ../shared/data/kitti_depth_demo [--config sequence] [--set train.iterations=400 ...] [--name 07]

Steps (each a `bwdp` command, as a user would run them):
1. `bwdp train --config sequence` on SOURCE (the recipe bwdp_core/config/sequence.yaml, plus any --set);
2. `bwdp vo` over the whole sequence with the trained checkpoint;
3. `bwdp eval-odom` against the GT poses (when SOURCE has them): ATE after sim(3) Umeyama, KITTI t_err / r_err;
4. the references from the same run: classical OpenCV VO (bench/classical_vo.py) and constant velocity;
5. the yaw accumulated through each GT turn, by every trajectory, and its ratio to the GT;
6. depth structure on three frames of SOURCE (std/mean of depth, mean depth of the top vs the bottom quarter);
7. `bwdp eval-depth` on a folder of real frames with GT depth (--depth-gt; converted to grey when --grey-eval,
   the default, so a grey-trained model sees what it was trained on): median-scaled AbsRel, delta < 1.25.
Writes bench/results/real_sequence_<name>.json (settings, wall times, load average, machine) and the trajectory plot
beside it. SOURCE: a KITTI odometry root (sequences/NN/image_C, calib.txt, poses/NN.txt) or an image folder with
cam.txt (then --gt FILE gives the poses, if any).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per process on the shared CPU, before torch loads

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from classical_vo import classical_vo, constant_velocity, yaw_through_turns  # noqa: E402

from bwdp_core.checkpoint import load_models  # noqa: E402
from bwdp_core.data.build import build_sources  # noqa: E402
from bwdp_core.data.sources import list_images, read_image_file, read_poses_file  # noqa: E402
from bwdp_core.eval.odometry import align_and_associate, evaluate_odometry  # noqa: E402
from bwdp_core.eval.plots import depth_strip, plot_trajectories_top_view  # noqa: E402
from bwdp_core.eval.trajectory_io import read_trajectory  # noqa: E402
from bwdp_core.inference.preprocess import predict_depth  # noqa: E402

DEPTH_FRAMES = (0.0625, 0.5, 0.9375)  # where in the sequence the depth structure is measured (10/80/150 of 160)


CPU_SECONDS: dict[str, float] = {}  # CPU time (user + system) of the last run of each bwdp command


def bwdp(*args: str, log: Path | None = None) -> float:
    """Run `bwdp ARGS` (this checkout's package) and return its wall time (its CPU time goes to CPU_SECONDS[command]);
    RuntimeError with the tail of its output when it fails."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH.parent), os.environ.get("PYTHONPATH", "")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bwdp_core.commands.cli", *args], env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_SECONDS[args[0]] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if log is not None:
        log.write_text(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"bwdp {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return time.perf_counter() - start


def source_config(source: Path, sequence: str, camera: int) -> dict:
    if (source / "sequences").is_dir():
        return {"type": "kitti_odom", "path": str(source), "sequences": [sequence], "camera": camera}
    return {"type": "images", "path": str(source)}


def depth_structure(disp_net, images: list[np.ndarray], height: int, width: int,
                    strip: Path | None = None, labels: list[str] | None = None) -> list[dict]:
    """Per image: std/mean of predicted depth and the mean depth of the top and bottom quarter of the rows (a
    collapsed model gives std/mean ~ 0; a sane street model has far (top) > near (bottom)). ``strip``: also write the
    input | predicted depth picture there."""
    rows, pictures = [], []
    for image in images:
        depth = predict_depth(disp_net, image, height, width, out_size=(height, width))
        pictures.append((image, cv2.resize(depth, image.shape[1::-1], interpolation=cv2.INTER_LINEAR), None))
        quarter = max(1, height // 4)
        rows.append({"std_over_mean": round(float(depth.std() / depth.mean()), 4),
                     "top_quarter_mean": round(float(depth[:quarter].mean()), 4),
                     "bottom_quarter_mean": round(float(depth[-quarter:].mean()), 4),
                     "top_over_bottom": round(float(depth[:quarter].mean() / depth[-quarter:].mean()), 3)})
    if strip is not None:
        depth_strip(pictures, strip, labels=labels)
    return rows


def grey_copy(images_dir: Path, out_dir: Path) -> Path:
    """The images of ``images_dir`` converted to grey (one channel PNG) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in list_images(images_dir):
        rgb = read_image_file(path)
        cv2.imwrite(str(out_dir / f"{path.stem}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    return out_dir


def lateral_drift(poses: np.ndarray, windows: list[tuple[int, int]]) -> list[float]:
    """Per turn window: mean |x| / |z| of the frame-to-frame translation (sideways vs forward motion) - a PoseNet that
    explains a turn by sliding sideways instead of rotating shows a large value here."""
    out = []
    for a, b in windows:
        steps = [np.linalg.inv(poses[i - 1]) @ poses[i] for i in range(a + 1, b + 1)]
        lateral = np.mean([abs(s[0, 3]) for s in steps])
        forward = np.mean([abs(s[2, 3]) for s in steps])
        out.append(round(float(lateral / max(forward, 1e-12)), 3))
    return out


def odometry_summary(metrics: dict) -> dict:
    k = metrics["kitti"]
    return {"ate_sim3_m": round(metrics["ate_m"]["rmse"], 3),
            "t_err_percent": None if k["t_err_percent"] is None else round(k["t_err_percent"], 2),
            "r_err_deg_per_100m": None if k["r_err_deg_per_100m"] is None else round(k["r_err_deg_per_100m"], 2),
            "rpe_rot_deg_rmse": round(metrics["rpe_rot_deg"]["rmse"], 3),
            "alignment_scale": round(metrics["alignment"]["scale"], 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="KITTI odometry root or image folder (with cam.txt)")
    parser.add_argument("--sequence", default="07", help="KITTI sequence name (default 07)")
    parser.add_argument("--camera", type=int, default=0, help="KITTI camera (0 = left grey, 2 = left colour)")
    parser.add_argument("--gt", type=Path, default=None, help="GT poses (KITTI format; default SOURCE/poses/SEQ.txt)")
    parser.add_argument("--config", default="sequence", help="training config: a bundled name or a YAML file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `bwdp train --set` overrides (repeatable)")
    parser.add_argument("--depth-gt", type=Path, default=None,
                        help="folder with rgb/ and depth/ (e.g. ../shared/data/kitti_depth_demo) for AbsRel")
    parser.add_argument("--colour-eval", action="store_true", help="evaluate --depth-gt images in colour, not grey")
    parser.add_argument("--no-classical", action="store_true", help="skip the OpenCV reference VO")
    parser.add_argument("--name", default=None, help="result name (default: the sequence)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default /tmp/bwdp_real_<name>)")
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="folder for the JSON and plot")
    parser.add_argument("--note", default="", help="free text stored in the JSON (what this run tried)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="score this checkpoint of an earlier run (its folder's config.yaml) instead of training")
    args = parser.parse_args(argv)

    name = args.name or args.sequence
    work = args.work or Path(f"/tmp/bwdp_real_{name}")
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    source = args.source.resolve()
    src_cfg = source_config(source, args.sequence, args.camera)
    result: dict = {"benchmark": "real_sequence", "name": name, "source": str(source), "note": args.note,
                    "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "python": platform.python_version(), "torch": torch.__version__},
                    "loadavg_before": [round(x, 2) for x in load_before]}

    # 1. train with the recipe (or score the run that wrote --checkpoint)
    if args.checkpoint is not None:
        checkpoint = args.checkpoint.resolve()
        if not checkpoint.is_file():
            raise SystemExit(f"--checkpoint {checkpoint}: no such file")
        run_dir = checkpoint.parent.parent  # RUN/checkpoints/X.pt, as bwdp train writes it (else: the file's config)
        result["scored_checkpoint"] = str(checkpoint)
    else:
        run_dir = work / "train"
        train_args = ["train", "--config", args.config, "--set", f"data.source={json.dumps(src_cfg)}", "--out",
                      str(run_dir), "--no-progress"]
        for item in args.overrides:
            train_args += ["--set", item]
        result["train_wall_s"] = round(bwdp(*train_args, log=work / "train.log"), 1)
        # CPU seconds do not grow with the load the way wall time does: train_cpu_s / 2 is what 2 idle cores would
        # need at best (one process, `train.threads` threads)
        result["train_cpu_s"] = round(CPU_SECONDS["train"], 1)
        result["loadavg_after_train"] = [round(x, 2) for x in os.getloadavg()]
        checkpoint = run_dir / "checkpoints" / "last.pt"
    disp_net, pose_net, meta = load_models(checkpoint)
    import yaml  # the resolved config the run wrote (yaml comes with bwdp_core)
    config_file, metrics_file = run_dir / "config.yaml", run_dir / "metrics.jsonl"
    if config_file.is_file():
        cfg = yaml.safe_load(config_file.read_text())
    else:  # a checkpoint moved out of its run folder: the config it was trained with is inside it
        cfg = torch.load(checkpoint, map_location="cpu", weights_only=False).get("config")
        if not isinstance(cfg, dict):
            raise SystemExit(f"{checkpoint}: no {config_file} beside it and no config inside it")
    result["settings"] = {"config": args.config, "overrides": args.overrides, "data": cfg["data"],
                          "train": cfg["train"], "loss": cfg["loss"], "model": cfg["model"]}
    metrics_lines = metrics_file.read_text().splitlines() if metrics_file.is_file() else []
    if metrics_lines:
        result["last_train_log"] = json.loads(metrics_lines[-1])

    # 2. + 3. odometry with bwdp vo / eval-odom
    pred_file = work / "pred.txt"
    if src_cfg["type"] == "kitti_odom":
        vo_args = ["--kitti-seq", str(source / "sequences" / args.sequence), "--camera", str(args.camera)]
    else:
        vo_args = ["--images", str(source)]
    result["vo_wall_s"] = round(bwdp("vo", "--checkpoint", str(checkpoint), *vo_args, "--out", str(pred_file),
                                     log=work / "vo.log"), 1)
    gt_file = args.gt or (source / "poses" / f"{args.sequence}.txt")
    sources = build_sources(src_cfg)
    frames = sources[0]
    if gt_file.is_file():
        bwdp("eval-odom", "--pred", str(pred_file), "--gt", str(gt_file), "--out", str(work / "eval_odom"),
             log=work / "eval_odom.log")
        learned = json.loads((work / "eval_odom" / "metrics.json").read_text())
        gt = read_poses_file(gt_file)
        pred = read_trajectory(pred_file).poses
        trajectories = {"learned": pred, "constant_velocity": constant_velocity(gt)}
        odometry = {"learned": odometry_summary(learned)}
        if not args.no_classical:
            start = time.perf_counter()
            trajectories["classical"] = classical_vo(
                lambda i: cv2.cvtColor(frames.load_image(i), cv2.COLOR_RGB2GRAY), len(frames), frames.intrinsics)
            result["classical_wall_s"] = round(time.perf_counter() - start, 1)
        for key in ("classical", "constant_velocity"):
            if key in trajectories:
                odometry[key] = odometry_summary(evaluate_odometry(trajectories[key], gt))
        turns = yaw_through_turns(gt, trajectories)
        windows = [tuple(t["frames"]) for t in turns]
        for key, poses in trajectories.items():
            odometry[key]["lateral_over_forward_in_turns"] = lateral_drift(poses, windows)
        odometry["gt_lateral_over_forward_in_turns"] = lateral_drift(gt, windows)
        result["odometry"] = odometry
        result["yaw_through_turns"] = turns
        aligned = {key: align_and_associate(poses, gt)[1] for key, poses in trajectories.items()}
        plot = plot_trajectories_top_view(
            gt, aligned["learned"], args.results / f"real_sequence_{name}.png",
            title=f"{name}: learned ATE {odometry['learned']['ate_sim3_m']:.2f} m (sim3)",
            pred_label="bwdp (sim3 aligned)",
            others=[(aligned[k], f"{k.replace('_', ' ')} ({odometry[k]['ate_sim3_m']:.2f} m)")
                    for k in ("classical", "constant_velocity") if k in aligned])
        result["plot"] = str(plot.relative_to(BENCH.parent)) if plot.is_relative_to(BENCH.parent) else str(plot)

    # 6. depth structure on the training sequence
    picks = sorted({min(len(frames) - 1, int(round(f * len(frames)))) for f in DEPTH_FRAMES})
    strip = args.results / f"real_sequence_{name}_depth.png"
    result["depth_structure"] = {"frames": picks, "per_frame": depth_structure(
        disp_net, [frames.load_image(i) for i in picks], int(meta["height"]), int(meta["width"]), strip,
        [f"frame {i}" for i in picks])}

    # 7. depth metrics on real frames with GT
    if args.depth_gt is not None:
        images = args.depth_gt / "rgb"
        if not args.colour_eval:
            images = grey_copy(images, work / "depth_gt_grey")
        bwdp("eval-depth", "--checkpoint", str(checkpoint), "--images", str(images), "--depth",
             str(args.depth_gt / "depth"), "--out", str(work / "eval_depth"), log=work / "eval_depth.log")
        depth = json.loads((work / "eval_depth" / "metrics.json").read_text())
        result["depth_gt"] = {"folder": str(args.depth_gt), "grey": not args.colour_eval,
                              **{k: round(v, 4) for k, v in depth["metrics"].items()}}

    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"real_sequence_{name}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result.get(k) for k in ("odometry", "yaw_through_turns", "depth_structure", "depth_gt",
                                                 "train_wall_s")}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
