"""Hostile input never kills the node: >= 200 bad messages of every kind, then good frames are still answered."""
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable (pip install -e '.[ros]')")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not importable (bash scripts/build_tf2_msgs.sh .venv)")

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from bwdp_core.data.image_msgs import encode_compressed  # noqa: E402
from bwdp_ros.conversions import ns_to_stamp, stamp_to_ns  # noqa: E402
from bwdp_tools.fixtures import make_constant_motion_checkpoint  # noqa: E402
from bwdp_tools.node_process import VoNodeProcess  # noqa: E402
from bwdp_tools.processes import pick_domain_id  # noqa: E402
from bwdp_tools.stream import VoStreamClient, make_camera_info_msg  # noqa: E402

pytestmark = pytest.mark.ros
H, W = 128, 384
K = np.array([[300.0, 0, 190.0], [0, 300.0, 62.0], [0, 0, 1]])
FRAME = "cam"


class Stamps:
    def __init__(self):
        self.ns = 1_700_000_000 * 10**9

    def next(self):
        self.ns += 100_000_000
        return self.ns


def _image(stamps, encoding="rgb8", height=H, width=W, step=None, data=None, bigendian=0):
    msg = Image()
    msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamps.next()), FRAME
    msg.height, msg.width, msg.encoding, msg.is_bigendian = height, width, encoding, bigendian
    msg.step = width * 3 if step is None else step
    msg.data = b"" if data is None else bytes(data)
    return msg


def _info(stamps, k=K, height=H, width=W):
    info = make_camera_info_msg(np.eye(3), height, width, stamps.ns, FRAME)
    info.k = [float(x) for x in np.asarray(k, dtype=np.float64).reshape(9)]
    return info


def hostile_images(stamps, rng):
    """One round of every kind of bad raw image (the caller repeats rounds with fresh stamps)."""
    good = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8).tobytes()
    nan_img = np.full((H, W), 0.5, np.float32)
    nan_img[3, 5] = np.nan
    inf_img = np.full((H, W), 0.5, np.float32)
    inf_img[7, 1] = np.inf
    return [
        _image(stamps, "jpeg2000", data=good),                                  # unsupported encodings
        _image(stamps, "", data=good),
        _image(stamps, "64FC1", step=W * 8, data=bytes(H * W * 8)),
        _image(stamps, "rgb8", 0, 0, 0, b""),                                   # zero sizes
        _image(stamps, "rgb8", 0, W, W * 3, b""),
        _image(stamps, "bayer_rggb8", H, W - 1, W - 1, bytes(H * (W - 1))),    # odd size for a Bayer mosaic
        _image(stamps, "yuv422", H, W - 1, (W - 1) * 2, bytes(H * (W - 1) * 2)),
        _image(stamps, "rgb8", step=W * 3 - 1, data=good[: H * (W * 3 - 1)]),  # step too small
        _image(stamps, "rgb8", data=good[:-1]),                                 # data shorter than step * height
        _image(stamps, "rgb8", data=good + b"\0" * 7),                          # data longer
        _image(stamps, "mono16", step=W * 2 + 1, data=bytes((W * 2 + 1) * H)),  # step not whole pixels
        _image(stamps, "32FC1", step=W * 4, data=nan_img.tobytes()),           # NaN / Inf float images
        _image(stamps, "32FC1", step=W * 4, data=inf_img.tobytes()),
        _image(stamps, "rgb8", 1 << 20, 1 << 20, 3 << 20, good[:100]),          # absurd claimed size
        _image(stamps, "rgb8", 96, 288, 288 * 3, good[: 96 * 288 * 3]),        # size changed mid-stream
    ]


def hostile_camera_infos(stamps):
    return [
        _info(stamps, k=np.zeros((3, 3))),                                      # all zero (uncalibrated)
        _info(stamps, k=np.full((3, 3), np.nan)),
        _info(stamps, height=0, width=0),
    ]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_constant_motion_checkpoint(tmp_path_factory.mktemp("hostile") / "fwd.pt", 64, 192,
                                           motion=(0, 0, 0.05, 0, 0, 0))


def _answered(client, stamp):
    return any(stamp_to_ns(m.header.stamp) == stamp for _, m in client.odom)


