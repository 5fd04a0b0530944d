"""The VO node as a separate process, talking real DDS (localhost only) to this test process.

A fixture checkpoint whose PoseNet always answers "+0.05 along the optical z axis" makes the expected odometry exact.
Every wait is on a condition (a message with this stamp, a diagnostics level), never on a fixed sleep.
"""
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable (pip install -e '.[ros]')")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not importable (bash scripts/build_tf2_msgs.sh .venv)")
pytest.importorskip("diagnostic_msgs.msg", reason="diagnostic_msgs is not importable (pip install -e '.[ros]')")

from rcl_interfaces.srv import DescribeParameters  # noqa: E402

from bwdp_core.inference.settings import Number  # noqa: E402
from bwdp_core.inference.vo_pipeline import DepthPoseEstimator, VisualOdometry, VOConfig  # noqa: E402
from bwdp_ros.conversions import stamp_to_ns  # noqa: E402
from bwdp_ros.params import SPECS  # noqa: E402
from bwdp_tools.fixtures import make_constant_motion_checkpoint  # noqa: E402
from bwdp_tools.node_process import VoNodeProcess  # noqa: E402
from bwdp_tools.processes import pick_domain_id, ros_env  # noqa: E402
from bwdp_tools.stream import VoStreamClient, depth_from_msg  # noqa: E402

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
              "max_depth": max_depth, "diagnostics_period": 0.5, "publish_camera_tf": True, "publish_cloud": True,
              "cloud_decimation": 2}
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


def _send_and_wait(s, n, image=None, lockstep=True, K_image=K):
    """Publish n frames (camera_info + image), each waiting for its odometry; returns their stamps."""
    client, stamps = s["client"], []
    for _ in range(n):
        stamp = s["clock"].next()
        client.publish_frame(s["image"] if image is None else image, stamp, K_image, FRAME)
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
    # REP 118 on depth/image_rect + depth/camera_info (image_transport's pairing): same header, K and P at the
    # 64x192 depth size, no distortion (the network image is rectified), so depth_image_proc needs only a remap
    assert info.header == depth_msg.header and (info.height, info.width) == (64, 192)
    assert np.allclose(np.reshape(info.k, (3, 3)), [[150, 0, 95], [0, 150, 31], [0, 0, 1]])
    assert np.allclose(np.reshape(info.p, (3, 4))[:, :3], np.reshape(info.k, (3, 3)))
    assert not np.any(info.d) and np.allclose(np.reshape(info.r, (3, 3)), np.eye(3))
    topics = dict(client.node.get_topic_names_and_types())
    assert topics.get("/depth/image_rect") == ["sensor_msgs/msg/Image"]
    assert topics.get("/depth/camera_info") == ["sensor_msgs/msg/CameraInfo"]


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
        assert np.all(np.diag(np.reshape(odom.pose.covariance, (6, 6))) > 0)
        assert np.all(np.diag(np.reshape(odom.twist.covariance, (6, 6))) > 0)
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
    out_of_range, bad, read_only = client.set_parameters({"metric_scale": -1.0, "max_speed": float("nan"),
                                                          "device": "cpu"})
    assert not out_of_range.successful and "metric_scale out of range" in out_of_range.reason  # the descriptor's
    assert not bad.successful and "max_speed" in bad.reason                                    # the node's check
    assert not read_only.successful and "read-only" in read_only.reason
    (zero,) = client.set_parameters({"metric_scale": 0.0})   # at the range's edge, refused by the check: > 0
    assert not zero.successful and "> 0" in zero.reason
    (ok,) = client.set_parameters({"metric_scale": 2.0})
    assert ok.successful
    assert client.reset().success
    stamps = _send_and_wait(setup, 2)
    assert _by_stamp(client.odom, stamps[-1])[0].pose.pose.position.x == pytest.approx(2 * STEP, abs=1e-5)
    (ok,) = client.set_parameters({"metric_scale": 1.0})
    assert ok.successful


def test_params_file_start_reports_no_unknown_parameter(setup):
    out = setup["node"].output
    assert "unknown parameter" not in out and "Traceback" not in out
    assert setup["node"].alive()


def _status_after(client, since_ns, predicate):
    """The first /diagnostics status received after ``since_ns`` that satisfies ``predicate`` (else None)."""
    for received, array in client.diagnostics:
        for status in array.status:
            if received > since_ns and predicate(status):
                return status
    return None


