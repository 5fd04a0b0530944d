"""ROS-free rosbag2 reading and writing with the ``rosbags`` library (no ROS install needed).

Writing: :func:`write_image_bag` stores a camera stream as ``sensor_msgs/msg/Image`` (or ``CompressedImage``) plus a
``sensor_msgs/msg/CameraInfo`` per frame, and optionally ground-truth ``nav_msgs/msg/Odometry``, in MCAP or sqlite3.
Reading: :func:`list_topics`, :func:`iter_messages` (deserialised messages in time order) and small converters from a
deserialised message to numpy (:func:`image_from_msg`, :func:`intrinsics_from_camera_info`, :func:`pose_from_odometry`).

A bag path may be the rosbag2 directory (with ``metadata.yaml``) or a single ``.mcap`` / ``.db3`` file.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores
from rosbags.typesys import get_typestore as rosbags_get_typestore

from bwdp_core.data.image_msgs import decode_compressed, decode_image, encode_compressed
from bwdp_core.data.sources import as_intrinsics
from bwdp_core.errors import DataError
from bwdp_core.frames import matrix_to_quaternion, quaternion_to_matrix

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)

_typestore_cache = None


def get_typestore():
    """The rosbags typestore of the newest ROS 2 distribution this rosbags version knows (Kilted when available)."""
    global _typestore_cache
    if _typestore_cache is None:
        for name in ("ROS2_KILTED", "ROS2_JAZZY", "ROS2_HUMBLE", "LATEST"):
            store = getattr(Stores, name, None)
            if store is not None:
                _typestore_cache = rosbags_get_typestore(store)
                break
    return _typestore_cache


# ----------------------------------------------------------------------------------------------------------- writing
def _stamp(types, stamp_ns: int):
    stamp_ns = int(stamp_ns)
    return types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def _header(types, stamp_ns: int, frame_id: str):
    return types["std_msgs/msg/Header"](stamp=_stamp(types, stamp_ns), frame_id=frame_id)


def _camera_info_msg(types, stamp_ns, frame_id, K, height, width):
    K = np.asarray(K, dtype=np.float64)
    P = np.zeros((3, 4))
    P[:, :3] = K
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types[CAMERA_INFO_TYPE](
        header=_header(types, stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=K.reshape(9), r=np.eye(3).reshape(9), p=P.reshape(12), binning_x=0, binning_y=0, roi=roi,
    )


def _odometry_msg(types, stamp_ns, world_frame, child_frame, pose):
    pose = np.asarray(pose, dtype=np.float64)
    qx, qy, qz, qw = matrix_to_quaternion(pose[:3, :3])
    geo = "geometry_msgs/msg/"
    point = types[geo + "Point"](x=float(pose[0, 3]), y=float(pose[1, 3]), z=float(pose[2, 3]))
    quat = types[geo + "Quaternion"](x=float(qx), y=float(qy), z=float(qz), w=float(qw))
    zero3 = types[geo + "Vector3"](x=0.0, y=0.0, z=0.0)
    return types[ODOMETRY_TYPE](
        header=_header(types, stamp_ns, world_frame), child_frame_id=child_frame,
        pose=types[geo + "PoseWithCovariance"](pose=types[geo + "Pose"](position=point, orientation=quat),
                                               covariance=np.zeros(36)),
        twist=types[geo + "TwistWithCovariance"](twist=types[geo + "Twist"](linear=zero3, angular=zero3),
                                                 covariance=np.zeros(36)),
    )


def write_image_bag(
    path,
    images: Iterable[np.ndarray],
    stamps_ns: Sequence[int],
    K,
    image_topic: str | None = None,
    info_topic: str = "/camera/camera_info",
    frame_id: str = "camera_optical_frame",
    storage: str = "mcap",
    compressed: bool = False,
    gt_poses=None,
    gt_topic: str = "/ground_truth/odom",
    world_frame: str = "world",
    codec: str = "jpeg",
    overwrite: bool = False,
) -> Path:
    """Write a rosbag2 directory at ``path`` holding one camera stream; returns the bag path.

    images: iterable of uint8 RGB arrays [H, W, 3] (all the same size); stamps_ns: one int timestamp (ns) per image,
    used as header stamp and bag receive time. K: 3x3 intrinsics at the image size. image_topic defaults to
    ``/camera/image_raw`` (``sensor_msgs/Image``, encoding rgb8) or, with ``compressed=True``,
    ``/camera/image_raw/compressed`` (``sensor_msgs/CompressedImage``, ``codec`` jpeg (quality 95) or png).
    A ``CameraInfo`` with the same stamp goes to ``info_topic`` for every image. gt_poses: optional camera-to-world
    4x4 poses, one per image, written as ``nav_msgs/Odometry`` on ``gt_topic`` (header.frame_id = world_frame,
    child_frame_id = frame_id). storage: ``"mcap"`` or ``"sqlite3"``. Raises DataError for bad arguments.
    """
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise DataError(f"unknown bag storage {storage!r} (use mcap or sqlite3)")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise DataError(f"intrinsics for {path} must be a finite 3x3 matrix, got shape {K.shape}")
    stamps = [int(s) for s in stamps_ns]
    if any(b < a for a, b in zip(stamps, stamps[1:])):
        raise DataError(f"image timestamps for {path} are not in increasing order")
    poses = None if gt_poses is None else np.asarray(gt_poses, dtype=np.float64)
    if poses is not None and (poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) != len(stamps)):
        raise DataError(f"gt_poses for {path} must be [N,4,4] with N = {len(stamps)} images, got {poses.shape}")
    if image_topic is None:
        image_topic = "/camera/image_raw/compressed" if compressed else "/camera/image_raw"

    path = Path(path)
    if path.exists():
        if not overwrite:
            raise DataError(f"bag {path} exists already (pass overwrite=True to replace it)")
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    typestore = get_typestore()
    types = typestore.types
    writer = Writer(path, version=9, storage_plugin=plugins[storage])
    written = 0
    try:
        writer.open()
        image_conn = writer.add_connection(image_topic, COMPRESSED_TYPE if compressed else IMAGE_TYPE,
                                           typestore=typestore)
        info_conn = writer.add_connection(info_topic, CAMERA_INFO_TYPE, typestore=typestore)
        gt_conn = writer.add_connection(gt_topic, ODOMETRY_TYPE, typestore=typestore) if poses is not None else None
        for count, image in enumerate(images):
            if count >= len(stamps):
                raise DataError(f"more images than timestamps ({len(stamps)}) for bag {path}")
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise DataError(f"image {count} for bag {path} is not uint8 [H,W,3] RGB: {image.dtype} {image.shape}")
            height, width = image.shape[:2]
            stamp = stamps[count]
            header = _header(types, stamp, frame_id)
            if compressed:
                fmt, payload = encode_compressed(image, codec)
                msg = types[COMPRESSED_TYPE](header=header, format=fmt, data=np.frombuffer(payload, np.uint8))
                writer.write(image_conn, stamp, typestore.serialize_cdr(msg, COMPRESSED_TYPE))
            else:
                msg = types[IMAGE_TYPE](header=header, height=height, width=width, encoding="rgb8", is_bigendian=0,
                                        step=width * 3, data=np.ascontiguousarray(image).reshape(-1))
                writer.write(image_conn, stamp, typestore.serialize_cdr(msg, IMAGE_TYPE))
            info = _camera_info_msg(types, stamp, frame_id, K, height, width)
            writer.write(info_conn, stamp, typestore.serialize_cdr(info, CAMERA_INFO_TYPE))
            if gt_conn is not None:
                odom = _odometry_msg(types, stamp, world_frame, frame_id, poses[count])
                writer.write(gt_conn, stamp, typestore.serialize_cdr(odom, ODOMETRY_TYPE))
            written += 1
    finally:
        writer.close()
    if written != len(stamps):
        raise DataError(f"bag {path}: got {written} images but {len(stamps)} timestamps")
    return path


# ----------------------------------------------------------------------------------------------------------- reading
def open_reader(path):
    """An opened ``rosbags.highlevel.AnyReader`` on the bag at ``path`` (close it, or use it as a context manager)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=get_typestore())
        reader.open()
    except Exception as err:  # rosbags raises several error types (and FileNotFoundError) for unreadable bags
        raise DataError(f"cannot read bag {path}: {err}") from err
    return reader


