"""Frame conventions: REP 103 optical rotation, rpy, expressing optical-frame motion in base_link."""
import math

import numpy as np
import pytest

from bwdp_core.frames import (
    OPTICAL_RPY,
    R_BASE_OPTICAL,
    camera_motion_to_base,
    invert_transform,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_to_rotvec,
    rpy_to_matrix,
    transform_from_xyz_rpy,
    with_nearest_rotation,
)


def test_optical_rpy_is_the_rep103_optical_rotation():
    assert np.allclose(rpy_to_matrix(*OPTICAL_RPY), R_BASE_OPTICAL, atol=1e-12)
    # optical z (forward) is base +x, optical x (right) is base -y, optical y (down) is base -z
    assert np.allclose(R_BASE_OPTICAL @ [0, 0, 1], [1, 0, 0])
    assert np.allclose(R_BASE_OPTICAL @ [1, 0, 0], [0, -1, 0])
    assert np.allclose(R_BASE_OPTICAL @ [0, 1, 0], [0, 0, -1])


def test_rpy_single_axes():
    assert np.allclose(rpy_to_matrix(0, 0, math.pi / 2) @ [1, 0, 0], [0, 1, 0])  # yaw left turns x into y
    assert np.allclose(rpy_to_matrix(0, math.pi / 2, 0) @ [1, 0, 0], [0, 0, -1])  # pitch down (+) points x at -z
    assert np.allclose(rpy_to_matrix(math.pi / 2, 0, 0) @ [0, 1, 0], [0, 0, 1])


def test_forward_camera_motion_is_base_x_and_turns_map_to_yaw():
    T_base_cam = transform_from_xyz_rpy((0.2, 0.0, 1.0), OPTICAL_RPY)
    forward = np.eye(4)
    forward[2, 3] = 0.5  # camera moves 0.5 along its optical z
    T = camera_motion_to_base(forward, T_base_cam)
    assert np.allclose(T[:3, 3], [0.5, 0, 0]) and np.allclose(T[:3, :3], np.eye(3))
    # camera turning right about its y (down) axis = robot turning right = negative yaw about base z
    turn = np.eye(4)
    turn[:3, :3] = np.array([[math.cos(0.1), 0, math.sin(0.1)], [0, 1, 0], [-math.sin(0.1), 0, math.cos(0.1)]])
    T = camera_motion_to_base(turn, transform_from_xyz_rpy((0, 0, 0), OPTICAL_RPY))
    assert np.allclose(rotation_to_rotvec(T[:3, :3]), [0, 0, -0.1])


def test_quaternion_round_trip_and_inverse():
    rng = np.random.default_rng(0)
    for _ in range(20):
        R = rpy_to_matrix(*rng.uniform(-3, 3, size=3))
        q = matrix_to_quaternion(R)
        assert abs(np.linalg.norm(q) - 1) < 1e-12 and q[3] >= 0
        assert np.allclose(quaternion_to_matrix(*q), R, atol=1e-9)
        T = transform_from_xyz_rpy(rng.normal(size=3), rng.uniform(-3, 3, size=3))
        assert np.allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)
    assert matrix_to_quaternion(np.eye(3)) == pytest.approx((0, 0, 0, 1))


def test_rotvec_of_large_angles():
    for angle in (1e-8, 0.3, 2.0, math.pi - 1e-6):
        axis = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
        K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        R = np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K
        assert np.allclose(rotation_to_rotvec(R), axis * angle, atol=1e-5)


def test_with_nearest_rotation_projects_a_drifted_chain_back_onto_so3():
    T = transform_from_xyz_rpy((1, 2, 3), (0.1, -0.2, 0.3))
    drifted = T.copy()
    drifted[:3, :3] *= 1 + 1e-5                                    # what chaining float poses does, exaggerated
    fixed = with_nearest_rotation(drifted)
    assert np.allclose(fixed[:3, :3] @ fixed[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.allclose(fixed, T, atol=1e-9) and np.isclose(np.linalg.det(fixed[:3, :3]), 1.0)