def _stream_until_status(s, level, text="", timeout=60.0):
    """Send frames in lockstep until a /diagnostics status of ``level`` (containing ``text``) arrives."""
    client, start = s["client"], time.time_ns()
    deadline = time.monotonic() + timeout
    found = None
    while found is None and time.monotonic() < deadline:
        _send_and_wait(s, 1)
        with client._lock:
            found = _status_after(client, start, lambda st: st.level[0] == level and text in st.message)
    assert found is not None, f"no level {level} status:\n{s['node'].output[-3000:]}"
    return found


def test_diagnostics_healthy_lost_and_idle(setup):
    s, client = setup, setup["client"]
    healthy = _stream_until_status(s, 0)
    values = {kv.key: kv.value for kv in healthy.values}
    assert float(values["processed frames/s"]) > 0 and values["tracking"] == "ok"
    assert "p95" in values["latency receive->publish"]
    # the test's stamps are from 2023: their age is no latency, and the node says so instead of printing it
    assert values["latency stamp->publish"].startswith("n/a")
    assert values["camera mount"] == "published from parameters" and values["lifecycle state"] == "active"
    (ok,) = client.set_parameters({"max_frame_gap": 0.05})  # frames are 0.1 s apart: every frame is lost
    assert ok.successful
    try:
        lost = _stream_until_status(s, 1, "tracking lost")
        assert {kv.key: kv.value for kv in lost.values}["tracking"] == "lost"
    finally:
        (ok,) = client.set_parameters({"max_frame_gap": 2.0})
        assert ok.successful
    start = time.time_ns()
    assert client.wait_for(lambda: _status_after(client, start, lambda st: st.level[0] == 3) is not None, 30)
    idle = _status_after(client, start, lambda st: st.level[0] == 3)
    assert "no images for" in idle.message


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


def _diag(cov):
    return np.diag(np.reshape(cov, (6, 6)))


def test_pose_covariance_grows_with_distance_and_lost_frames_publish_the_large_covariance(setup):
    s, client = setup, setup["client"]
    assert client.reset().success
    stamps = _send_and_wait(s, 6)
    odoms = [_by_stamp(client.odom, st)[0] for st in stamps]
    # the first frame after a reset has no motion estimate: large twist covariance, pose at the origin's
    assert np.allclose(_diag(odoms[0].twist.covariance), 1.0e6)
    along = [_diag(o.pose.covariance)[0] for o in odoms]
    lateral = [_diag(o.pose.covariance)[1] for o in odoms]
    assert all(b > a for a, b in zip(along, along[1:])) and all(b > a for a, b in zip(lateral[1:], lateral[2:]))
    for odom in odoms[1:]:
        assert np.allclose(_diag(odom.twist.covariance), [0.05] * 3 + [0.01] * 3)
    (ok,) = client.set_parameters({"max_frame_gap": 0.05})  # frames are 0.1 s apart: no motion estimate
    assert ok.successful
    try:
        (stamp,) = _send_and_wait(s, 1)
        lost = _by_stamp(client.odom, stamp)[0]
        assert np.allclose(_diag(lost.twist.covariance), 1.0e6)
        assert np.all(_diag(lost.pose.covariance) > 0.01 * 1.0e6 * 0.99)  # an unknown motion over 0.1 s absorbed
    finally:
        (ok,) = client.set_parameters({"max_frame_gap": 2.0})
        assert ok.successful
    assert "tracking lost" in s["node"].output
    assert client.reset().success                       # a reset starts the pose covariance again
    stamps = _send_and_wait(s, 2)
    assert np.all(_diag(_by_stamp(client.odom, stamps[-1])[0].pose.covariance) < 1.0)


def _read_cloud(msg):
    """An independent PointCloud2 reader: struct.unpack per point, offsets and types from msg.fields."""
    kinds = {7: "f", 8: "d"}  # PointField FLOAT32, FLOAT64
    order = ">" if msg.is_bigendian else "<"
    data = bytes(msg.data)
    fields = {f.name: (f.offset, kinds[f.datatype]) for f in msg.fields}
    rows = []
    for i in range(msg.width * msg.height):
        base = i * msg.point_step
        rows.append({name: struct.unpack_from(order + kind, data, base + offset)[0]
                     for name, (offset, kind) in fields.items()})
    return rows


