"""`bwdp replay BAG --image-topic T --checkpoint CKPT --out DIR`: the VO node's processing on every frame of a bag.

Reads the rosbag2 (MCAP or sqlite3) offline with `rosbags` and runs the node's processing path on every image -- no
drops, no DDS: decode (``bwdp_core.data.image_msgs``), pick the intrinsics with the node's rules
(``bwdp_core.inference.intrinsics``), then :class:`bwdp_core.inference.vo_pipeline.VisualOdometry` with the node's
default settings (``bwdp_core.inference.settings``) -- and writes to DIR:

  trajectory.tum   camera poses (optical axes, first camera = identity), keyed by the image stamps (seconds)
  odom.tum         base_link in odom, as the node publishes it (camera mount: the node's default, optical rotation)
  depth_NNNNNN.png a few frames: input | depth colormap (inverse depth, magma)
  summary.json     frames, skipped frames (with reasons), tracking lost, inference time
  with ground truth (--gt FILE in KITTI/TUM, or an Odometry topic in the bag, --gt-topic or found automatically):
  metrics.json + trajectory.png   `bwdp eval-odom` metrics (sim3 alignment) and a top-view plot; the printed
                                  alignment scale x --metric-scale is the value to use for the node's `metric_scale`.

Metric scale: --camera-height H (m) measures the scale from the road ahead (its homography between consecutive
frames, where the depth map shows ground), as the node's camera_height does (summary.json: final_scale,
scale_spread, frames_since_ground).
Online adaptation: --adapt runs the node's adaptation worker (bwdp_core.train.adapt) on the replayed stream, in the
background as on the robot, or --adapt-steps-per-frame N steps inline after each frame (deterministic);
--save-model FILE keeps the adapted weights as a normal checkpoint.

Intrinsics: the CameraInfo with the image's stamp (else the latest before it) on --camera-info-topic (default: the
bag's only CameraInfo topic), or --intrinsics fx fy cx cy (the node's fx, fy, cx, cy parameters); the node's K rule and
size checks apply (a frame whose size disagrees is skipped, as the node skips it).
"""
from __future__ import annotations

import argparse
import bisect
import json
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from bwdp_core.data.bag_io import (
    CAMERA_INFO_TYPE,
    IMAGE_TYPES,
    ODOMETRY_TYPE,
    image_from_msg,
    iter_messages,
    list_topics,
    open_reader,
    pose_from_odometry,
    stamp_ns_of,
)
from bwdp_core.device import DEVICES
from bwdp_core.errors import ConfigError, DataError
from bwdp_core.eval.odometry import align_and_associate, evaluate_odometry, format_summary
from bwdp_core.eval.plots import colorize_inverse_depth, plot_trajectories_top_view
from bwdp_core.eval.trajectory_io import Trajectory, read_trajectory, write_trajectory
from bwdp_core.inference import settings
from bwdp_core.inference.backends import BACKENDS
from bwdp_core.inference.intrinsics import (
    CameraInfoIntrinsics,
    IntrinsicsPicker,
    camera_info_intrinsics,
    parameter_intrinsics,
)
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig
from bwdp_core.train.adapt import AdaptConfig, Adapter

