"""ROS message <-> numpy conversions for the VO node (no math: poses come computed from bwdp_core).

Image decoding is bwdp_core.data.image_msgs (the same code `bwdp replay` and the rosbag dataset use); a CameraInfo only
gives its numbers here, the rule for them is bwdp_core.inference.intrinsics (the same picker `bwdp replay` uses).
"""
from __future__ import annotations

import sys
from typing import Optional

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseStamped, Transform, TransformStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from bwdp_core.data.image_msgs import decode_compressed, decode_image
from bwdp_core.frames import matrix_to_quaternion, quaternion_to_matrix


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def image_to_rgb(msg) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> uint8 RGB [H,W,3]; DataError with the reason when unusable."""
    if isinstance(msg, CompressedImage):
        return decode_compressed(msg.format, msg.data)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))


def camera_info_numbers(msg: CameraInfo) -> tuple[list[float], int, int]:
    """CameraInfo -> (k: its 9 numbers, height, width), unchecked (bwdp_core.inference.intrinsics checks them)."""
    return [float(x) for x in msg.k], int(msg.height), int(msg.width)


def depth_to_image(depth: np.ndarray, header: Header) -> Image:
    """float32 [h,w] metres (NaN invalid) -> sensor_msgs/Image 32FC1 with the given header (REP 118)."""
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(depth.shape[0]), int(depth.shape[1])
    msg.encoding = "32FC1"
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = msg.width * 4
    msg.data = depth.tobytes()
    return msg


def depth_camera_info(K_depth: np.ndarray, size_hw: tuple[int, int], header: Header) -> CameraInfo:
    """CameraInfo of the depth image (REP 118, what depth_image_proc reads): K and P at the depth size, R identity, no
    distortion -- the network image is the rectified input resized (or centre-cropped, then resized)."""
    info = CameraInfo()
    info.header = header
    info.height, info.width = int(size_hw[0]), int(size_hw[1])
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [float(x) for x in np.asarray(K_depth, dtype=np.float64).reshape(9)]
    info.r = [float(x) for x in np.eye(3).reshape(9)]
    P = np.zeros((3, 4))
    P[:, :3] = K_depth
    info.p = [float(x) for x in P.reshape(12)]
    return info


def matrix_to_pose(T: np.ndarray) -> Pose:
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in T[:3, 3])
    q = matrix_to_quaternion(T[:3, :3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = q
    return pose


def matrix_to_transform(T: np.ndarray) -> Transform:
    tf = Transform()
    tf.translation.x, tf.translation.y, tf.translation.z = (float(v) for v in T[:3, 3])
    q = matrix_to_quaternion(T[:3, :3])
    tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w = q
    return tf


def transform_stamped(T: np.ndarray, stamp: Time, parent: str, child: str) -> TransformStamped:
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    msg.transform = matrix_to_transform(T)
    return msg


def odometry_msg(T_odom_base: np.ndarray, linear, angular, stamp: Time, odom_frame: str, base_frame: str,
                 pose_covariance: list, twist_covariance: list) -> Odometry:
    """nav_msgs/Odometry: pose in odom_frame, twist in base_frame (the child frame), covariances row-major 6x6."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = odom_frame
    msg.child_frame_id = base_frame
    msg.pose.pose = matrix_to_pose(T_odom_base)
    msg.pose.covariance = [float(x) for x in pose_covariance]
    msg.twist.twist.linear.x, msg.twist.twist.linear.y, msg.twist.twist.linear.z = (float(v) for v in linear)
    msg.twist.twist.angular.x, msg.twist.twist.angular.y, msg.twist.twist.angular.z = (float(v) for v in angular)
    msg.twist.covariance = [float(x) for x in twist_covariance]
    return msg


def pose_stamped(T: np.ndarray, stamp: Time, frame: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame
    msg.pose = matrix_to_pose(T)
    return msg


# ----------------------------------------------------------------------------------------------------------------------
# point cloud, TF in, diagnostics
# ----------------------------------------------------------------------------------------------------------------------
_CLOUD_FIELDS = (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))  # all FLOAT32; rgb packed 0x00RRGGBB (PCL convention)


def point_cloud_msg(points: np.ndarray, rgb: Optional[np.ndarray], header: Header) -> PointCloud2:
    """points float32 [N,3] (+ uint8 colours [N,3]) -> unorganised, NaN-free sensor_msgs/PointCloud2 (x y z [rgb])."""
    fields = _CLOUD_FIELDS if rgb is not None else _CLOUD_FIELDS[:3]
    byte_order = ">" if sys.byteorder == "big" else "<"
    dtype = np.dtype({"names": [name for name, _ in fields], "formats": [byte_order + "f4"] * len(fields),
                      "offsets": [offset for _, offset in fields], "itemsize": 4 * len(fields)})
    records = np.zeros(len(points), dtype=dtype)
    for axis, name in enumerate("xyz"):
        records[name] = points[:, axis]
    if rgb is not None:
        rgb = np.asarray(rgb, dtype=np.uint32)
        packed = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        records["rgb"] = packed.astype(byte_order + "u4").view(byte_order + "f4")
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, len(points)
    msg.fields = [PointField(name=name, offset=offset, datatype=PointField.FLOAT32, count=1) for name, offset in fields]
    msg.is_bigendian = sys.byteorder == "big"
    msg.point_step = dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = True
    msg.data = records.tobytes()
    return msg


def transform_to_matrix(tf: Transform) -> np.ndarray:
    """geometry_msgs/Transform -> 4x4 float64."""
    T = np.eye(4)
    r = tf.rotation
    T[:3, :3] = quaternion_to_matrix(r.x, r.y, r.z, r.w)
    T[:3, 3] = (tf.translation.x, tf.translation.y, tf.translation.z)
    return T


def diagnostic_array(name: str, hardware_id: str, level: int, message: str, values, stamp: Time) -> DiagnosticArray:
    """One diagnostic_msgs/DiagnosticStatus (values: (key, text) pairs) in a DiagnosticArray."""
    status = DiagnosticStatus(level=bytes([int(level)]), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=str(k), value=str(v)) for k, v in values])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
