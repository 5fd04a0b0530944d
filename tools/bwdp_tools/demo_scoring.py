"""Demo steps 4-5: score what the node published, draw the pictures, print the summary.

Odometry with ``bwdp eval-odom`` (sim(3)-aligned ATE, t_err) and depth with ``bwdp eval-depth`` (AbsRel), each against
a trivial baseline: a constant-velocity extrapolation of the first two ground-truth poses, and a constant (median)
depth map. The pictures come from ``bwdp_core.eval.plots`` (the same plots `bwdp eval-odom` / `eval-depth` draw).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bwdp_core.eval.depth_metrics import compute_depth_metrics
from bwdp_core.eval.odometry import align_and_associate
from bwdp_core.eval.plots import depth_strip, plot_trajectories_top_view
from bwdp_core.eval.trajectory_io import read_trajectory, write_trajectory
from bwdp_core.frames import R_BASE_OPTICAL, quaternion_to_matrix
from bwdp_tools.demo_node import sequence_source
from bwdp_tools.demo_training import DemoError, DemoSettings, bwdp_command, run_step


# ----------------------------------------------------------------------------------------------------------------------
# 4: scoring
# ----------------------------------------------------------------------------------------------------------------------
def relative_to_first(poses: np.ndarray) -> np.ndarray:
    """Express a camera-to-world trajectory in the first camera's frame (first pose = identity)."""
    return np.linalg.inv(poses[0])[None] @ poses


def constant_velocity_baseline(gt_poses: np.ndarray) -> np.ndarray:
    """Trivial odometry: repeat the motion between the first two ground-truth poses, T_i = T_0 (T_0^-1 T_1)^i."""
    step = np.linalg.inv(gt_poses[0]) @ gt_poses[1]
    out = [gt_poses[0]]
    for _ in range(1, len(gt_poses)):
        out.append(out[-1] @ step)
    return np.stack(out)


def run_eval_odom(pred: Path, gt: Path, out_dir: Path) -> dict:
    """`bwdp eval-odom --align sim3`; returns its JSON."""
    run_step(bwdp_command("eval-odom", "--pred", pred, "--gt", gt, "--align", "sim3", "--out", out_dir),
             "bwdp eval-odom", log=out_dir.with_suffix(".log"))
    return _read_metrics_json(out_dir)


def _read_metrics_json(out_dir: Path) -> dict:
    path = out_dir / "metrics.json"
    if not path.is_file():
        raise DemoError(f"{path}: the evaluator wrote no metrics")
    return json.loads(path.read_text())


@dataclass
class Recording:
    """What the node published for the held-out sequence, matched to the frames that were streamed into it."""

    frame_index: np.ndarray      # [M] held-out frame index of each odometry output
    poses: np.ndarray            # [M,4,4] camera (optical) pose in the odom frame, camera-to-world
    latency_s: np.ndarray        # [M] receive time of the odometry message - the input image's stamp
    receive_time_s: np.ndarray   # [M] wall time the odometry message arrived
    depth: dict                  # frame index -> [h,w] float32 metres, NaN invalid (the node's `depth` topic)
    frames_published: int        # images sent to the node
    tf_count: int                # odom->base_link transforms on /tf whose stamp equals an odometry stamp


def pose_matrix(xyz, quat_xyzw) -> np.ndarray:
    """Position + (x, y, z, w) quaternion -> 4x4."""
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(*np.asarray(quat_xyzw, dtype=np.float64))
    T[:3, 3] = xyz
    return T