ADAPT_OPTIONS = ("adapt_buffer_size", "adapt_steps_per_swap", "adapt_lr", "adapt_share", "adapt_threads",
                 "adapt_min_parallax")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", help="rosbag2 folder (or .mcap / .db3 file)")
    parser.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--camera-info-topic", default=None,
                        help="CameraInfo topic (default: the bag's only CameraInfo topic)")
    parser.add_argument("--intrinsics", nargs=4, type=float, metavar=("FX", "FY", "CX", "CY"),
                        help="intrinsics at the image size, instead of CameraInfo")
    parser.add_argument("--checkpoint", required=True, help="bwdp checkpoint (.pt)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--gt", default=None, help="ground-truth trajectory file (KITTI or TUM)")
    parser.add_argument("--gt-topic", default=None,
                        help="nav_msgs/Odometry ground-truth topic in the bag (default: the bag's only Odometry topic)")
    parser.add_argument("--device", default=settings.default("device"), choices=DEVICES,
                        help=settings.SETTING_BY_NAME["device"].description)
    parser.add_argument("--num-threads", type=int, default=settings.default("num_threads"),
                        help=settings.SETTING_BY_NAME["num_threads"].description)
    parser.add_argument("--backend", default=settings.default("inference_backend"), choices=BACKENDS,
                        help=settings.SETTING_BY_NAME["inference_backend"].description)
    parser.add_argument("--metric-scale", type=float, default=settings.default("metric_scale"),
                        help="the node's metric_scale")
    parser.add_argument("--camera-height", type=float, default=settings.default("camera_height"),
                        help=settings.SETTING_BY_NAME["camera_height"].description)
    parser.add_argument("--ground-max-tilt", type=float, default=settings.default("ground_max_tilt"),
                        help=settings.SETTING_BY_NAME["ground_max_tilt"].description)
    adapt = parser.add_argument_group("online adaptation (the node's adapt parameters)")
    adapt.add_argument("--adapt", action="store_true", help=settings.SETTING_BY_NAME["adapt"].description)
    for name in ADAPT_OPTIONS:
        spec = settings.SETTING_BY_NAME[name]
        adapt.add_argument("--" + name.replace("_", "-"), type=type(spec.default), default=spec.default,
                           help=spec.description)
    adapt.add_argument("--adapt-steps-per-frame", type=int, default=0,
                       help="0: train in the background worker, as the node does; N > 0: N steps after each frame, "
                            "inline, so that a replay is deterministic (benchmarks)")
    adapt.add_argument("--save-model", metavar="FILE", default=None,
                       help="with --adapt: write the adapted weights to FILE at the end (a normal bwdp checkpoint)")
    parser.add_argument("--align", default="sim3", choices=("sim3", "se3", "scale", "none"),
                        help="trajectory alignment for the metrics (default sim3: monocular)")
    parser.add_argument("--colormaps", type=int, default=4, help="how many depth colormaps to write (default 4)")


class CameraInfoTrack:
    """CameraInfo messages of a bag by stamp: the one with an image's stamp, else the latest one before it."""

    def __init__(self, bag, topic: str):
        self.topic = topic
        entries = {}
        for _, msg in iter_messages(bag, topic):
            try:
                entries[stamp_ns_of(msg)] = camera_info_intrinsics(msg.k, msg.height, msg.width)
            except DataError:
                continue  # an unusable message (uncalibrated, no size): the node rejects it too and waits
        if not entries:
            raise DataError(f"no usable CameraInfo on {topic} in {bag} (give --intrinsics fx fy cx cy)")
        self.stamps = sorted(entries)
        self.entries = entries

    def at(self, stamp_ns: int) -> Optional[CameraInfoIntrinsics]:
        """(K, size) of the CameraInfo with this stamp, else the latest before it; None when there is none yet."""
        i = bisect.bisect_right(self.stamps, stamp_ns) - 1
        return self.entries[self.stamps[i]] if i >= 0 else None


def _only_topic_of_type(topics: dict, msgtype: str, what: str, bag) -> str | None:
    found = [t for t, m in topics.items() if m == msgtype]
    if len(found) > 1:
        raise DataError(f"bag {bag} has several {what} topics ({', '.join(found)}); choose one")
    return found[0] if found else None


def _ground_truth(args, topics: dict, log):
    """Trajectory of the ground truth, or None."""
    if args.gt:
        return read_trajectory(args.gt)
    topic = args.gt_topic or _only_topic_of_type(topics, ODOMETRY_TYPE, "nav_msgs/Odometry", args.bag)
    if topic is None:
        return None
    if topics.get(topic) != ODOMETRY_TYPE:
        raise DataError(f"ground-truth topic {topic!r} in bag {args.bag} is not nav_msgs/Odometry")
    poses, stamps = [], []
    for _, msg in iter_messages(args.bag, topic):
        poses.append(pose_from_odometry(msg))
        stamps.append(stamp_ns_of(msg) / 1e9)
    if len(poses) < 2:
        raise DataError(f"ground-truth topic {topic} in bag {args.bag} has fewer than 2 messages")
    log(f"ground truth: {len(poses)} poses from {topic}")
    return Trajectory(np.stack(poses), np.asarray(stamps), "tum", topic)


