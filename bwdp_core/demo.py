"""`make demo`: the whole system on one machine, end to end, in minutes on a CPU.

    python -m bwdp_core.demo [--toy] [--out demo_out] [--cache demo_cache]

1. renders a training street and a different, held-out street with ``bwdp synth`` (ground-truth depth and poses);
2. trains DispNet + PoseNet on the training street with the full bidirectional weighted loss (``bwdp train``); the
   checkpoint is cached under ``demo_cache/`` keyed by a hash of the configuration, so a second run skips this step;
3. starts the real ROS 2 node (``bwdp_ros.vo_node``) as its own process and streams the held-out street into it as
   sensor_msgs/Image + CameraInfo over DDS (localhost only) at a steady rate, recording depth, odometry and TF;
4. scores what the node published with ``bwdp eval-odom`` (sim(3)-aligned ATE, t_err) and ``bwdp eval-depth`` (AbsRel),
   against two trivial baselines: a constant-velocity extrapolation of the first two ground-truth poses, and a constant
   (median) depth map;
5. writes ``demo_out/`` (trajectory.png, depth.png, metrics.json) and prints a short summary.

This module stays ROS-free like the rest of ``bwdp_core``: the node and the publisher/recorder run as child processes
(``bwdp_ros.vo_node`` and ``bwdp_ros.stream``), each in its own process group, stopped in ``finally`` and on SIGINT,
SIGTERM and SIGHUP, so Ctrl-C never leaves a node behind.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bwdp_core.errors import BwdpError, ConfigError
from bwdp_core.eval.trajectory_io import read_trajectory, write_trajectory

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO_ROOT / "config" / "demo.yaml"
TRAIN_CONFIG = REPO_ROOT / "config" / "train.yaml"
VO_CONFIG = REPO_ROOT / "config" / "vo.yaml"
CACHE_VERSION = 1  # bump when the cached artefacts' layout changes


# ----------------------------------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoSettings:
    """One profile of config/demo.yaml (``demo`` or ``toy``)."""

    height: int
    width: int
    train_frames: int
    train_seed: int
    heldout_frames: int
    heldout_seed: int
    rate_hz: float
    iterations: int
    train_overrides: dict

    @classmethod
    def load(cls, profile: str, path: Path = DEMO_CONFIG) -> "DemoSettings":
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the demo configuration ({err.strerror})") from None
        if not isinstance(doc, dict) or profile not in doc:
            raise ConfigError(f"{path}: no '{profile}' section")
        section = dict(doc[profile])
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(section) - known)
        missing = sorted(known - set(section))
        if unknown or missing:
            raise ConfigError(f"{path}: section '{profile}': unknown keys {unknown}, missing keys {missing}")
        settings = cls(**section)
        if settings.heldout_seed == settings.train_seed:
            raise ConfigError(f"{path}: heldout_seed must differ from train_seed (the held-out street must be new)")
        if settings.heldout_frames < 3 or settings.train_frames < 3:
            raise ConfigError(f"{path}: train_frames and heldout_frames must be at least 3 (one snippet)")
        return settings


def config_hash(settings: DemoSettings, train_config_text: str) -> str:
    """Key of the cached checkpoint: everything that changes the trained model, and nothing else."""
    keyed = {
        "cache_version": CACHE_VERSION,
        "height": settings.height,
        "width": settings.width,
        "train_frames": settings.train_frames,
        "train_seed": settings.train_seed,
        "iterations": settings.iterations,
        "train_overrides": {str(k): settings.train_overrides[k] for k in sorted(settings.train_overrides)},
        "train_yaml": train_config_text,
    }
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------------
# child processes: run to completion, or keep alive (node, streamer) and always stop
# ----------------------------------------------------------------------------------------------------------------------
def bwdp_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bwdp_core.cli", *map(str, args)]


def child_env() -> dict:
    """Our environment, with this source tree importable even when the package is not pip-installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_step(cmd: list[str], what: str, env: dict | None = None, log: Path | None = None) -> None:
    """Run one command to completion in its own process group (stopped if we are interrupted)."""
    with ManagedProcess(cmd, env=env or child_env(), log=log) as proc:
        code = proc.wait()
    if code != 0:
        hint = f" (log: {log})" if log else ""
        raise DemoError(f"{what} failed with exit code {code}{hint}: {' '.join(cmd)}")