def load_recording(record_dir: Path, published_frames: int) -> Recording:
    """The recorder's files -> odometry as camera poses matched to held-out frame indices, depth per frame index.

    The node publishes base_link in odom; the camera pose is T_odom_base @ T_base_camera with the mount it
    broadcast on /tf_static (REP 103's optical rotation when none was recorded)."""
    try:
        data = np.load(record_dir / "recording.npz")
        tf_info = json.loads((record_dir / "tf.json").read_text())
    except (OSError, ValueError) as err:
        raise DemoError(f"{record_dir}: the recorder left no readable recording ({err})") from None
    published = data["published_stamps_ns"]
    if len(published) != published_frames:
        raise DemoError(f"the recorder published {len(published)} frames, the sequence has {published_frames}")
    index_of = {int(stamp): i for i, stamp in enumerate(published)}
    T_base_camera = np.eye(4)
    T_base_camera[:3, :3] = R_BASE_OPTICAL
    for _parent, _child, *xyz_q in tf_info["tf_static"]:
        T_base_camera = pose_matrix(xyz_q[:3], xyz_q[3:])
    odom = data["odom"]
    frame_index, poses, latency, receive = [], [], [], []
    seen = set()
    for stamp, recv, row in zip(data["odom_stamps_ns"], data["odom_receive_ns"], odom):
        i = index_of.get(int(stamp))
        if i is None or i in seen:
            continue
        seen.add(i)
        frame_index.append(i)
        poses.append(pose_matrix(row[2:5], row[5:9]) @ T_base_camera)
        latency.append((int(recv) - int(stamp)) * 1e-9)
        receive.append(int(recv) * 1e-9)
    order = np.argsort(frame_index)
    odom_stamps = {int(s) for s in data["odom_stamps_ns"]}
    odom_frame, base_frame = (tf_info["odom_frames"] or [["odom", "base_link"]])[0]
    tf_count = sum(1 for stamp, parent, child in tf_info["tf"]
                   if int(stamp) in odom_stamps and parent == odom_frame and child == base_frame)
    depth = {}
    for stamp, dmap in zip(data["depth_stamps_ns"], data["depth"]):
        i = index_of.get(int(stamp))
        if i is not None:
            depth[i] = dmap
    return Recording(frame_index=np.asarray(frame_index, dtype=int)[order],
                     poses=np.asarray(poses).reshape(-1, 4, 4)[order],
                     latency_s=np.asarray(latency)[order], receive_time_s=np.asarray(receive)[order],
                     depth=depth, frames_published=len(published), tf_count=tf_count)


def score(record_dir: Path, heldout_root: Path, out: Path, settings: DemoSettings,
          checkpoint: Path) -> tuple[dict, dict]:
    """Metrics of the node's outputs and of both trivial baselines; returns (metrics, plot data)."""
    rec = load_recording(record_dir, settings.heldout_frames)
    if len(rec.frame_index) < 3:
        raise DemoError(f"the node published odometry for only {len(rec.frame_index)} of {rec.frames_published} "
                        f"frames (see {out / 'node' / 'node.log'})")
    eval_dir = out / "eval"
    shutil.rmtree(eval_dir, ignore_errors=True)
    gt_all = read_trajectory(heldout_root / "poses" / "00.txt", "kitti").poses
    idx = rec.frame_index
    gt = relative_to_first(gt_all[idx])
    pred = relative_to_first(rec.poses)
    const_vel = relative_to_first(constant_velocity_baseline(gt_all)[idx])
    write_trajectory(eval_dir / "gt.txt", gt, "kitti")
    write_trajectory(eval_dir / "node.txt", pred, "kitti")
    write_trajectory(eval_dir / "constant_velocity.txt", const_vel, "kitti")
    odom_node = run_eval_odom(eval_dir / "node.txt", eval_dir / "gt.txt", eval_dir / "odom_node")
    odom_base = run_eval_odom(eval_dir / "constant_velocity.txt", eval_dir / "gt.txt",
                              eval_dir / "odom_constant_velocity")

    depth = score_depth(rec, heldout_root, checkpoint, eval_dir)

    span = rec.receive_time_s[-1] - rec.receive_time_s[0]
    metrics = {
        "odometry": {
            "frames_evaluated": int(len(idx)),
            "ate_m": odom_node["ate_m"]["rmse"],
            "t_err_percent": odom_node["kitti"]["t_err_percent"],
            "r_err_deg_per_100m": odom_node["kitti"]["r_err_deg_per_100m"],
            "kitti_segment_lengths_m": odom_node["kitti"]["segment_lengths_m"],
            "baseline_constant_velocity_ate_m": odom_base["ate_m"]["rmse"],
            "baseline_constant_velocity_t_err_percent": odom_base["kitti"]["t_err_percent"],
            "baseline_constant_velocity_r_err_deg_per_100m": odom_base["kitti"]["r_err_deg_per_100m"],
        },
        "depth": depth,
        "node": {
            "frames_published": int(rec.frames_published),
            "frames_processed": int(len(idx)),
            "frames_dropped": int(rec.frames_published - len(idx)),
            "fps": float((len(idx) - 1) / span) if span > 0 else None,
            "latency_ms_p50": float(np.percentile(rec.latency_s, 50) * 1e3),
            "latency_ms_p95": float(np.percentile(rec.latency_s, 95) * 1e3),
            "tf_odom_base_link_messages": int(rec.tf_count),
            "input_rate_hz": settings.rate_hz,
        },
        "evaluator_output": {"odometry_node": str(eval_dir / "odom_node"),
                             "odometry_constant_velocity": str(eval_dir / "odom_constant_velocity"),
                             "depth_checkpoint": str(eval_dir / "depth_checkpoint"),
                             "depth_node_and_baseline": str(eval_dir / "depth_node_and_baseline.json")},
    }
    o, d = metrics["odometry"], metrics["depth"]
    metrics["beats_baselines"] = {
        "ate": bool(o["ate_m"] is not None and o["baseline_constant_velocity_ate_m"] is not None
                    and o["ate_m"] < o["baseline_constant_velocity_ate_m"]),
        "abs_rel": bool(d["abs_rel"] is not None and d["baseline_median_depth_abs_rel"] is not None
                        and d["abs_rel"] < d["baseline_median_depth_abs_rel"]),
    }
    plots = {"gt": gt, "pred": pred, "const_vel": const_vel,
             "depth_strip": depth_strip_data(rec, heldout_root, sorted(rec.depth))}
    return metrics, plots