def _message_count(bag, topic: str) -> int:
    reader = open_reader(bag)
    try:
        return int(sum(c.msgcount for c in reader.connections if c.topic == topic))
    finally:
        reader.close()


def _write_colormap(path: Path, image: np.ndarray, depth: np.ndarray) -> None:
    h, w = depth.shape
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), np.concatenate([small, colorize_inverse_depth(depth)], axis=1)[..., ::-1])


def main(args: argparse.Namespace) -> int:
    def log(text):
        print(f"bwdp replay: {text}", flush=True)

    topics = list_topics(args.bag)
    if args.image_topic not in topics:
        raise DataError(f"topic {args.image_topic!r} is not in bag {args.bag}; topics: "
                        + ", ".join(f"{t} ({m})" for t, m in topics.items()))
    if topics[args.image_topic] not in IMAGE_TYPES:
        raise DataError(f"topic {args.image_topic!r} in bag {args.bag} is {topics[args.image_topic]}, not an image")
    if args.intrinsics:
        fallback = parameter_intrinsics(*args.intrinsics)
        if fallback is None:
            raise DataError(f"--intrinsics needs fx, fy > 0, got {args.intrinsics}")
        infos, picker = None, IntrinsicsPicker(fallback)  # the node's fx, fy, cx, cy parameters, without CameraInfo
    else:
        picker = IntrinsicsPicker()
        info_topic = args.camera_info_topic or _only_topic_of_type(topics, CAMERA_INFO_TYPE, "CameraInfo", args.bag)
        if info_topic is None:
            raise DataError(f"bag {args.bag} has no CameraInfo topic: give --intrinsics fx fy cx cy")
        if topics.get(info_topic) != CAMERA_INFO_TYPE:
            raise DataError(f"topic {info_topic!r} in bag {args.bag} is not a sensor_msgs/CameraInfo topic")
        infos = CameraInfoTrack(args.bag, info_topic)
    gt = _ground_truth(args, topics, log)
    vo_config = VOConfig.from_settings({"metric_scale": args.metric_scale, "camera_height": args.camera_height,
                                        "ground_max_tilt": args.ground_max_tilt})
    if args.save_model and not args.adapt:
        raise ConfigError("--save-model needs --adapt (without it the weights are the checkpoint's)")
    if args.adapt_steps_per_frame < 0:
        raise ConfigError(f"--adapt-steps-per-frame must be >= 0, got {args.adapt_steps_per_frame}")
    adapt_config = AdaptConfig.from_settings(vars(args)) if args.adapt else None

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    estimator = DepthPoseEstimator(args.checkpoint, device=args.device, backend=args.backend,
                                   num_threads=max(0, args.num_threads))
    adapter = Adapter(args.checkpoint, estimator, adapt_config) if args.adapt else None
    vo = VisualOdometry(estimator, vo_config, weights_provider=adapter)
    log(f"{args.checkpoint} on {estimator.device}, network {estimator.height}x{estimator.width}")
    if adapter is not None and args.adapt_steps_per_frame == 0:
        adapter.start()
    try:
        summary = _replay_frames(args, vo, adapter, infos, picker, gt, out, log)
    finally:
        if adapter is not None:
            adapter.stop()
    if adapter is not None:
        summary["adaptation"] = vars(adapter.status).copy()
        if args.save_model:
            summary["saved_model"] = adapter.save(args.save_model)
            log(f"adapted weights ({adapter.status.steps} steps, {adapter.status.swaps} swaps, "
                f"{adapter.status.rollbacks} roll-backs) saved to {args.save_model}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


def _replay_frames(args, vo: VisualOdometry, adapter: Optional[Adapter], infos, picker, gt, out: Path, log) -> dict:
    """Every image of the bag through ``vo`` (and ``adapter.train`` after each one when stepping inline); writes the
    trajectories, depth colormaps and metrics; returns the summary."""
    estimator = vo.estimator

    total = _message_count(args.bag, args.image_topic)
    colormap_at = set(np.linspace(0, max(0, total - 1), max(0, args.colormaps)).round().astype(int).tolist())
    stamps, camera_poses, odom_poses, skipped, lost, events, scales = [], [], [], {}, 0, [], []
    infer_s = 0.0
    for index, (_, msg) in enumerate(iter_messages(args.bag, args.image_topic)):
        stamp = stamp_ns_of(msg)
        try:
            image = image_from_msg(msg)
            if infos is None:  # --intrinsics: the picker's fallback, as the node's fx, fy, cx, cy parameters
                camera, missing = None, ""
            else:
                camera = infos.at(stamp)
                missing = f"no CameraInfo on {infos.topic} at or before stamp {stamp / 1e9:.6f} s"
            K = picker.pick(image.shape[:2], camera, missing)
            t0 = time.perf_counter()
            frame = vo.process(image, K, stamp)
            infer_s += time.perf_counter() - t0
            if adapter is not None and args.adapt_steps_per_frame:
                adapter.train(args.adapt_steps_per_frame)
        except DataError as err:
            reason = str(err)
            skipped[reason] = skipped.get(reason, 0) + 1
            if skipped[reason] == 1:
                log(f"frame at {stamp / 1e9:.6f} s skipped: {reason}")
            continue
        if frame.warning:
            log(frame.warning)
        if frame.event:
            events.append(f"{stamp / 1e9:.6f}: {frame.event}")
            log(frame.event)
        lost += int(frame.tracking_lost)
        stamps.append(stamp)
        camera_poses.append(frame.T_start_camera)
        scales.append(frame.scale)
        odom_poses.append(frame.T_odom_base)
        if index in colormap_at:
            _write_colormap(out / f"depth_{index:06d}.png", image, frame.depth)
    if not stamps:
        raise DataError(f"no frame of {args.image_topic} in {args.bag} could be processed ({sum(skipped.values())} "
                        "skipped)")

    seconds = np.asarray(stamps, dtype=np.float64) / 1e9
    write_trajectory(out / "trajectory.tum", np.stack(camera_poses), "tum", seconds)
    write_trajectory(out / "odom.tum", np.stack(odom_poses), "tum", seconds)
    summary = {"bag": str(args.bag), "image_topic": args.image_topic, "frames_processed": len(stamps),
               "frames_skipped": int(sum(skipped.values())), "skip_reasons": skipped, "tracking_lost": lost,
               "events": events, "inference_s_per_frame": infer_s / len(stamps), "device": str(estimator.device),
               "metric_scale": args.metric_scale, "camera_height": args.camera_height,
               "final_scale": scales[-1], "weights_version": vo.weights_version}
    if vo.scale_status is not None:
        summary.update(scale_spread=vo.scale_status.spread, frames_since_ground=vo.scale_status.frames_since_good,
                       ground_found=vo.scale_status.initialised)
    log(f"{len(stamps)} frames processed, {summary['frames_skipped']} skipped, {lost} with tracking lost; "
        f"{1e3 * summary['inference_s_per_frame']:.1f} ms per frame; wrote {out / 'trajectory.tum'}")

    if gt is not None:
        pred = Trajectory(np.stack(camera_poses), seconds if gt.timestamps is not None else None, "tum", "replay")
        metrics = evaluate_odometry(pred, gt, align=args.align)
        gt_poses, pred_poses, _, _ = align_and_associate(pred, gt, args.align)
        plot = plot_trajectories_top_view(gt_poses, pred_poses, out / "trajectory.png",
                                          title=f"bwdp replay: ATE {metrics['ate_m']['rmse']:.3f} m")
        metrics["suggested_metric_scale"] = metrics["alignment"]["scale"] * scales[-1]
        metrics["plot"] = str(plot)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        summary["metrics"] = str(out / "metrics.json")
        print(format_summary(metrics))
        log(f"suggested metric_scale for the node: {metrics['suggested_metric_scale']:.4f}; wrote "
            f"{out / 'metrics.json'} and {plot}")
    return summary
