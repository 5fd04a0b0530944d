"""Coordinate-frame conventions between the networks (camera optical frame) and ROS (base_link, odom).

Optical frame (REP 103, suffix ``_optical``): x right, y down, z forward -- the frame the networks and the poses in
this project use. Body frame ``base_link`` (REP 103): x forward, y left, z up. ``T_a_b`` maps points of frame b into
frame a (so it is also the pose of b expressed in a).

The camera is mounted on the robot by ``T_base_camera`` (built from xyz + roll/pitch/yaw, ROS fixed-axis convention
R = Rz(yaw) Ry(pitch) Rx(roll)). A camera that looks along the robot's x axis with no offset has
rpy = (-pi/2, 0, -pi/2), whose rotation is :data:`R_BASE_OPTICAL`.

A camera motion ``T_cprev_ccur`` (what the PoseNet estimates, in optical axes) becomes the robot motion
``T_bprev_bcur = T_base_camera @ T_cprev_ccur @ inv(T_base_camera)`` (:func:`camera_motion_to_base`): the mount is
rigid, so the camera pose in odom is ``T_odom_base @ T_base_camera`` at every instant.
"""
from __future__ import annotations

import math

import numpy as np

# Rotation that maps optical-frame coordinates into base_link coordinates for a forward-looking camera:
# optical z (forward) -> base x, optical x (right) -> base -y, optical y (down) -> base -z.
R_BASE_OPTICAL = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])

# The same rotation as ROS roll/pitch/yaw (what `static_transform_publisher` takes for camera_link -> *_optical_frame).
OPTICAL_RPY = (-math.pi / 2.0, 0.0, -math.pi / 2.0)


def rpy_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """ROS fixed-axis roll/pitch/yaw (radians) -> 3x3 rotation R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    rz = np.array([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx


def transform_from_xyz_rpy(xyz, rpy) -> np.ndarray:
    """Translation (3,) + roll/pitch/yaw (3,) -> 4x4 homogeneous transform (e.g. T_base_camera of a camera mount)."""
    T = np.eye(4)
    T[:3, :3] = rpy_to_matrix(*[float(a) for a in rpy])
    T[:3, 3] = [float(v) for v in xyz]
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform: [R t; 0 1]^-1 = [R^T -R^T t; 0 1]."""
    R, t = T[:3, :3], T[:3, 3]
    inv = np.eye(4)
    inv[:3, :3] = R.T
    inv[:3, 3] = -R.T @ t
    return inv


def project_to_so3(R: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (Frobenius norm) to each 3x3 matrix of ``R`` [..., 3, 3]: U·diag(1, 1, det(UVᵀ))·Vᵀ
    from the SVD R = U S Vᵀ. Products of float rotations drift off SO(3) (|RRᵀ − I| ~ 1e-6 after a few hundred
    frames); this puts them back, changing an already orthonormal matrix only at round-off level."""
    R = np.asarray(R, dtype=np.float64)
    U, _, Vt = np.linalg.svd(R)
    d = np.sign(np.linalg.det(U @ Vt))
    d = np.where(d == 0, 1.0, d)
    return (U * np.stack([np.ones_like(d), np.ones_like(d), d], axis=-1)[..., None, :]) @ Vt


def so3_deviation(R: np.ndarray) -> float:
    """max |RRᵀ − I| over a stack of 3x3 matrices [..., 3, 3] (0 for exact rotations)."""
    R = np.asarray(R, dtype=np.float64)
    return float(np.abs(R @ np.swapaxes(R, -1, -2) - np.eye(3)).max()) if R.size else 0.0


def camera_motion_to_base(T_cprev_ccur: np.ndarray, T_base_camera: np.ndarray) -> np.ndarray:
    """Camera motion between two instants (optical axes) -> the rigidly mounted robot's motion (base_link axes).

    T_bprev_bcur = T_base_camera @ T_cprev_ccur @ T_base_camera^-1, all 4x4.
    """
    return T_base_camera @ T_cprev_ccur @ invert_transform(T_base_camera)


def matrix_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """3x3 rotation -> unit quaternion (x, y, z, w) with w >= 0 (ROS message order)."""
    R = np.asarray(R, dtype=np.float64)
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0.0:
        s = 2.0 * math.sqrt(trace + 1.0)
        w, x = 0.25 * s, (R[2, 1] - R[1, 2]) / s
        y, z = (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        w, x = (R[2, 1] - R[1, 2]) / s, 0.25 * s
        y, z = (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        w, x = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s
        y, z = 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        w, x = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s
        y, z = (R[1, 2] + R[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Quaternion (x, y, z, w), normalised here -> 3x3 rotation."""
    q = np.array([x, y, z, w], dtype=np.float64)
    q /= np.linalg.norm(q)
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rotation_to_rotvec(R: np.ndarray) -> np.ndarray:
    """3x3 rotation -> axis * angle (3,) in radians (the log map; angle in [0, pi])."""
    cos_angle = float(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))
    angle = math.acos(cos_angle)
    axis_sin = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    if angle < 1e-6:
        return axis_sin  # sin(angle) ~ angle
    if math.pi - angle < 1e-4:  # near pi: the antisymmetric part vanishes; take the axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(R) + 1.0) / 2.0, 0.0, None))
        k = int(np.argmax(axis))
        signs = np.sign(R[k] + R[:, k])
        signs[k] = 1.0
        axis = axis * np.where(signs == 0, 1.0, signs)
        if float(axis @ axis_sin) < 0.0:  # the residual antisymmetric part still tells the sign
            axis = -axis
        return axis / np.linalg.norm(axis) * angle
    return axis_sin / math.sin(angle) * angle


def with_nearest_rotation(T: np.ndarray) -> np.ndarray:
    """Copy of the 4x4 transform(s) ``T`` [..., 4, 4] whose rotation block is replaced by the nearest rotation
    (:func:`project_to_so3`; det +1) and whose bottom row is [0, 0, 0, 1].

    Chaining float poses drifts off SO(3) (~1e-6 after a few hundred frames), which evo and other tools refuse.
    """
    out = np.array(T, dtype=np.float64, copy=True)
    out[..., :3, :3] = project_to_so3(out[..., :3, :3])
    out[..., 3, :] = (0.0, 0.0, 0.0, 1.0)
    return out