def score_depth(rec: Recording, heldout_root: Path, checkpoint: Path, eval_dir: Path) -> dict:
    """Depth AbsRel (per-image median scaling; no Garg crop: these are not KITTI frames):

    - ``abs_rel``: `bwdp eval-depth` of the checkpoint on every held-out frame (the network the node runs);
    - ``node_abs_rel``: the depth images the node actually published over DDS, same protocol;
    - ``baseline_median_depth_abs_rel``: a constant depth map on every held-out frame (with median scaling every
      constant is the ground truth's median)."""
    out_dir = eval_dir / "depth_checkpoint"
    run_step(bwdp_command("eval-depth", "--checkpoint", checkpoint, "--data", heldout_root, "--device", "cpu",
                          "--out", out_dir), "bwdp eval-depth", log=out_dir.with_suffix(".log"))
    checkpoint_metrics = _read_metrics_json(out_dir)["metrics"]

    if not rec.depth:
        raise DemoError("the node published no depth image")
    source = sequence_source(heldout_root)
    node_gts, node_preds = [], []
    for i in sorted(rec.depth):
        gt = source.load_depth(i)
        node_gts.append(gt)
        node_preds.append(resize_depth(rec.depth[i], gt.shape))
    node = compute_depth_metrics(node_gts, node_preds, median_scaling=True, garg_crop=False)
    gts = [source.load_depth(i) for i in range(len(source))]
    consts = [np.full_like(gt, np.median(gt[gt > 0]) if (gt > 0).any() else 1.0) for gt in gts]
    const = compute_depth_metrics(gts, consts, median_scaling=True, garg_crop=False)
    (eval_dir / "depth_node_and_baseline.json").write_text(
        json.dumps({"node_published_depth": node, "constant_median_depth": const}, indent=2))
    return {"frames_evaluated": const["num_images"], "abs_rel": checkpoint_metrics["abs_rel"],
            "delta1": checkpoint_metrics["delta1"], "node_frames_evaluated": node["num_images"],
            "node_abs_rel": node["metrics"]["abs_rel"],
            "baseline_median_depth_abs_rel": const["metrics"]["abs_rel"]}


