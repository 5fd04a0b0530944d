"""The node as a robot runs it (real DDS, localhost only): a managed (lifecycle) node, the camera mount read from the
robot's /tf_static (never a second parent), and the tf2_ros lookup path.

Each test starts its own node process (autostart off, or publish_camera_tf against a robot that already parents the
camera frame); a fixture PoseNet answers "+0.05 along the optical z axis", so the mount decides which base_link axis
the odometry moves along.
"""
import math

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable (pip install -e '.[ros]')")
pytest.importorskip("tf2_msgs.msg", reason="tf2_msgs is not importable (bash scripts/build_tf2_msgs.sh .venv)")
pytest.importorskip("lifecycle_msgs.srv", reason="lifecycle_msgs is not importable (comes with ros-rclpy)")
pytest.importorskip("diagnostic_msgs.msg", reason="diagnostic_msgs is not importable (pip install -e '.[ros]')")

from lifecycle_msgs.msg import Transition  # noqa: E402

from bwdp_core.frames import OPTICAL_RPY, transform_from_xyz_rpy  # noqa: E402
from bwdp_ros.conversions import ns_to_stamp, stamp_to_ns, transform_stamped  # noqa: E402
from bwdp_ros.mount import lookup_with_buffer  # noqa: E402
from bwdp_tools.fixtures import make_constant_motion_checkpoint  # noqa: E402
from bwdp_tools.node_process import VoNodeProcess  # noqa: E402
from bwdp_tools.processes import pick_domain_id  # noqa: E402
from bwdp_tools.stream import VoStreamClient  # noqa: E402

pytestmark = pytest.mark.ros
H, W = 64, 192
K = np.array([[150.0, 0, 95.0], [0, 150.0, 31.0], [0, 0, 1]])
STEP = 0.05
FRAME = "robot_cam_optical"
# the robot's URDF: base_link -> robot_cam_link (0.3 m ahead, 0.8 m up, turned to look left) -> optical frame
T_BASE_LINK = transform_from_xyz_rpy((0.3, 0.0, 0.8), (0.0, 0.0, math.pi / 2))
T_LINK_OPTICAL = transform_from_xyz_rpy((0.0, 0.0, 0.0), OPTICAL_RPY)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_constant_motion_checkpoint(tmp_path_factory.mktemp("robot") / "fwd.pt", H, W,
                                           motion=(0, 0, STEP, 0, 0, 0), seed=3)


class Stamps:
    def __init__(self):
        self.ns = 1_700_000_000 * 10**9

    def __call__(self):
        self.ns += 100_000_000
        return self.ns


def _robot_tf_static(client, stamp_ns):
    client.publish_static_transforms([
        transform_stamped(T_BASE_LINK, ns_to_stamp(stamp_ns), "base_link", "robot_cam_link"),
        transform_stamped(T_LINK_OPTICAL, ns_to_stamp(stamp_ns), "robot_cam_link", FRAME)])


def _stream_until_odometry(client, node, stamps, n):
    image = np.random.default_rng(0).integers(0, 255, size=(H, W, 3), dtype=np.uint8)
    assert client.prime(image, K, stamps, timeout=60, frame_id=FRAME), node.output[-3000:]
    client.reset()
    sent = []
    for _ in range(n):
        stamp = stamps()
        client.publish_frame(image, stamp, K, FRAME)
        sent.append(stamp)
        assert client.wait_for(lambda st=stamp: any(stamp_to_ns(m.header.stamp) == st for _, m in client.odom), 60), \
            node.output[-3000:]
    return [client.odom_for_stamp(s) for s in sent]


def _parents_of(client, frame):
    with client._lock:
        return [(t.header.frame_id, t.transform.translation.x) for _, m in client.tf_static for t in m.transforms
                if t.child_frame_id == frame]


def test_lifecycle_transitions_and_the_mount_read_from_the_robots_tf_static(checkpoint, tmp_path):
    domain = pick_domain_id("robot_lifecycle")
    params = {"device": "cpu", "warmup_iterations": 0, "num_threads": 1, "autostart": False,
              "publish_camera_tf": False, "diagnostics_period": 0.5}
    stamps = Stamps()
    with VoStreamClient(domain) as client:
        _robot_tf_static(client, stamps.ns)
        with VoNodeProcess(checkpoint, domain, params=params, log_path=tmp_path / "node.log") as node:
            assert client.lifecycle_state(timeout=60) == "unconfigured", node.output
            assert client.wait_for(lambda: client.diagnostics_matching(lambda s: "unconfigured" in s.message), 30)
            assert client.pub_image.get_subscription_count() == 0      # nothing subscribed before activate

            assert client.change_state(Transition.TRANSITION_CONFIGURE, timeout=120), node.output
            assert client.lifecycle_state() == "inactive"
            assert client.change_state(Transition.TRANSITION_ACTIVATE), node.output
            assert client.lifecycle_state() == "active" and "]: ready:" in node.output
            assert client.wait_for_node(30)
            odoms = _stream_until_odometry(client, node, stamps, 3)
            # the camera looks along base_link +y in the robot's TF: forward camera motion is +y, not +x
            for i, odom in enumerate(odoms):
                p = odom.pose.pose.position
                assert (p.x, p.y, p.z) == pytest.approx((0, STEP * i, 0), abs=1e-5)
            assert "read from TF" in node.output
            assert _parents_of(client, FRAME) == [("robot_cam_link", 0.0)]   # the node published no mount
            refused, = client.set_parameters({"base_frame": "base_footprint"})
            assert not refused.successful and "deactivate" in refused.reason

            assert client.change_state(Transition.TRANSITION_DEACTIVATE)
            assert client.lifecycle_state() == "inactive"
            assert client.wait_for(lambda: client.pub_image.get_subscription_count() == 0, 30)
            accepted, = client.set_parameters({"base_frame": "base_footprint"})
            assert accepted.successful                                  # fine while inactive
            assert client.change_state(Transition.TRANSITION_CLEANUP)
            assert client.lifecycle_state() == "unconfigured"
            assert "Traceback" not in node.output


