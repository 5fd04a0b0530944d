"""Every FrameSource on data written by bwdp synth in its layout, through build_sources, plus the bad inputs."""
import cv2
import numpy as np
import pytest
import torch

from bwdp_core.data.bag_io import write_image_bag
from bwdp_core.data.build import build_sources
from bwdp_core.data.kitti_odometry import KittiOdometrySource
from bwdp_core.data.rosbag_source import RosbagSource
from bwdp_core.data.snippets import SnippetDataset
from bwdp_core.data.sources import write_intrinsics_file
from bwdp_core.data.video import VideoSource
from bwdp_core.errors import ConfigError, DataError
from bwdp_core.synth.render import render_sequence
from bwdp_core.synth.write import write_kitti_odometry

N, H, W = 6, 32, 96


@pytest.fixture(scope="module")
def seq():
    return render_sequence(N, H, W, seed=3)


@pytest.fixture(scope="module")
def odom_root(seq, tmp_path_factory):
    root = tmp_path_factory.mktemp("odom")
    write_kitti_odometry(seq, root, "04")
    return root


def _write_folder(seq, folder, cam=True):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(seq.images):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if cam:
        write_intrinsics_file(folder / "cam.txt", seq.K)
    return folder


def _write_video(seq, path):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for image in seq.images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# ------------------------------------------------------------------------------------------------ each layout
def test_kitti_odometry_layout(seq, odom_root):
    for cfg in ({"type": "kitti_odom", "path": str(odom_root)}, {"type": "synth", "path": str(odom_root),
                                                                   "sequences": ["04"]}):
        (src,) = build_sources(cfg)
        assert isinstance(src, KittiOdometrySource) and src.name == "kitti_odom/04"
        assert len(src) == N and src.image_size == (H, W) and src.has_depth
        np.testing.assert_allclose(src.intrinsics, seq.K)
        np.testing.assert_allclose(src.poses, seq.poses, atol=1e-9)
        assert src.timestamps is not None and len(src.timestamps) == N
        for i in (0, N - 1):
            np.testing.assert_array_equal(src.load_image(i), seq.images[i])
            np.testing.assert_array_equal(src.load_depth(i), np.where(seq.depths[i] > 0, seq.depths[i], 0))


def test_image_folder_with_cam_txt_and_given_intrinsics(seq, tmp_path):
    folder = _write_folder(seq, tmp_path / "imgs")
    (src,) = build_sources({"type": "images", "path": str(folder)})
    assert len(src) == N and src.image_size == (H, W) and not src.has_depth and src.poses is None
    np.testing.assert_allclose(src.intrinsics, seq.K)
    np.testing.assert_array_equal(src.load_image(2), seq.images[2])
    fx, fy, cx, cy = 50.0, 51.0, 47.0, 15.0
    expected = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    for given in ([fx, fy, cx, cy], f"{fx} {fy} {cx} {cy}", expected.tolist()):
        (src,) = build_sources({"type": "images", "path": str(folder), "intrinsics": given})
        np.testing.assert_allclose(src.intrinsics, expected)
    (tmp_path / "k.txt").write_text(f"# fx fy cx cy\n{fx} {fy} {cx} {cy}\n")
    (src,) = build_sources({"type": "images", "path": str(folder), "intrinsics": str(tmp_path / "k.txt")})
    np.testing.assert_allclose(src.intrinsics, expected)


def test_video_file(seq, tmp_path):
    video = _write_video(seq, tmp_path / "drive.avi")
    write_intrinsics_file(tmp_path / "cam.txt", seq.K)
    (src,) = build_sources({"type": "video", "path": str(video)})
    assert isinstance(src, VideoSource) and len(src) == N and src.image_size == (H, W)
    np.testing.assert_allclose(src.intrinsics, seq.K)
    np.testing.assert_allclose(src.timestamps, np.arange(N) / 10.0)
    frames = [src.load_image(i) for i in range(N)]
    for frame, image in zip(frames, seq.images):
        assert np.abs(frame.astype(int) - image).mean() < 8  # MJPG is lossy
    for i in (4, 0, 5, 1, 3):  # random access matches sequential decoding
        np.testing.assert_array_equal(src.load_image(i), frames[i])
    fresh = VideoSource(video, intrinsics=seq.K)
    np.testing.assert_array_equal(fresh.load_image(N - 1), frames[N - 1])
    (every_other,) = build_sources({"type": "video", "path": str(video), "frame_step": 2, "snippet_length": 3})
    assert len(every_other) == 3
    np.testing.assert_array_equal(every_other.load_image(2), frames[4])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("compressed", [False, True])
