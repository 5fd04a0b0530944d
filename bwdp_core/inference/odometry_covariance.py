"""Odometry covariance that means something: the twist covariance of each frame, and the pose covariance integrated
from it, so the pose uncertainty grows with time and distance instead of being a constant (ROS-free).

Conventions of nav_msgs/Odometry (what robot_localization reads): 6x6 row-major, order (x, y, z, roll, pitch, yaw);
the pose covariance is in the parent frame (odom), the twist covariance in the child frame (base_link).

Model (first-order dead reckoning, as wheel odometry does it). One frame moves base_link by the step
``T_step = T_odom_prev^-1 @ T_odom_cur`` (translation t, rotation R_step), measured with the twist covariance
``Sigma_twist`` (base_link axes) over ``dt`` seconds, so the step's covariance is ``dt^2 Sigma_twist``. The pose error
``(dp, dtheta)`` in odom axes (dtheta a small rotation about the odom axes, equal to the roll/pitch/yaw errors to first
order) propagates as

    dp_k     = dp_{k-1} - [R_{k-1} t]_x dtheta_{k-1} + R_{k-1} dt_step
    dtheta_k = dtheta_{k-1}                          + R_k dphi_step

    P_k = F P_{k-1} F^T + G (dt^2 Sigma_twist) G^T,   F = [[I, -[R_{k-1} t]_x], [0, I]],   G = diag(R_{k-1}, R_k)

The lever-arm term ``-[R t]_x`` is why the position covariance grows faster than the number of frames once the robot
moves: a heading error turns every later metre into a sideways error.

Frames without a usable motion estimate (the first after a reset, a lost frame) publish ``lost_variance`` on the
twist diagonal, and the pose integrates it like any other twist: the pose has absorbed an unknown motion, and stays
that uncertain until ``reset`` (fuse the twist, not the pose, of a VO that loses track; robot_localization's
``differential`` mode does this).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from bwdp_core.frames import invert_transform
from bwdp_core.inference.vo_pipeline import TRACKING_OK


def covariance_from_diagonal(diagonal: Sequence[float]) -> np.ndarray:
    """6 variances -> 6x6 diagonal covariance (float64)."""
    values = np.asarray(diagonal, dtype=np.float64)
    if values.shape != (6,) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"a covariance diagonal is 6 finite numbers >= 0, got {list(diagonal)!r}")
    return np.diag(values)


def skew(v: np.ndarray) -> np.ndarray:
    """[v]_x: the 3x3 matrix with [v]_x w = v x w."""
    x, y, z = (float(c) for c in v)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def propagate_pose_covariance(pose_cov: np.ndarray, R_prev: np.ndarray, T_step: np.ndarray,
                              step_cov: np.ndarray) -> np.ndarray:
    """One dead-reckoning step of the pose covariance (module docstring).

    pose_cov [6,6] in odom axes (x y z, rotation about x y z); R_prev [3,3] the orientation of base_link in odom
    before the step; T_step [4,4] the step in the previous base_link; step_cov [6,6] the step's covariance in base_link
    axes (dt^2 times the twist covariance). Returns the new [6,6] covariance (symmetric).
    """
    R_cur = R_prev @ T_step[:3, :3]
    F = np.eye(6)
    F[:3, 3:] = -skew(R_prev @ T_step[:3, 3])
    G = np.zeros((6, 6))
    G[:3, :3], G[3:, 3:] = R_prev, R_cur
    P = F @ pose_cov @ F.T + G @ step_cov @ G.T
    return 0.5 * (P + P.T)


class OdometryCovariance:
    """The covariances to publish with each odometry frame.

    cov = OdometryCovariance(initial_pose_diagonal, twist_diagonal, lost_variance)
    pose_cov, twist_cov = cov.update(frame.stamp_ns, frame.T_odom_base, frame.tracking)   # 6x6 each
    cov.reset()                                     # with the odometry (~/reset)

    A frame whose tracking is "initialising" (the first after a reset, also an automatic one) restarts the pose
    covariance at ``initial_pose_diagonal`` (the odom origin is base_link there, known up to that).
    """

    def __init__(self, initial_pose_diagonal: Sequence[float], twist_diagonal: Sequence[float],
                 lost_variance: float):
        self.configure(initial_pose_diagonal, twist_diagonal, lost_variance)
        self.reset()

    def configure(self, initial_pose_diagonal: Sequence[float], twist_diagonal: Sequence[float],
                  lost_variance: float) -> None:
        """Change the model (takes effect from the next frame; the integrated pose covariance is kept)."""
        self.initial_pose = covariance_from_diagonal(initial_pose_diagonal)
        self.twist_tracking = covariance_from_diagonal(twist_diagonal)
        if not np.isfinite(lost_variance) or lost_variance <= 0:
            raise ValueError(f"lost_variance must be a finite number > 0, got {lost_variance!r}")
        self.twist_lost = np.eye(6) * float(lost_variance)

    def reset(self) -> None:
        self.pose = self.initial_pose.copy()
        self._prev_T: Optional[np.ndarray] = None
        self._prev_stamp_ns: Optional[int] = None

    def twist_covariance(self, tracking: str) -> np.ndarray:
        """The twist covariance of a frame: the tracking one, or ``lost_variance`` when it has no motion estimate."""
        return self.twist_tracking if tracking == TRACKING_OK else self.twist_lost

    def update(self, stamp_ns: int, T_odom_base: np.ndarray, tracking: str) -> tuple[np.ndarray, np.ndarray]:
        """(pose covariance, twist covariance), 6x6 each, of the frame with this stamp, pose and tracking state."""
        T_odom_base = np.asarray(T_odom_base, dtype=np.float64)
        twist_cov = self.twist_covariance(tracking)
        if self._prev_T is None or tracking == "initialising":
            self.pose = self.initial_pose.copy()
        else:
            dt = max(0.0, (int(stamp_ns) - self._prev_stamp_ns) / 1e9)
            T_step = invert_transform(self._prev_T) @ T_odom_base
            self.pose = propagate_pose_covariance(self.pose, self._prev_T[:3, :3], T_step, dt * dt * twist_cov)
        self._prev_T, self._prev_stamp_ns = T_odom_base.copy(), int(stamp_ns)
        return self.pose.copy(), twist_cov.copy()