def _topics_of(reader) -> dict[str, str]:
    return {conn.topic: conn.msgtype for conn in reader.connections}


def list_topics(path) -> dict[str, str]:
    """``{topic: message type}`` of every topic in the bag (types as ``pkg/msg/Name``)."""
    reader = open_reader(path)
    try:
        return dict(sorted(_topics_of(reader).items()))
    finally:
        reader.close()


def topic_connections(reader, path, topic: str, allowed_types: Sequence[str] | None = None) -> list:
    """The reader's connections of ``topic``; DataError naming the topics present when it is missing or mistyped."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        present = ", ".join(f"{t} ({m})" for t, m in sorted(_topics_of(reader).items())) or "none"
        raise DataError(f"topic {topic!r} is not in bag {path}; topics present: {present}")
    if allowed_types is not None:
        wrong = [c.msgtype for c in conns if c.msgtype not in allowed_types]
        if wrong:
            raise DataError(f"topic {topic!r} in bag {path} has type {wrong[0]}, expected {' or '.join(allowed_types)}")
    return conns


def iter_messages(path, topic: str, start_ns: int | None = None,
                  stop_ns: int | None = None) -> Iterator[tuple[int, object]]:
    """Yield ``(bag timestamp ns, deserialised rosbags message)`` for every message of ``topic``, in time order.

    ``start_ns`` / ``stop_ns`` restrict to bag times in ``[start_ns, stop_ns)``. DataError when the bag or the topic
    does not exist (the message lists the topics present) or a message cannot be deserialised.
    """
    reader = open_reader(path)
    try:
        conns = topic_connections(reader, path, topic)
        for conn, stamp, raw in reader.messages(connections=conns, start=start_ns, stop=stop_ns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as err:
                raise DataError(f"cannot deserialise a {conn.msgtype} message on {topic!r} in bag {path}: "
                                f"{err}") from err
            yield stamp, msg
    finally:
        reader.close()


# ------------------------------------------------------------------------------------------------------ conversions
def stamp_ns_of(msg) -> int:
    """``header.stamp`` of a deserialised message, in integer nanoseconds."""
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def image_from_msg(msg, msgtype: str | None = None) -> np.ndarray:
    """Deserialised ``Image`` or ``CompressedImage`` -> uint8 RGB [H, W, 3] (DataError when it cannot be decoded)."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return decode_compressed(msg.format, msg.data)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))


def intrinsics_from_camera_info(msg, where: str = "camera_info") -> np.ndarray:
    """``CameraInfo.k`` -> float64 3x3; DataError when it is not a calibrated pinhole matrix (all zero: uncalibrated).

    The rule is the project's one camera-matrix rule, :func:`bwdp_core.data.sources.as_intrinsics` (see
    :mod:`bwdp_core.inference.intrinsics`, the picker of the node and `bwdp replay`, which applies the same rule).
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    try:
        if k.size != 9:
            raise DataError(f"K must be 9 numbers, got {k.size}")
        return as_intrinsics(k, where)
    except DataError as err:
        raise DataError(f"{where}: camera intrinsics are not a calibrated pinhole matrix ({err}); "
                        "give the intrinsics explicitly") from None


def pose_from_odometry(msg) -> np.ndarray:
    """``nav_msgs/Odometry`` pose -> 4x4 float64 (child frame to header frame)."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(q.x, q.y, q.z, q.w)
    T[:3, 3] = [p.x, p.y, p.z]
    return T
