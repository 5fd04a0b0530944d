"""bags/io.py: rosbag2 written with rosbags (MCAP and sqlite3, raw and compressed) reads back exactly."""
import numpy as np
import pytest

from bwdp_core.data.bag_io import (
    image_from_msg,
    intrinsics_from_camera_info,
    iter_messages,
    list_topics,
    pose_from_odometry,
    stamp_ns_of,
    write_image_bag,
)
from bwdp_core.errors import DataError

K = np.array([[40.0, 0.0, 23.5], [0.0, 41.0, 15.5], [0.0, 0.0, 1.0]])


def _images(n=4, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 5, y * 7, (x + y) * 3], axis=2)
    return [np.clip(base + rng.integers(0, 20) + 10 * i, 0, 255).astype(np.uint8) for i in range(n)]


def _poses(n=4):
    from scipy.spatial.transform import Rotation

    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        poses[i, :3, :3] = Rotation.from_euler("xyz", [0.01 * i, 0.2 * i, -0.05 * i]).as_matrix()
        poses[i, :3, 3] = [0.1 * i, -0.02 * i, 1.3 * i]
    return poses


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True])
def test_write_read_round_trip(tmp_path, storage, compressed):
    images, poses = _images(), _poses()
    stamps = [1_700_000_000_123_456_789 + i * 100_000_000 for i in range(len(images))]
    bag = write_image_bag(tmp_path / "bag", iter(images), stamps, K, storage=storage, compressed=compressed,
                          gt_poses=poses)
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert (bag / "metadata.yaml").is_file() and list(bag.glob("*" + suffix))
    image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"
    assert list_topics(bag) == {
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        image_topic: "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image",
        "/ground_truth/odom": "nav_msgs/msg/Odometry",
    }
    msgs = list(iter_messages(bag, image_topic))
    assert [t for t, _ in msgs] == stamps
    assert [stamp_ns_of(m) for _, m in msgs] == stamps
    for (_, msg), image in zip(msgs, images):
        assert msg.header.frame_id == "camera_optical_frame"
        decoded = image_from_msg(msg)
        if compressed:
            assert np.abs(decoded.astype(int) - image).mean() < 3
        else:
            np.testing.assert_array_equal(decoded, image)
    infos = list(iter_messages(bag, "/camera/camera_info"))
    assert len(infos) == len(images)
    np.testing.assert_array_equal(intrinsics_from_camera_info(infos[0][1]), K)
    assert (infos[0][1].width, infos[0][1].height) == (48, 32)
    odom = list(iter_messages(bag, "/ground_truth/odom"))
    np.testing.assert_allclose(np.stack([pose_from_odometry(m) for _, m in odom]), poses, atol=1e-9)
    assert odom[0][1].child_frame_id == "camera_optical_frame"


def test_single_storage_file_is_accepted(tmp_path):
    bag = write_image_bag(tmp_path / "bag", _images(2), [1, 2], K)
    mcap_file = next(bag.glob("*.mcap"))
    assert "/camera/image_raw" in list_topics(mcap_file)
    assert len(list(iter_messages(mcap_file, "/camera/image_raw"))) == 2


def test_time_window(tmp_path):
    bag = write_image_bag(tmp_path / "bag", _images(5), [10, 20, 30, 40, 50], K, storage="sqlite3")
    assert [t for t, _ in iter_messages(bag, "/camera/image_raw", start_ns=20, stop_ns=40)] == [20, 30]


def test_missing_bag_and_topic(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_topics(tmp_path / "nope")
    with pytest.raises(DataError, match="does not exist"):
        list(iter_messages(tmp_path / "nope", "/camera/image_raw"))
    bag = write_image_bag(tmp_path / "bag", _images(2), [1, 2], K)
    with pytest.raises(DataError, match=r"'/camera/left'.*topics present: /camera/camera_info .*/camera/image_raw"):
        list(iter_messages(bag, "/camera/left"))


def test_not_a_bag(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(DataError, match="cannot read bag"):
        list_topics(folder)
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap file at all")
    with pytest.raises(DataError, match="cannot read bag"):
        list_topics(junk)


def test_bad_write_arguments(tmp_path):
    with pytest.raises(DataError, match="3x3"):
        write_image_bag(tmp_path / "a", _images(1), [1], np.eye(4))
    with pytest.raises(DataError, match="storage"):
        write_image_bag(tmp_path / "b", _images(1), [1], K, storage="rosbag1")
    with pytest.raises(DataError, match="increasing"):
        write_image_bag(tmp_path / "c", _images(2), [5, 1], K)
    with pytest.raises(DataError, match="gt_poses"):
        write_image_bag(tmp_path / "d", _images(2), [1, 2], K, gt_poses=np.eye(4)[None])
    with pytest.raises(DataError, match="uint8"):
        write_image_bag(tmp_path / "e", [np.zeros((4, 4), np.float32)], [1], K)
    with pytest.raises(DataError, match="2 images but 3 timestamps"):
        write_image_bag(tmp_path / "f", _images(2), [1, 2, 3], K)
    write_image_bag(tmp_path / "g", _images(1), [1], K)
    with pytest.raises(DataError, match="exists already"):
        write_image_bag(tmp_path / "g", _images(1), [1], K)
    write_image_bag(tmp_path / "g", _images(2), [1, 2], K, overwrite=True)
    assert len(list(iter_messages(tmp_path / "g", "/camera/image_raw"))) == 2


def test_uncalibrated_camera_info_is_rejected(tmp_path):
    bag = write_image_bag(tmp_path / "bag", _images(1), [1], np.array([[0, 0, 0], [0, 0, 0], [0, 0, 1.0]]))
    (_, info), = iter_messages(bag, "/camera/camera_info")
    with pytest.raises(DataError, match="not a calibrated pinhole"):
        intrinsics_from_camera_info(info, "topic /camera/camera_info")