class DemoError(BwdpError):
    """A demo step that failed; the message names the step and the command."""


class ManagedProcess:
    """A child in its own session/process group; on exit it is stopped: SIGINT, then SIGTERM, then SIGKILL."""

    def __init__(self, cmd: list[str], env: dict | None = None, log: Path | None = None):
        self.cmd = cmd
        self.env = env
        self.log = log
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def __enter__(self) -> subprocess.Popen:
        out = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log, "wb")
            out = self._log_file
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                     start_new_session=True)
        _LIVE.add(self)
        return self.proc

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, grace_s: float = 5.0) -> None:
        proc = self.proc
        try:
            if proc is not None and proc.poll() is None:
                for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                    try:
                        os.killpg(proc.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        proc.wait(timeout=wait_s)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            if proc is not None:
                # the leader may be gone while others in its group linger: sweep the group once more
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        finally:
            _LIVE.discard(self)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None


_LIVE: set[ManagedProcess] = set()


def _stop_all_children() -> None:
    for managed in list(_LIVE):
        managed.stop(grace_s=2.0)


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def ros_env(domain_id: int | None = None) -> dict:
    """Environment for every ROS process of the demo: DDS on localhost only, a domain of its own."""
    env = child_env()
    if domain_id is None:
        domain_id = 100 + (os.getpid() + random.randrange(1000)) % 99 + 1  # 101..199
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_LOCALHOST_ONLY"] = "1"
    return env


# ----------------------------------------------------------------------------------------------------------------------
# 1-2: data and model
# ----------------------------------------------------------------------------------------------------------------------
def render_sequence(cache: Path, name: str, frames: int, height: int, width: int, seed: int) -> Path:
    """`bwdp synth` into demo_cache/data/<key>/ (KITTI odometry layout), skipped when already there."""
    root = cache / "data" / f"{name}-{height}x{width}-n{frames}-s{seed}"
    if (root / "poses" / "00.txt").exists() and (root / "sequences" / "00" / "calib.txt").exists():
        print(f"[demo] {name} sequence cached: {root}")
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"[demo] rendering the {name} sequence: {frames} frames {height}x{width}, seed {seed}")
    run_step(bwdp_command("synth", "--out", tmp, "--frames", frames, "--height", height, "--width", width,
                          "--seed", seed), f"bwdp synth ({name})")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def find_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a finished `bwdp train` run left in RUN/checkpoints/ (last.pt preferred over best)."""
    ckpt_dir = run_dir / "checkpoints"
    for name in ("last.pt", "final.pt", "latest.pt", "best.pt"):
        if (ckpt_dir / name).is_file():
            return ckpt_dir / name
    candidates = sorted(ckpt_dir.glob("*.pt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def train_or_reuse(cache: Path, settings: DemoSettings, train_root: Path) -> tuple[Path, bool]:
    """Train with the full method unless a checkpoint for this exact configuration is cached.

    Returns (checkpoint path, True when it was trained in this run)."""
    if not TRAIN_CONFIG.is_file():
        raise ConfigError(f"{TRAIN_CONFIG}: missing (the training configuration bwdp train starts from)")
    key = config_hash(settings, TRAIN_CONFIG.read_text())
    run_dir = cache / f"train-{key}"
    done = run_dir / "DONE.json"
    if done.is_file():
        ckpt = run_dir / json.loads(done.read_text())["checkpoint"]
        if ckpt.is_file():
            print(f"[demo] trained checkpoint cached (config {key}): {ckpt}")
            return ckpt, False
    resume = find_checkpoint(run_dir) is not None
    overrides = {
        "data.source.type": "kitti_odom",
        "data.source.path": str(train_root),
        "data.height": settings.height,
        "data.width": settings.width,
        "train.iterations": settings.iterations,
        **settings.train_overrides,
    }
    cmd = bwdp_command("train", "--config", TRAIN_CONFIG, "--out", run_dir)
    for k, v in overrides.items():
        cmd += ["--set", f"{k}={v}"]
    if resume:
        cmd.append("--resume")
    print(f"[demo] training ({settings.iterations} iterations, {settings.height}x{settings.width}, full method)"
          + (" - resuming an interrupted run" if resume else ""))
    run_step(cmd, "bwdp train")
    ckpt = find_checkpoint(run_dir)
    if ckpt is None:
        raise DemoError(f"bwdp train finished but left no checkpoint in {run_dir / 'checkpoints'}")
    done.write_text(json.dumps({"checkpoint": str(ckpt.relative_to(run_dir)), "config_hash": key}))
    return ckpt, True


# ----------------------------------------------------------------------------------------------------------------------
# 3: the node over DDS
# ----------------------------------------------------------------------------------------------------------------------
# The publisher/recorder (bwdp_ros/demo_recorder.py) runs in a child interpreter: bwdp_core stays free of ROS imports.


def sequence_source(root: Path):
    """Sequence 00 of a `bwdp synth` / KITTI odometry root, read by the data layer (images, GT depth, K)."""
    from bwdp_core.data.kitti_odometry import KittiOdometrySource

    return KittiOdometrySource(root, "00")


def load_sequence_frames(seq_root: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """All RGB frames of a `bwdp synth` / KITTI odometry root (sequence 00) and its 3x3 K (calib.txt, P2)."""
    source = sequence_source(Path(seq_root))
    return [source.load_image(i) for i in range(len(source))], source.intrinsics


def wait_for_log(log: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.is_file() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise DemoError(f"the node exited with code {proc.returncode} before it was ready; see {log}:\n"
                            + log.read_text(errors="replace")[-2000:])
        time.sleep(0.1)
    raise DemoError(f"the node was not ready after {timeout_s:.0f} s; see {log}")


def stream_through_node(checkpoint: Path, heldout_root: Path, work: Path, rate_hz: float,
                        timeout_s: float) -> Path:
    """Start the node and the publisher/recorder (two processes, one private DDS domain); returns the recording dir."""
    env = ros_env()
    record_dir = work / "recording"
    shutil.rmtree(record_dir, ignore_errors=True)
    node_log = work / "node.log"
    node_cmd = [sys.executable, "-m", "bwdp_ros.vo_node", "--ros-args", "--params-file", str(VO_CONFIG),
                "-p", f"checkpoint:={checkpoint}", "-p", "device:=cpu"]
    recorder_cmd = [sys.executable, "-m", "bwdp_ros.demo_recorder", str(heldout_root), str(rate_hz), str(record_dir),
                    str(timeout_s)]
    print(f"[demo] starting the node (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, localhost only); log: {node_log}")
    with ManagedProcess(node_cmd, env=env, log=node_log) as node:
        wait_for_log(node_log, "ready: checkpoint", node, timeout_s=120.0)
        print(f"[demo] streaming the held-out sequence at {rate_hz:g} Hz as Image + CameraInfo, recording the outputs")
        with ManagedProcess(recorder_cmd, env=env, log=work / "recorder.log") as recorder:
            code = recorder.wait()
        if node.poll() is not None:
            raise DemoError(f"the node exited during the stream with code {node.returncode}; see {node_log}")
    if code != 0:
        log = (work / "recorder.log").read_text(errors="replace")[-2000:]
        raise DemoError(f"the publisher/recorder failed with exit code {code}:\n{log}")
    return record_dir


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


# ----------------------------------------------------------------------------------------------------------------------
# 5: pictures
# ----------------------------------------------------------------------------------------------------------------------
def plot_trajectory(path: Path, gt: np.ndarray, pred: np.ndarray, baseline: np.ndarray, title: str) -> None:
    """Top view (x, z of the first camera's optical frame: x right, z forward) after sim(3) alignment to GT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bwdp_core.eval.odometry import align_and_associate

    def aligned(traj):  # the same sim(3) alignment `bwdp eval-odom` scores (evo Umeyama, with its straight-path fallback)
        return align_and_associate(traj, gt, "sim3")[1][:, :3, 3]

    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    ax.plot(gt[:, 0, 3], gt[:, 2, 3], "k-", lw=2, label="ground truth")
    est = aligned(pred)
    ax.plot(est[:, 0], est[:, 2], "-", color="tab:blue", lw=1.6, label="bwdp node (sim(3)-aligned)")
    base = aligned(baseline)
    ax.plot(base[:, 0], base[:, 2], "--", color="tab:gray", lw=1.2, label="constant velocity (sim(3)-aligned)")
    ax.plot(gt[0, 0, 3], gt[0, 2, 3], "ko", ms=5)
    ax.set_xlabel("x [m] (right)")
    ax.set_ylabel("z [m] (forward)")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_depth_strip(path: Path, images: list[np.ndarray], preds: list[np.ndarray], gts: list[np.ndarray],
                     labels: list[str]) -> None:
    """Rows: input / predicted depth (median-scaled) / ground-truth depth; one column per frame.

    Depth is drawn as inverse depth (near = bright) with one colour range per column taken from the ground truth;
    pixels without ground truth (sky) are black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(images)
    h, w = images[0].shape[:2]
    panel_w = 3.0
    panel_h = panel_w * h / w
    fig, axes = plt.subplots(3, cols, figsize=(panel_w * cols + 0.5, 3 * (panel_h + 0.3) + 0.2), dpi=120,
                             squeeze=False)
    cmap = matplotlib.colormaps["magma"].copy()
    cmap.set_bad("black")
    for c in range(cols):
        gt = gts[c]
        valid = np.isfinite(gt) & (gt > 0)
        inv_gt = np.where(valid, 1.0 / np.where(valid, gt, 1.0), np.nan)
        lo, hi = np.nanpercentile(inv_gt, [1, 99]) if valid.any() else (0.0, 1.0)
        pred = preds[c]
        inv_pred = np.where(np.isfinite(pred) & (pred > 0), 1.0 / np.maximum(pred, 1e-6), np.nan)
        axes[0, c].imshow(images[c])
        axes[1, c].imshow(inv_pred, cmap=cmap, vmin=lo, vmax=hi)
        axes[2, c].imshow(inv_gt, cmap=cmap, vmin=lo, vmax=hi)
        axes[0, c].set_title(labels[c], fontsize=8)
    for r, name in enumerate(["input", "predicted", "ground truth"]):
        axes[r, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout(pad=0.4)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toy", action="store_true", help="tiny sizes and budget (smoke test; proves plumbing only)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="results folder (default: demo_out)")
    parser.add_argument("--cache", type=Path, default=Path("demo_cache"),
                        help="rendered data and trained checkpoints, reused by later runs (default: demo_cache)")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="demo settings (default: config/demo.yaml)")
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
    plot_trajectory(out / "trajectory.png", plots["gt"], plots["pred"], plots["const_vel"],
                    f"held-out street (seed {settings.heldout_seed}), {odo['frames_evaluated']} frames: ATE "
                    f"{odo['ate_m']:.2f} m (node) vs {odo['baseline_constant_velocity_ate_m']:.2f} m "
                    "(constant velocity)")
    plot_depth_strip(out / "depth.png", *plots["depth_strip"])
    timings["evaluate_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - t_start
    metrics["timings"] = {k: round(v, 1) for k, v in timings.items()}
    metrics["checkpoint"] = str(checkpoint)
    metrics["settings"] = {k: getattr(settings, k) for k in settings.__dataclass_fields__}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    print_summary(metrics, out)
    return 0


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
    from bwdp_core.frames import quaternion_to_matrix

    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(*np.asarray(quat_xyzw, dtype=np.float64))
    T[:3, 3] = xyz
    return T


def load_recording(record_dir: Path, published_frames: int) -> Recording:
    """The recorder's files -> odometry as camera poses matched to held-out frame indices, depth per frame index.

    The node publishes base_link in odom; the camera pose is T_odom_base @ T_base_camera with the mount it
    broadcast on /tf_static (REP 103's optical rotation when none was recorded)."""
    from bwdp_core.frames import R_BASE_OPTICAL

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
    for parent, child, *xyz_q in tf_info["tf_static"]:
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
    from bwdp_core.eval.depth_metrics import compute_depth_metrics

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
    import cv2

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


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bwdp_core.demo", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    # SIGINT too: a shell that starts us in the background leaves SIGINT ignored, and children inherit that
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        return main(args)
    except BwdpError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ndemo: interrupted; stopping the node and every child process", file=sys.stderr)
        return 130
    finally:
        _stop_all_children()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(cli())