def test_point_cloud_matches_the_back_projected_depth(setup):
    s, client = setup, setup["client"]
    (stamp,) = _send_and_wait(s, 1)
    assert client.wait_for(lambda: _by_stamp(client.points, stamp) and _by_stamp(client.depth_info, stamp)
                           and _by_stamp(client.depth, stamp), 10)
    cloud, info = _by_stamp(client.points, stamp)[0], _by_stamp(client.depth_info, stamp)[0]
    depth = depth_from_msg(_by_stamp(client.depth, stamp)[0])
    assert cloud.header == info.header and cloud.is_dense and cloud.height == 1
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    expected = [((u - cx) / fx * depth[v, u], (v - cy) / fy * depth[v, u], depth[v, u])
                for v in range(0, depth.shape[0], 2) for u in range(0, depth.shape[1], 2) if np.isfinite(depth[v, u])]
    points = _read_cloud(cloud)
    assert len(points) == len(expected) > 100
    got = np.array([(p["x"], p["y"], p["z"]) for p in points])
    assert np.all(np.isfinite(got)) and np.allclose(got, np.array(expected), rtol=1e-5, atol=1e-6)
    assert "rgb" in points[0]


def test_base_frame_change_is_refused_while_active(setup):
    (refused,) = setup["client"].set_parameters({"base_frame": "base_footprint"})
    assert not refused.successful and "deactivate" in refused.reason


def test_every_numeric_parameter_has_its_range_in_the_descriptor(setup):
    client = setup["client"]
    numeric = [spec for spec in SPECS if isinstance(spec.check, Number)]
    assert len(numeric) > 10
    request = DescribeParameters.Request(names=[spec.name for spec in numeric])
    described = client.call(DescribeParameters, f"/{client.target}/describe_parameters", request).descriptors
    for spec, descriptor in zip(numeric, described):
        ranges = descriptor.integer_range if isinstance(spec.default, int) else descriptor.floating_point_range
        assert len(ranges) == 1, spec.name
        assert ranges[0].from_value == (spec.check.minimum if spec.check.minimum is not None else ranges[0].from_value)
        assert descriptor.additional_constraints == spec.check.range_text


def test_a_different_camera_warns_once_and_crop_keeps_the_aspect(setup):
    s, client = setup, setup["client"]
    # a 4:3 camera (kept small: a large best-effort image may not fit DDS shared memory and be lost)
    vga = np.random.default_rng(1).integers(0, 255, size=(240, 320, 3), dtype=np.uint8)
    K_vga = np.array([[250.0, 0, 160], [0, 250.0, 120], [0, 0, 1]])
    _send_and_wait(s, 2, image=vga, K_image=K_vga)
    warnings = [line for line in s["node"].output.splitlines() if "training geometry" in line]
    assert len(warnings) == 1 and "fx 150 vs fy 67" in warnings[0], s["node"].output[-2000:]
    (ok,) = client.set_parameters({"resize_mode": "crop"})
    assert ok.successful
    try:
        (stamp,) = _send_and_wait(s, 1, image=vga, K_image=K_vga)
        # depth comes from the node's depth thread, after the frame's odometry
        assert client.wait_for(lambda: _by_stamp(client.depth_info, stamp), 30), s["node"].output[-2000:]
        info = _by_stamp(client.depth_info, stamp)[0]
        # the centred 320x107 band reaches the 192x64 network: square pixels again, principal point of the band
        assert info.k[0] == pytest.approx(150.0) and info.k[4] == pytest.approx(250 * 64 / 107)
        assert info.k[5] == pytest.approx((120 - 66) * 64 / 107)
        assert len([line for line in s["node"].output.splitlines() if "training geometry" in line]) == 1
    finally:
        (ok,) = client.set_parameters({"resize_mode": "stretch"})
        assert ok.successful
    _send_and_wait(s, 1)  # back to the module's camera


def test_an_unknown_qos_override_is_refused_not_ignored(setup):
    env = ros_env(pick_domain_id("bad_qos"))
    proc = subprocess.run([sys.executable, "-m", "bwdp_ros.vo_node", "--ros-args", "-p", f"checkpoint:={setup['ckpt']}",
                           "-p", "device:=cpu", "-p", "warmup_iterations:=0",
                           "-p", "qos_overrides./imagee.subscription.reliability:=best_effort",
                           "-p", "qos_overrides./odom.publisher.depth:=5"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in out, out
    (error,) = [line for line in out.splitlines() if "[ERROR]" in line]
    assert "qos_overrides./imagee.subscription.reliability" in error.split("this node's are")[0]
    valid = error.split("this node's are")[1]
    assert "qos_overrides./image.subscription.reliability" in valid and "qos_overrides./odom.publisher.depth" in valid