def test_raw_node_survives_hostile_input(ckpt, tmp_path):
    domain = pick_domain_id("test_ros_hostile_raw")
    rng = np.random.default_rng(1)
    stamps = Stamps()
    params = {"device": "cpu", "warmup_iterations": 1, "num_threads": 1, "diagnostics_period": 1.0,
              "log_throttle_period": 2.0}
    good = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    with VoNodeProcess(ckpt, domain, params=params, log_path=tmp_path / "node.log") as node, \
            VoStreamClient(domain) as client:
        node.wait_ready(120)
        assert client.wait_for_node(30)
        # no camera_info yet: images are refused (log + wait); then an all-zero one: still waiting
        sent, deadline = 0, time.monotonic() + 30
        while "no camera_info received" not in node.output and time.monotonic() < deadline:
            client.publish(_image(stamps, data=good.tobytes()))  # repeated: the first samples may be lost to discovery
            time.sleep(0.1)
            sent += 1
        for msg in hostile_camera_infos(stamps):
            client.publish_camera_info(msg)
            time.sleep(0.05)
            client.publish(_image(stamps, data=good.tobytes()))
            sent += 2
        assert client.wait_for(lambda: "waiting" in node.output, 20), node.output
        assert len(client.odom) == 0
        # a valid camera_info, then rounds of bad images and bad camera_infos
        client.publish_camera_info(_info(stamps))
        time.sleep(0.2)
        for _ in range(14):
            for msg in hostile_images(stamps, rng):
                client.publish(msg)
                sent += 1
                time.sleep(0.01)
            for msg in hostile_camera_infos(stamps):
                client.publish_camera_info(msg)
                sent += 1
        assert sent >= 200
        # a burst at 10x the rate of good frames (100 Hz)
        for _ in range(40):
            client.publish_frame(good, stamps.next(), K, FRAME)
            time.sleep(0.01)
        # the node still answers good frames
        for _ in range(3):
            stamp = stamps.next()
            client.publish_frame(good, stamp, K, FRAME)
            assert client.wait_for(lambda stamp=stamp: _answered(client, stamp), 60), node.output[-4000:]
        # the burst overflowed the keep-latest slot: /diagnostics counts the dropped frames
        assert client.wait_for(lambda: client.diagnostics_matching(lambda st: _dropped_total(st) > 0), 30)
        time.sleep(1.5)
        assert node.alive()
    out = node.output
    assert "Traceback" not in out
    for reason in ("unsupported image encoding", "zero or negative size", "even", "step", "NaN/Inf",
                   "does not match camera_info", "no usable intrinsics", "no camera_info received"):
        assert reason in out, reason
    skipped = [ln for ln in out.splitlines() if "frame skipped" in ln or "camera_info rejected" in ln]
    assert 5 <= len(skipped) < sent / 3, len(skipped)  # throttled: far fewer lines than bad messages


def _dropped_total(status) -> int:
    values = {kv.key: kv.value for kv in status.values}
    return int(values.get("frames received / dropped since start", "0 / 0").split("/")[1])


def test_compressed_node_with_intrinsics_parameters_survives_corrupt_data(ckpt, tmp_path):
    domain = pick_domain_id("test_ros_hostile_compressed")
    rng = np.random.default_rng(2)
    stamps = Stamps()
    params = {"device": "cpu", "warmup_iterations": 1, "num_threads": 1, "use_compressed": True,
              "fx": 300.0, "fy": 300.0, "cx": 190.0, "cy": 62.0, "log_throttle_period": 2.0}
    image = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    fmt, jpeg = encode_compressed(image, "jpeg")

    def compressed(data, fmt=fmt):
        msg = CompressedImage()
        msg.header.stamp, msg.header.frame_id = ns_to_stamp(stamps.next()), FRAME
        msg.format, msg.data = fmt, bytes(data)
        return msg

    with VoNodeProcess(ckpt, domain, params=params, log_path=tmp_path / "node.log") as node, \
            VoStreamClient(domain, compressed=True) as client:
        node.wait_ready(120)
        assert client.wait_for(lambda: client.pub_image.get_subscription_count() > 0, 30)
        for _ in range(30):
            for data in (b"", rng.bytes(500), jpeg[: len(jpeg) // 3], b"\xff\xd8\xff" + rng.bytes(100)):
                client.publish(compressed(data))
                time.sleep(0.01)
            client.publish(compressed(jpeg, fmt="16UC1; compressedDepth"))
        # no camera_info was ever sent: the fx/fy/cx/cy parameters are used
        stamp = None
        for _ in range(60):
            msg = compressed(jpeg)
            stamp = stamp_to_ns(msg.header.stamp)
            client.publish(msg)
            if client.wait_for(lambda stamp=stamp: _answered(client, stamp), 1.0):
                break
        assert _answered(client, stamp), node.output[-3000:]
        assert client.wait_for(lambda: len(client.depth_info) > 0, 5)
        info = client.depth_info[-1][1]
        assert np.allclose(np.reshape(info.k, (3, 3)), [[150, 0, 95], [0, 150, 31], [0, 0, 1]])
        assert node.alive()
    out = node.output
    assert "Traceback" not in out and "corrupt" in out and "compressedDepth" in out