def test_rosbag(seq, tmp_path, storage, compressed):
    stamps = [1_600_000_000_000_000_000 + i * 100_000_000 for i in range(N)]
    bag = write_image_bag(tmp_path / "run", seq.images, stamps, seq.K, storage=storage, compressed=compressed,
                          gt_poses=seq.poses)
    (src,) = build_sources({"type": "rosbag", "path": str(bag), "gt_topic": "/ground_truth/odom"})
    assert isinstance(src, RosbagSource) and len(src) == N and src.image_size == (H, W)
    assert src.image_topic.endswith("/compressed") == compressed and src.info_topic == "/camera/camera_info"
    np.testing.assert_allclose(src.intrinsics, seq.K)
    np.testing.assert_allclose(src.poses, seq.poses, atol=1e-9)
    np.testing.assert_allclose(src.timestamps, np.asarray(stamps) * 1e-9)
    for i in (3, 0, N - 1):
        image = src.load_image(i)
        if compressed:
            assert np.abs(image.astype(int) - seq.images[i]).mean() < 4
        else:
            np.testing.assert_array_equal(image, seq.images[i])
    given = (60.0, 60.0, 47.5, 15.5)
    (src,) = build_sources({"type": "rosbag", "path": str(bag), "intrinsics": list(given)})
    assert src.info_topic is None and src.intrinsics[0, 0] == 60.0


def test_rosbag_camera_info_at_other_resolution_is_rescaled(seq, tmp_path):
    bag = write_image_bag(tmp_path / "half", seq.images, list(range(N)), seq.K)
    src = RosbagSource(bag)
    K_full = src.intrinsics
    # a bag whose CameraInfo describes a 2x larger sensor than the published images
    bag2 = tmp_path / "binned"
    from bwdp_core.data import bag_io as io

    big_K = np.array([[2 * seq.K[0, 0], 0, 2 * seq.K[0, 2] + 0.5], [0, 2 * seq.K[1, 1], 2 * seq.K[1, 2] + 0.5],
                      [0, 0, 1]])
    original = io._camera_info_msg
    io._camera_info_msg = lambda types, stamp, frame, K, h, w: original(types, stamp, frame, big_K, 2 * h, 2 * w)
    try:
        write_image_bag(bag2, seq.images, list(range(N)), seq.K)
    finally:
        io._camera_info_msg = original
    np.testing.assert_allclose(RosbagSource(bag2).intrinsics, K_full)