def test_publish_camera_tf_never_gives_a_parented_frame_a_second_parent(checkpoint, tmp_path):
    domain = pick_domain_id("robot_conflict")
    params = {"device": "cpu", "warmup_iterations": 0, "num_threads": 1, "publish_camera_tf": True}
    stamps = Stamps()
    with VoStreamClient(domain) as client:
        _robot_tf_static(client, stamps.ns)          # the robot already parents FRAME (robot_cam_link)
        with VoNodeProcess(checkpoint, domain, params=params, log_path=tmp_path / "node.log") as node:
            node.wait_ready(120)
            assert client.wait_for_node(30)
            odoms = _stream_until_odometry(client, node, stamps, 2)
            assert odoms[1].pose.pose.position.y == pytest.approx(STEP, abs=1e-5)   # the robot's mount is used
            errors = [line for line in node.output.splitlines() if "[ERROR]" in line]
            assert len(errors) == 1 and "already has the parent 'robot_cam_link'" in errors[0], node.output
            assert _parents_of(client, FRAME) == [("robot_cam_link", 0.0)]


class _FakeBuffer:
    """The two tf2_ros.Buffer calls the mount uses (tf2_ros is not installable here; a robot has it)."""

    def __init__(self, transforms):
        self.transforms = transforms

    def can_transform(self, target, source, time):
        return (target, source) in self.transforms

    def lookup_transform(self, target, source, time):
        return self.transforms[(target, source)]


def test_the_tf2_ros_lookup_path_with_a_buffer():
    T = T_BASE_LINK @ T_LINK_OPTICAL
    buffer = _FakeBuffer({("base_link", FRAME): transform_stamped(T, ns_to_stamp(0), "base_link", FRAME)})
    assert np.allclose(lookup_with_buffer(buffer, "base_link", FRAME), T)
    assert lookup_with_buffer(buffer, "base_link", "other") is None


def test_the_tf2_ros_buffer_path_over_dds(checkpoint, tmp_path):
    tf2_ros = pytest.importorskip("tf2_ros", reason="tf2_ros has no pip wheel here (a robot's ROS install has it); "
                                  "the /tf_static path is tested above, the Buffer lookup with a fake buffer")
    assert tf2_ros.Buffer
    domain = pick_domain_id("robot_tf2")
    params = {"device": "cpu", "warmup_iterations": 0, "num_threads": 1}
    stamps = Stamps()
    with VoStreamClient(domain) as client:
        _robot_tf_static(client, stamps.ns)
        with VoNodeProcess(checkpoint, domain, params=params, log_path=tmp_path / "node.log") as node:
            node.wait_ready(120)
            assert client.wait_for_node(30)
            odoms = _stream_until_odometry(client, node, stamps, 2)
            assert odoms[1].pose.pose.position.y == pytest.approx(STEP, abs=1e-5)
            assert "tf2_ros buffer" in node.output


def test_a_parent_that_appears_later_withdraws_the_published_mount(checkpoint, tmp_path):
    domain = pick_domain_id("robot_late_parent")
    params = {"device": "cpu", "warmup_iterations": 0, "num_threads": 1, "publish_camera_tf": True}
    stamps = Stamps()
    with VoStreamClient(domain) as client, \
            VoNodeProcess(checkpoint, domain, params=params, log_path=tmp_path / "node.log") as node:
        node.wait_ready(120)
        assert client.wait_for_node(30)
        odoms = _stream_until_odometry(client, node, stamps, 2)
        assert odoms[1].pose.pose.position.x == pytest.approx(STEP, abs=1e-5)     # its own mount: optical ahead
        assert client.wait_for(lambda: _node_mounts(client) == [("base_link", FRAME)], 10)
        _robot_tf_static(client, stamps.ns)        # now the robot's URDF comes up and parents the same frame
        assert client.wait_for(lambda: "withdrawn from /tf_static" in node.output, 30), node.output[-3000:]
        # the node replaced its latched mount by an empty message (late joiners get only the robot's) ...
        assert client.wait_for(lambda: any(not m.transforms for _, m in client.tf_static), 10)
        # ... and reads the robot's mount from now on
        odoms = _stream_until_odometry(client, node, stamps, 2)
        assert odoms[1].pose.pose.position.y == pytest.approx(STEP, abs=1e-5)
        assert len([line for line in node.output.splitlines() if "[ERROR]" in line]) == 1


def _node_mounts(client):
    return [(t.header.frame_id, t.child_frame_id) for _, m in client.tf_static for t in m.transforms
            if t.child_frame_id == FRAME and t.header.frame_id == "base_link"]
