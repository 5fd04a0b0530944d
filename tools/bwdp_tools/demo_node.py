"""Demo step 3: the real ROS 2 node over DDS, fed the held-out street by the publisher/recorder.

Both run as child processes on the one process manager (``bwdp_tools.processes``), in one private DDS domain on
localhost: the node (``VoNodeProcess``, ``python -m bwdp_ros.vo_node`` with ros/config/vo.yaml) and the
publisher/recorder (``python -m bwdp_tools.recorder``), so the demo process itself never imports rclpy. The recorder
reads the frames with ``load_sequence_frames`` below, the scoring reads ground truth with ``sequence_source``.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from bwdp_core.data.kitti_odometry import KittiOdometrySource
from bwdp_tools.demo_training import DemoError
from bwdp_tools.node_process import VoNodeProcess, vo_config_path
from bwdp_tools.processes import ManagedProcess, pick_domain_id, ros_env

NODE_READY_TIMEOUT_S = 120.0


def sequence_source(root: Path) -> KittiOdometrySource:
    """Sequence 00 of a `bwdp synth` / KITTI odometry root, read by the data layer (images, GT depth, K)."""
    return KittiOdometrySource(root, "00")


def load_sequence_frames(seq_root: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """All RGB frames of a `bwdp synth` / KITTI odometry root (sequence 00) and its 3x3 K (calib.txt, P2)."""
    source = sequence_source(Path(seq_root))
    return [source.load_image(i) for i in range(len(source))], source.intrinsics


def _wait_until_ready(node: VoNodeProcess, timeout_s: float) -> None:
    try:
        node.wait_ready(timeout=timeout_s)
    except RuntimeError:
        tail = node.output[-2000:]
        if not node.alive():
            raise DemoError(f"the node exited with code {node.proc.returncode} before it was ready; "
                            f"see {node.log_path}:\n{tail}") from None
        raise DemoError(f"the node was not ready after {timeout_s:.0f} s; see {node.log_path}") from None


def stream_through_node(checkpoint: Path, heldout_root: Path, work: Path, rate_hz: float,
                        timeout_s: float) -> Path:
    """Start the node and the publisher/recorder (two processes, one private DDS domain); returns the recording dir."""
    domain = pick_domain_id("bwdp_tools.demo")
    record_dir = work / "recording"
    shutil.rmtree(record_dir, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    node_log = work / "node.log"
    recorder_cmd = [sys.executable, "-m", "bwdp_tools.recorder", str(heldout_root), str(rate_hz), str(record_dir),
                    str(timeout_s)]
    print(f"[demo] starting the node (ROS_DOMAIN_ID={domain}, localhost only); log: {node_log}")
    with VoNodeProcess(checkpoint, domain, params={"device": "cpu"}, params_file=vo_config_path(),
                       log_path=node_log) as node:
        _wait_until_ready(node, NODE_READY_TIMEOUT_S)
        print(f"[demo] streaming the held-out sequence at {rate_hz:g} Hz as Image + CameraInfo, recording the outputs")
        with ManagedProcess(recorder_cmd, env=ros_env(domain), log=work / "recorder.log") as recorder:
            code = recorder.wait()
        if not node.alive():
            raise DemoError(f"the node exited during the stream with code {node.proc.returncode}; see {node_log}")
    if code != 0:
        log = (work / "recorder.log").read_text(errors="replace")[-2000:]
        raise DemoError(f"the publisher/recorder failed with exit code {code}:\n{log}")
    return record_dir
