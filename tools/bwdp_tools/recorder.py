"""The demo's publisher + recorder: stream a KITTI-layout sequence into a running vo_node, save what it publishes.

    python -m bwdp_tools.recorder SEQ_ROOT RATE_HZ OUT_DIR TIMEOUT_S   (ROS_DOMAIN_ID etc. from the environment)

Runs in its own process so that `bwdp_tools.demo` never imports rclpy. Reads the frames with the demo's reader
(bwdp_tools.demo_node.load_sequence_frames), publishes Image + CameraInfo at a steady rate
(bwdp_tools.stream.VoStreamClient), waits until the node answered the last frame, and writes plain files for the
scoring:
OUT/recording.npz (published stamps, odometry rows [stamp, receive, x y z, qx qy qz qw], depth maps + stamps) and
OUT/tf.json (/tf stamps, the /tf_static camera mount, odom frame names).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bwdp_ros.conversions import stamp_to_ns
from bwdp_tools.demo_node import load_sequence_frames
from bwdp_tools.stream import VoStreamClient, depth_from_msg


def _odometry_rows(odom) -> list[list[float]]:
    rows = []
    for recv, m in odom:
        p, q = m.pose.pose.position, m.pose.pose.orientation
        rows.append([stamp_to_ns(m.header.stamp), recv, p.x, p.y, p.z, q.x, q.y, q.z, q.w])
    return rows


def _mount_rows(tf_static) -> list[list]:
    rows = []
    for _, msg in tf_static:
        for t in msg.transforms:
            tr, q = t.transform.translation, t.transform.rotation
            rows.append([t.header.frame_id, t.child_frame_id, tr.x, tr.y, tr.z, q.x, q.y, q.z, q.w])
    return rows


def record(seq_root: Path, rate_hz: float, out: Path, timeout_s: float, domain_id: int) -> int:
    images, K = load_sequence_frames(seq_root)
    out.mkdir(parents=True, exist_ok=True)
    with VoStreamClient(domain_id) as client:
        if not client.wait_for_node(60.0):
            print("recorder: no node subscribed to 'image' within 60 s", file=sys.stderr)
            return 1
        time.sleep(0.5)
        stamps = client.stream(images, K, rate_hz)
        last = stamps[-1]

        def answered_last_frame() -> bool:
            return (any(stamp_to_ns(m.header.stamp) == last for _, m in client.odom)
                    and any(stamp_to_ns(m.header.stamp) == last for _, m in client.depth))

        client.wait_for(answered_last_frame, timeout=timeout_s)
        time.sleep(0.3)
        odom, depth, tf, tf_static = list(client.odom), list(client.depth), list(client.tf), list(client.tf_static)
    bad = [m.encoding for _, m in depth if m.encoding != "32FC1"]
    if bad:
        print(f"recorder: depth encoding {bad[0]}, expected 32FC1", file=sys.stderr)
        return 1
    odom_rows = _odometry_rows(odom)
    depth_maps = [depth_from_msg(m) for _, m in depth]
    np.savez_compressed(out / "recording.npz", published_stamps_ns=np.array(stamps, dtype=np.int64),
                        odom=np.array(odom_rows, dtype=np.float64).reshape(-1, 9),
                        odom_stamps_ns=np.array([r[0] for r in odom_rows], dtype=np.int64),
                        odom_receive_ns=np.array([r[1] for r in odom_rows], dtype=np.int64),
                        depth_stamps_ns=np.array([stamp_to_ns(m.header.stamp) for _, m in depth], dtype=np.int64),
                        depth=np.stack(depth_maps) if depth_maps else np.zeros((0, 1, 1), np.float32))
    tf_rows = [[stamp_to_ns(t.header.stamp), t.header.frame_id, t.child_frame_id]
               for _, msg in tf for t in msg.transforms]
    (out / "tf.json").write_text(json.dumps({
        "tf": tf_rows, "tf_static": _mount_rows(tf_static),
        "odom_frames": [[m.header.frame_id, m.child_frame_id] for _, m in odom[:1]]}))
    print(f"recorder: sent {len(stamps)} frames, received {len(odom)} odometry, {len(depth)} depth, "
          f"{len(tf_rows)} tf transforms")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bwdp_tools.recorder", description=__doc__.splitlines()[0])
    parser.add_argument("seq_root", type=Path, help="KITTI odometry root (sequences/00/image_2, calib.txt)")
    parser.add_argument("rate_hz", type=float, help="publishing rate")
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("timeout_s", type=float, help="how long to wait for the node's answer to the last frame")
    args = parser.parse_args(argv)
    return record(args.seq_root, args.rate_hz, args.out, args.timeout_s, int(os.environ.get("ROS_DOMAIN_ID", "0")))


if __name__ == "__main__":
    sys.exit(main())
