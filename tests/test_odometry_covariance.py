"""Odometry covariance integrated from the twist covariance (bwdp_core.inference.odometry_covariance), no ROS."""
import numpy as np
import pytest

from bwdp_core.frames import transform_from_xyz_rpy
from bwdp_core.inference.odometry_covariance import OdometryCovariance, propagate_pose_covariance, skew

INITIAL = [1e-6] * 6
TWIST = [0.04, 0.04, 0.04, 0.01, 0.01, 0.01]
LOST = 1.0e6
DT_NS = 100_000_000


def drive(cov, n, step=(0.5, 0.0, 0.0), yaw=0.0, start_ns=0, tracking="ok"):
    """n frames, each moving base_link by ``step`` (m) and ``yaw`` (rad) in its own axes; returns the covariances."""
    T, out = np.eye(4), []
    for i in range(n):
        if i:
            T = T @ transform_from_xyz_rpy(step, (0, 0, yaw))
        out.append(cov.update(start_ns + i * DT_NS, T, "initialising" if i == 0 else tracking))
    return out


def test_first_frame_has_the_initial_pose_and_the_lost_twist_covariance():
    cov = OdometryCovariance(INITIAL, TWIST, LOST)
    pose, twist = cov.update(0, np.eye(4), "initialising")
    assert np.allclose(pose, np.diag(INITIAL)) and np.allclose(twist, np.eye(6) * LOST)


def test_pose_covariance_grows_with_distance_and_faster_than_linearly():
    out = drive(OdometryCovariance(INITIAL, TWIST, LOST), 21)
    var_y = [pose[1, 1] for pose, _ in out]
    assert all(b > a for a, b in zip(var_y[1:], var_y[2:]))   # grows every frame while moving
    # the heading error turns later metres into sideways error: the lateral variance grows faster than the frame count
    assert var_y[20] - var_y[19] > 5 * (var_y[2] - var_y[1])
    for pose, twist in out[1:]:
        assert np.allclose(twist, np.diag(TWIST))
        assert np.allclose(pose, pose.T) and np.all(np.linalg.eigvalsh(pose) > 0)
    # the along-track variance integrates dt^2 * var(vx) per frame: exactly 20 steps of 0.01^2 * 0.04
    assert out[20][0][0, 0] == pytest.approx(1e-6 + 20 * 0.01 * 0.04, rel=1e-9)


def test_one_step_matches_the_jacobians_written_out():
    P = np.diag([0.1, 0.2, 0.3, 0.01, 0.02, 0.03])
    R_prev = transform_from_xyz_rpy((0, 0, 0), (0.1, -0.2, 0.7))[:3, :3]
    T_step = transform_from_xyz_rpy((0.4, 0.1, -0.05), (0.0, 0.05, 0.1))
    Q = np.diag([1e-3, 2e-3, 3e-3, 1e-4, 2e-4, 3e-4])
    # numerically: push sampled-free first-order perturbations through the composition and compare
    F = np.eye(6)
    F[:3, 3:] = -skew(R_prev @ T_step[:3, 3])
    G = np.zeros((6, 6))
    G[:3, :3], G[3:, 3:] = R_prev, R_prev @ T_step[:3, :3]
    assert np.allclose(propagate_pose_covariance(P, R_prev, T_step, Q), F @ P @ F.T + G @ Q @ G.T)
    # and the lever arm is right: a small heading error d moves the new position by d x (R_prev t)
    d = np.array([0.0, 0.0, 1e-6])
    t = R_prev @ T_step[:3, 3]
    assert np.allclose(-skew(t) @ d, np.cross(d, t))


def test_lost_frame_integrates_the_lost_twist_and_reset_restarts():
    cov = OdometryCovariance(INITIAL, TWIST, LOST)
    out = drive(cov, 3)
    pose, twist = cov.update(3 * DT_NS, np.eye(4) @ transform_from_xyz_rpy((1.0, 0, 0), (0, 0, 0)), "lost")
    assert np.allclose(twist, np.eye(6) * LOST)
    assert pose[0, 0] >= out[-1][0][0, 0] + 0.01 * LOST * 0.999  # dt^2 * lost variance absorbed
    cov.reset()
    pose, _ = cov.update(10 * DT_NS, np.eye(4), "initialising")
    assert np.allclose(pose, np.diag(INITIAL))


def test_stamp_going_backwards_restarts_with_the_initialising_frame():
    cov = OdometryCovariance(INITIAL, TWIST, LOST)
    drive(cov, 5)
    pose, _ = cov.update(0, np.eye(4), "initialising")  # the VO reset itself (stamp went back)
    assert np.allclose(pose, np.diag(INITIAL))


def test_bad_model_values_are_refused():
    with pytest.raises(ValueError):
        OdometryCovariance([1.0] * 5, TWIST, LOST)
    with pytest.raises(ValueError):
        OdometryCovariance(INITIAL, TWIST, 0.0)