def test_workers_give_the_same_samples(seq, tmp_path):
    """Video and bag sources reopen their readers inside DataLoader workers; samples equal the in-process ones."""
    bag = write_image_bag(tmp_path / "run", seq.images, list(range(1, N + 1)), seq.K, storage="mcap")
    video = _write_video(seq, tmp_path / "v.avi")
    sources = build_sources([{"type": "rosbag", "path": str(bag)},
                             {"type": "video", "path": str(video), "intrinsics": seq.K.tolist()}])
    dataset = SnippetDataset(sources, 32, 64, augment=True, seed=5)
    reference = [dataset[i] for i in range(len(dataset))]
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False)
    got = [b for batch in loader for b in ({k: v[j] for k, v in batch.items()} for j in range(len(batch["index"])))]
    assert len(got) == len(reference) == 2 * (N - 2)
    for a, b in zip(reference, got):
        for key in ("tgt_img", "ref_imgs", "intrinsics"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ bad inputs
def _raises(cfg, error, *fragments):
    with pytest.raises(error) as info:
        build_sources(cfg)
    for fragment in fragments:
        assert str(fragment) in str(info.value), (str(info.value), fragment)
    return str(info.value)


def test_missing_paths(tmp_path):
    for kind in ("kitti_odom", "kitti_raw", "images", "video", "rosbag"):
        _raises({"type": kind, "path": str(tmp_path / "absent")}, DataError, tmp_path / "absent", "does not exist")
    _raises({"type": "images"}, ConfigError, "needs a 'path'")


def test_config_errors(tmp_path):
    _raises({"type": "lidar", "path": "x"}, ConfigError, "'lidar'")
    _raises({"type": "images", "path": str(tmp_path), "intrinsic": [1, 2, 3, 4]}, ConfigError, "intrinsic")
    _raises({"sources": []}, ConfigError, "non-empty")
    _raises({"type": "synth", "frames": 4}, ConfigError, "height")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    _raises({"type": "images", "path": str(tmp_path / "empty")}, DataError, tmp_path / "empty", "no images")


def test_unreadable_and_odd_sized_images(seq, tmp_path):
    folder = _write_folder(seq, tmp_path / "imgs")
    (folder / "frame_0003.png").write_bytes(b"\x89PNG but truncated garbage")
    _raises({"type": "images", "path": str(folder)}, DataError, folder / "frame_0003.png", "unreadable")
    folder = _write_folder(seq, tmp_path / "imgs2")
    cv2.imwrite(str(folder / "frame_0002.png"), np.zeros((H, W + 2, 3), np.uint8))
    _raises({"type": "images", "path": str(folder)}, DataError, folder / "frame_0002.png", f"{W + 2}x{H}")


def test_wrong_intrinsics(seq, tmp_path):
    folder = _write_folder(seq, tmp_path / "imgs", cam=False)
    _raises({"type": "images", "path": str(folder)}, DataError, folder / "cam.txt", "no intrinsics")
    (folder / "cam.txt").write_text("1 2 3\n4 5\n")
    _raises({"type": "images", "path": str(folder)}, DataError, folder / "cam.txt", "3x3 matrix or fx fy cx cy")
    (folder / "cam.txt").write_text("50 0 48\n0 50 16\n0 0 0\n")
    _raises({"type": "images", "path": str(folder)}, DataError, folder / "cam.txt", "last row must be 0 0 1")
    (folder / "cam.txt").write_text("fx fy cx cy\n")
    _raises({"type": "images", "path": str(folder)}, DataError, folder / "cam.txt", "not numbers")
    _raises({"type": "images", "path": str(folder), "intrinsics": [50, 50, 48]}, DataError, folder, "3 numbers")
    _raises({"type": "images", "path": str(folder), "intrinsics": [-5, 50, 48, 16]}, DataError, "positive fx")


def test_sequence_shorter_than_snippet(seq, tmp_path, odom_root):
    folder = _write_folder(seq, tmp_path / "imgs")
    for f in sorted(folder.glob("*.png"))[2:]:
        f.unlink()
    _raises({"type": "images", "path": str(folder)}, DataError, "imgs", "2 frames", "3 frames at stride 1")
    _raises({"type": "kitti_odom", "path": str(odom_root), "snippet_length": 3, "stride": 3}, DataError,
            "kitti_odom/04", f"{N} frames", "needs", "= 7")
    with pytest.raises(ConfigError, match="odd"):
        SnippetDataset(build_sources({"type": "kitti_odom", "path": str(odom_root)}), 32, 96, snippet_length=4)


def test_broken_kitti_odometry(seq, tmp_path):
    root = tmp_path / "odom"
    write_kitti_odometry(seq, root, "00")
    calib = root / "sequences/00/calib.txt"
    calib.write_text(calib.read_text().replace("P2:", "PX:"))
    _raises({"type": "kitti_odom", "path": str(root)}, DataError, calib, "no P2")
    calib.write_text("P2: 1 2 3\n")
    _raises({"type": "kitti_odom", "path": str(root)}, DataError, calib, "12")
    calib.unlink()
    _raises({"type": "kitti_odom", "path": str(root)}, DataError, calib, "does not exist")
    write_kitti_odometry(seq, tmp_path / "odom2", "00")
    poses = tmp_path / "odom2/poses/00.txt"
    poses.write_text("\n".join(poses.read_text().splitlines()[:-1]) + "\n")
    _raises({"type": "kitti_odom", "path": str(tmp_path / "odom2")}, DataError, poses, f"{N - 1} poses")
    _raises({"type": "kitti_odom", "path": str(tmp_path / "odom2"), "sequences": ["07"]}, DataError,
            tmp_path / "odom2/sequences/07")


def test_bad_video(seq, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    _raises({"type": "video", "path": str(bad), "intrinsics": [50, 50, 48, 16]}, DataError, bad)
    video = _write_video(seq, tmp_path / "ok.avi")
    _raises({"type": "video", "path": str(video)}, DataError, "no intrinsics", "cam.txt")


def test_bad_bags(seq, tmp_path):
    bag = write_image_bag(tmp_path / "run", seq.images, list(range(1, N + 1)), seq.K)
    _raises({"type": "rosbag", "path": str(bag), "image_topic": "/left/image_raw"}, DataError,
            "'/left/image_raw'", "topics present", "/camera/image_raw")
    _raises({"type": "rosbag", "path": str(bag), "info_topic": "/left/camera_info"}, DataError, "'/left/camera_info'")
    _raises({"type": "rosbag", "path": str(bag), "image_topic": "/camera/camera_info"}, DataError,
            "/camera/camera_info", "expected sensor_msgs/msg/Image")
    _raises({"type": "rosbag", "path": str(bag), "gt_topic": "/odom"}, DataError, "'/odom'")
    short = write_image_bag(tmp_path / "short", seq.images[:2], [1, 2], seq.K)
    _raises({"type": "rosbag", "path": str(short)}, DataError, "short", "2 frames")
    not_bag = tmp_path / "notabag"
    not_bag.mkdir()
    _raises({"type": "rosbag", "path": str(not_bag)}, DataError, not_bag, "cannot read bag")


def test_bag_without_camera_info_needs_intrinsics(seq, tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer

    from bwdp_core.data.bag_io import IMAGE_TYPE, get_typestore

    store = get_typestore()
    types = store.types
    path = tmp_path / "noinfo"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/cam/image", IMAGE_TYPE, typestore=store)
        for i, image in enumerate(seq.images):
            header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=i + 1, nanosec=0),
                                                  frame_id="cam")
            msg = types[IMAGE_TYPE](header=header, height=H, width=W, encoding="bgr8", is_bigendian=0, step=3 * W,
                                    data=np.ascontiguousarray(image[..., ::-1]).reshape(-1))
            writer.write(conn, (i + 1) * 10**9, store.serialize_cdr(msg, IMAGE_TYPE))
    _raises({"type": "rosbag", "path": str(path)}, DataError, "no sensor_msgs/CameraInfo", "/cam/image")
    (src,) = build_sources({"type": "rosbag", "path": str(path), "intrinsics": seq.K.tolist()})
    np.testing.assert_array_equal(src.load_image(1), seq.images[1])  # bgr8 decoded to RGB


def test_topic_auto_selection(seq, tmp_path):
    """A bag recorded with image_transport holds X and X/compressed: the raw one is chosen; two cameras need a
    choice."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from bwdp_core.data.bag_io import CAMERA_INFO_TYPE, COMPRESSED_TYPE, IMAGE_TYPE, _camera_info_msg, get_typestore
    from bwdp_core.data.image_msgs import encode_compressed

    store = get_typestore()
    types = store.types

    def header(i):
        return types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=i + 1, nanosec=0),
                                            frame_id="cam")

    def write(path, cameras):
        with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
            for cam in cameras:
                raw = writer.add_connection(f"/{cam}/image_raw", IMAGE_TYPE, typestore=store)
                comp = writer.add_connection(f"/{cam}/image_raw/compressed", COMPRESSED_TYPE, typestore=store)
                info = writer.add_connection(f"/{cam}/camera_info", CAMERA_INFO_TYPE, typestore=store)
                for i, image in enumerate(seq.images):
                    t = (i + 1) * 10**9
                    msg = types[IMAGE_TYPE](header=header(i), height=H, width=W, encoding="rgb8", is_bigendian=0,
                                            step=3 * W, data=image.reshape(-1))
                    writer.write(raw, t, store.serialize_cdr(msg, IMAGE_TYPE))
                    fmt, data = encode_compressed(image, "png")
                    msg = types[COMPRESSED_TYPE](header=header(i), format=fmt, data=np.frombuffer(data, np.uint8))
                    writer.write(comp, t, store.serialize_cdr(msg, COMPRESSED_TYPE))
                    K = seq.K * ([[1], [1], [1]] if cam == "left" else [[2], [2], [1]])
                    writer.write(info, t, store.serialize_cdr(_camera_info_msg(types, t, "cam", K, H, W),
                                                              CAMERA_INFO_TYPE))

    write(tmp_path / "one", ["left"])
    src = RosbagSource(tmp_path / "one")
    assert src.image_topic == "/left/image_raw" and src.info_topic == "/left/camera_info"
    write(tmp_path / "two", ["left", "right"])
    _raises({"type": "rosbag", "path": str(tmp_path / "two")}, DataError, "several image topics",
            "/left/image_raw", "/right/image_raw")
    src = RosbagSource(tmp_path / "two", image_topic="/right/image_raw/compressed")
    assert src.info_topic == "/right/camera_info"
    np.testing.assert_allclose(src.intrinsics[0, 0], 2 * seq.K[0, 0])
    np.testing.assert_array_equal(src.load_image(2), seq.images[2])  # png: lossless