def resize_depth(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Node depth (NaN = invalid) at the ground truth's size; invalid pixels get the image's median (so they count as
    errors instead of poisoning the mean)."""
    depth = np.asarray(depth, dtype=np.float32)
    finite = np.isfinite(depth) & (depth > 0)
    fill = float(np.median(depth[finite])) if finite.any() else 1.0
    depth = np.where(finite, depth, fill).astype(np.float32)
    if depth.shape != tuple(shape):
        depth = cv2.resize(depth, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return depth


def depth_strip_data(rec: Recording, heldout_root: Path, frames: list[int], count: int = 4):
    """(images, median-scaled predicted depths, GT depths, labels) for `count` frames spread over the sequence."""
    chosen = [frames[int(round(k))] for k in np.linspace(0, len(frames) - 1, min(count, len(frames)))]
    source = sequence_source(heldout_root)
    images, preds, gts, labels = [], [], [], []
    for i in dict.fromkeys(chosen):
        gt = source.load_depth(i)
        pred = resize_depth(rec.depth[i], gt.shape)
        valid = gt > 0
        if valid.any():
            pred = pred * float(np.median(gt[valid]) / np.median(pred[valid]))
        images.append(source.load_image(i))
        preds.append(pred)
        gts.append(gt)
        labels.append(f"frame {i}")
    return images, preds, gts, labels


# ----------------------------------------------------------------------------------------------------------------------
# 5: pictures
# ----------------------------------------------------------------------------------------------------------------------
def write_pictures(out: Path, plots: dict, title: str) -> None:
    """out/trajectory.png: top view (x right, z forward of the first camera's optical frame) of the ground truth, the
    node and the constant-velocity baseline, both after the same sim(3) alignment `bwdp eval-odom` scores (evo
    Umeyama, with its straight-path fallback);
    out/depth.png: input | predicted depth (median-scaled) | ground-truth depth, one row per chosen frame."""
    gt = plots["gt"]

    def aligned(traj: np.ndarray) -> np.ndarray:
        return align_and_associate(traj, gt, "sim3")[1]

    plot_trajectories_top_view(gt, aligned(plots["pred"]), out / "trajectory.png", title=title,
                               pred_label="bwdp node (sim(3)-aligned)",
                               others=[(aligned(plots["const_vel"]), "constant velocity (sim(3)-aligned)")],
                               axes=(0, 2))
    images, preds, gts, labels = plots["depth_strip"]
    depth_strip(list(zip(images, preds, gts)), out / "depth.png", width=384, labels=labels)


def print_summary(metrics: dict, out: Path) -> None:
    o, d, n = metrics["odometry"], metrics["depth"], metrics["node"]
    beats = metrics["beats_baselines"]

    def fmt(v, spec=".3f"):
        return "n/a" if v is None else format(v, spec)

    verdict = {True: "beats", False: "does NOT beat"}
    print()
    print("=" * 78)
    print(f"bwdp demo: held-out street, {n['frames_processed']}/{n['frames_published']} frames processed by the node "
          f"at {fmt(n['fps'], '.1f')} FPS (latency p50 {n['latency_ms_p50']:.0f} ms, p95 {n['latency_ms_p95']:.0f} ms)")
    print(f"  odometry  ATE {fmt(o['ate_m'])} m (sim3-aligned), t_err {fmt(o['t_err_percent'], '.2f')} % - "
          f"{verdict[beats['ate']]} constant velocity (ATE {fmt(o['baseline_constant_velocity_ate_m'])} m)")
    print(f"  depth     AbsRel {fmt(d['abs_rel'])} (the node's published depth: {fmt(d['node_abs_rel'])}) - "
          f"{verdict[beats['abs_rel']]} a constant median depth map (AbsRel {fmt(d['baseline_median_depth_abs_rel'])})")
    t = metrics["timings"]
    print(f"  wall time {t['total_s']:.0f} s (" + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in t.items()
                                                     if k != "total_s") + ")")
    for name in ("trajectory.png", "depth.png", "metrics.json"):
        print(f"  {out / name}")
    print("=" * 78)
