"""The VO node as a separate process, talking real DDS (localhost only) to this test process.

A fixture checkpoint whose PoseNet always answers "+0.05 along the optical z axis" makes the expected odometry exact.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable (pip install -e '.[ros]')")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not importable (bash scripts/build_tf2_msgs.sh .venv)")

from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig  # noqa: E402
from bwdp_ros.conversions import stamp_to_ns  # noqa: E402
from bwdp_ros.params import SPECS  # noqa: E402
from bwdp_tools.fixtures import make_constant_motion_checkpoint  # noqa: E402
from bwdp_tools.node_process import VoNodeProcess  # noqa: E402
from bwdp_tools.processes import pick_domain_id, ros_env  # noqa: E402
from bwdp_tools.stream import VoStreamClient  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parents[1]
H, W = 128, 384                       # camera images; the network runs at 64x192
K = np.array([[300.0, 0, 190.0], [0, 300.0, 62.0], [0, 0, 1]])
STEP = 0.05                           # optical z per frame (fixture PoseNet)
PERIOD_NS = 100_000_000               # 10 Hz stamps
FRAME = "test_cam_optical"


class Clock:
    """Strictly increasing image stamps across the whole module (a step back would reset the odometry)."""

    def __init__(self):
        self.ns = 1_700_000_000 * 10**9

    def next(self):
        self.ns += PERIOD_NS
        return self.ns


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ros_node")
    ckpt = make_constant_motion_checkpoint(tmp / "fwd.pt", 64, 192, motion=(0, 0, STEP, 0, 0, 0), seed=3)
    image = np.random.default_rng(0).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    # the same processing class, offline, for the expected depth (max_depth cuts roughly half of the pixels)
    values = {s.name: s.default for s in SPECS}
    raw = VisualOdometry(DepthPoseEstimator(ckpt, device="cpu", warmup_iterations=0), VOConfig.from_settings(values))
    max_depth = float(np.median(raw.process(image, K, 0).depth))
    values["max_depth"] = max_depth
    expected = VisualOdometry(raw.estimator, VOConfig.from_settings(values)).process(image, K, 0).depth
    domain = pick_domain_id("test_ros_node")
    params = {"device": "cpu", "warmup_iterations": 1, "num_threads": 1, "publish_path": True,
              "max_depth": max_depth, "diagnostics_period": 1.0}
    node = VoNodeProcess(ckpt, domain, params=params, params_file=ROOT / "ros" / "config" / "vo.yaml",
                         log_path=tmp / "node.log")
    client = None
    try:
        node.start()
        client = VoStreamClient(domain)
        node.wait_ready(timeout=120)
        assert client.wait_for_node(30), "node's subscriptions not discovered"
        clock = Clock()
        assert client.prime(image, K, clock.next, timeout=60, frame_id=FRAME), node.output
        yield {"node": node, "client": client, "image": image, "expected_depth": expected, "clock": clock,
               "tmp": tmp, "ckpt": ckpt}
    finally:
        if client is not None:
            client.close()
        node.stop()


def _send_and_wait(s, n, image=None, lockstep=True):
    """Publish n frames (camera_info + image), each waiting for its odometry; returns their stamps."""
    client, stamps = s["client"], []
    for _ in range(n):
        stamp = s["clock"].next()
        client.publish_frame(s["image"] if image is None else image, stamp, K, FRAME)
        stamps.append(stamp)
        if lockstep:
            assert client.wait_for(lambda stamp=stamp: any(stamp_to_ns(m.header.stamp) == stamp
                                                           for _, m in client.odom), 60), \
                f"no odometry for stamp {stamp}:\n{s['node'].output[-3000:]}"
    return stamps


def _by_stamp(records, stamp):
    return [m for _, m in records if stamp_to_ns(m.header.stamp) == stamp]


def test_depth_and_depth_camera_info(setup):
    s = setup
    (stamp,) = _send_and_wait(s, 1)
    client = s["client"]
    assert client.wait_for(lambda: _by_stamp(client.depth, stamp) and _by_stamp(client.depth_info, stamp), 10)
    depth_msg, info = _by_stamp(client.depth, stamp)[0], _by_stamp(client.depth_info, stamp)[0]
    assert depth_msg.encoding == "32FC1" and (depth_msg.height, depth_msg.width) == (64, 192)
    assert depth_msg.step == 192 * 4
    assert stamp_to_ns(depth_msg.header.stamp) == stamp and depth_msg.header.frame_id == FRAME
    depth = np.frombuffer(bytes(depth_msg.data), dtype="<f4" if not depth_msg.is_bigendian else ">f4").reshape(64, 192)
    expected = s["expected_depth"]
    nan, expected_nan = np.isnan(depth), np.isnan(expected)
    assert 0.2 < expected_nan.mean() < 0.8  # the test means something: about half is beyond max_depth
    assert (nan != expected_nan).sum() <= 3  # NaN exactly where invalid (pixels at the threshold may flip)
    both = ~nan & ~expected_nan
    assert np.allclose(depth[both], expected[both], rtol=1e-4)
    # REP 118: same header, K scaled to the 64x192 depth image
    assert info.header == depth_msg.header and (info.height, info.width) == (64, 192)
    assert np.allclose(np.reshape(info.k, (3, 3)), [[150, 0, 95], [0, 150, 31], [0, 0, 1]])
    assert np.allclose(np.reshape(info.p, (3, 4))[:, :3], np.reshape(info.k, (3, 3)))


def test_odometry_advances_along_base_x_with_tf_and_covariance(setup):
    s, client = setup, setup["client"]
    assert client.reset().success
    stamps = _send_and_wait(s, 5)
    odoms = [_by_stamp(client.odom, st)[0] for st in stamps]
    for i, odom in enumerate(odoms):
        assert odom.header.frame_id == "odom" and odom.child_frame_id == "base_link"
        p = odom.pose.pose.position
        assert (p.x, p.y, p.z) == pytest.approx((STEP * i, 0, 0), abs=1e-5)  # +z optical = +x base_link
        q = odom.pose.pose.orientation
        assert (q.x, q.y, q.z, q.w) == pytest.approx((0, 0, 0, 1), abs=1e-6)
        cov = np.reshape(odom.pose.covariance, (6, 6))
        assert np.all(np.diag(cov) > 0) and np.all(np.diag(np.reshape(odom.twist.covariance, (6, 6))) > 0)
    # rate: 0.05 per 0.1 s = 0.5 m/s along base x
    last = odoms[-1].twist.twist
    assert (last.linear.x, last.linear.y, last.linear.z) == pytest.approx((STEP / 0.1, 0, 0), abs=1e-4)
    # TF odom -> base_link with the same stamp and the same pose
    assert client.wait_for(lambda: any(_tf_at(client, stamps[-1])), 10)
    tf = next(_tf_at(client, stamps[-1]))
    assert tf.header.frame_id == "odom" and tf.child_frame_id == "base_link"
    assert tf.transform.translation.x == pytest.approx(STEP * 4, abs=1e-5)
    # path for visualisation
    assert client.wait_for(lambda: len(client.path) > 0, 5)


def _tf_at(client, stamp):
    return (t for _, m in client.tf for t in m.transforms if stamp_to_ns(t.header.stamp) == stamp)


def test_static_camera_tf_is_the_optical_rotation(setup):
    client = setup["client"]
    assert client.wait_for(lambda: len(client.tf_static) > 0, 10)
    (tf,) = client.tf_static[-1][1].transforms
    assert tf.header.frame_id == "base_link" and tf.child_frame_id == FRAME
    r, t = tf.transform.rotation, tf.transform.translation
    assert (t.x, t.y, t.z) == (0, 0, 0)
    assert (r.x, r.y, r.z, r.w) == pytest.approx((-0.5, 0.5, -0.5, 0.5), abs=1e-9)


def test_reset_service_and_stamps_going_backwards(setup):
    s, client = setup, setup["client"]
    _send_and_wait(s, 3)
    assert client.reset().success
    (stamp,) = _send_and_wait(s, 1)
    assert _by_stamp(client.odom, stamp)[0].pose.pose.position.x == pytest.approx(0, abs=1e-9)
    _send_and_wait(s, 2)
    assert _by_stamp(client.odom, s["clock"].ns)[0].pose.pose.position.x == pytest.approx(2 * STEP, abs=1e-5)
    # a bag loop: the stamp jumps back by 10 s -> automatic reset, one log line
    s["clock"].ns -= 100 * PERIOD_NS
    (back,) = _send_and_wait(s, 1)
    assert _by_stamp(client.odom, back)[0].pose.pose.position.x == pytest.approx(0, abs=1e-9)
    (after,) = _send_and_wait(s, 1)
    assert _by_stamp(client.odom, after)[0].pose.pose.position.x == pytest.approx(STEP, abs=1e-5)
    assert s["node"].output.count("went backwards") == 1


def test_parameters_validated_at_runtime(setup):
    client = setup["client"]
    bad, read_only = client.set_parameters({"metric_scale": -1.0, "device": "cpu"})
    assert not bad.successful and "metric_scale" in bad.reason and "> 0" in bad.reason
    assert not read_only.successful and "read-only" in read_only.reason
    (ok,) = client.set_parameters({"metric_scale": 2.0})
    assert ok.successful
    assert client.reset().success
    stamps = _send_and_wait(setup, 2)
    assert _by_stamp(client.odom, stamps[-1])[0].pose.pose.position.x == pytest.approx(2 * STEP, abs=1e-5)
    (ok,) = client.set_parameters({"metric_scale": 1.0})
    assert ok.successful


def test_params_file_start_reports_no_unknown_parameter_and_diagnostics(setup):
    out = setup["node"].output
    assert "unknown parameter" not in out and "Traceback" not in out
    assert setup["node"].alive()
    assert setup["client"].wait_for(lambda: "diagnostics: processed" in setup["node"].output, 5)
    line = [ln for ln in setup["node"].output.splitlines() if "diagnostics: processed" in ln][-1]
    assert "dropped" in line and "latency" in line


def test_bad_checkpoint_is_one_error_line_and_nonzero_exit(tmp_path):
    env = ros_env(pick_domain_id("bad_ckpt"))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    for ckpt in (tmp_path / "missing.pt", broken):
        proc = subprocess.run([sys.executable, "-m", "bwdp_ros.vo_node", "--ros-args", "-p", f"checkpoint:={ckpt}",
                               "-p", "bogus_parameter:=1"], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out
        assert "Traceback" not in out
        errors = [ln for ln in out.splitlines() if "[ERROR]" in ln]
        assert len(errors) == 1 and str(ckpt) in errors[0], out
        assert "ignoring unknown parameter 'bogus_parameter'" in out


def test_tracking_lost_publishes_the_large_covariance(setup):
    s, client = setup, setup["client"]
    (ok,) = client.set_parameters({"max_frame_gap": 0.05})  # frames are 0.1 s apart: no motion estimate
    assert ok.successful
    try:
        stamps = _send_and_wait(s, 2)
        lost = _by_stamp(client.odom, stamps[-1])[0]
        assert np.allclose(np.diag(np.reshape(lost.pose.covariance, (6, 6))), 1.0e6)
        assert np.allclose(np.diag(np.reshape(lost.twist.covariance, (6, 6))), 1.0e6)
    finally:
        (ok,) = client.set_parameters({"max_frame_gap": 2.0})
        assert ok.successful
    stamps = _send_and_wait(s, 1)
    tracked = _by_stamp(client.odom, stamps[-1])[0]
    assert np.allclose(np.diag(np.reshape(tracked.pose.covariance, (6, 6))), [0.01] * 3 + [0.001] * 3)
    assert "tracking lost" in s["node"].output
