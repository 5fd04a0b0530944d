"""Reference odometry for the real-sequence benchmark (a yardstick, not a bwdp feature).

- ``classical_vo``: the textbook monocular pipeline with OpenCV - Shi-Tomasi corners (goodFeaturesToTrack), pyramidal
  Lucas-Kanade tracking to the next frame, the 5-point essential matrix in RANSAC (findEssentialMat), recoverPose for
  (R, t), and a unit step length per frame (monocular: no scale; the sim(3) alignment of eval-odom supplies one).
- ``constant_velocity``: the translation between the first two ground-truth poses repeated for every frame.
- ``turn_windows`` / ``yaw_through_turns``: where the ground truth turns, and the yaw each trajectory accumulates there.

Conventions: poses are camera-to-world [N, 4, 4] with the first camera as the world (KITTI poses files).
"""
from __future__ import annotations

import cv2
import numpy as np

MAX_CORNERS = 2000
MIN_TRACKED = 500          # re-detect corners when fewer survive tracking
RANSAC_THRESHOLD_PX = 1.0  # at the full 1226x370 KITTI resolution
# a car at 10 Hz does not turn this much between frames: a larger rotation is a degenerate essential matrix (near-zero
# parallax when the car is slow, e.g. the first frames of KITTI 07) and is replaced by the previous step; without this
# guard one flipped step (a 180 deg rotation) mirrors the rest of the 07 trajectory
MAX_STEP_ROTATION_DEG = 20.0


def classical_vo(load_grey, num_frames: int, K: np.ndarray) -> np.ndarray:
    """Camera-to-world poses [num_frames, 4, 4] of the OpenCV reference VO.

    load_grey(i) -> uint8 [H, W] image; K: 3x3 intrinsics of those images. A pair where RANSAC finds no model, or one
    that turns by more than MAX_STEP_ROTATION_DEG, repeats the previous relative motion (constant velocity).
    """
    K = np.asarray(K, dtype=np.float64)
    poses = [np.eye(4)]
    previous = load_grey(0)
    corners = _detect(previous)
    last_step = np.eye(4)
    last_step[2, 3] = 1.0
    for i in range(1, num_frames):
        current = load_grey(i)
        tracked, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None, winSize=(21, 21),
                                                      maxLevel=3)
        good = status.reshape(-1) == 1
        p0, p1 = corners.reshape(-1, 2)[good], tracked.reshape(-1, 2)[good]
        step = _relative_motion(p0, p1, K)
        if step is None:
            step = last_step
        # T_w<-i = T_w<-(i-1) . T_(i-1)<-i
        poses.append(poses[-1] @ step)
        last_step = step
        corners = p1.reshape(-1, 1, 2).astype(np.float32)
        if len(corners) < MIN_TRACKED:
            corners = _detect(current)
        previous = current
    return np.stack(poses)


def _detect(grey: np.ndarray) -> np.ndarray:
    found = cv2.goodFeaturesToTrack(grey, maxCorners=MAX_CORNERS, qualityLevel=0.01, minDistance=7)
    return found if found is not None else np.zeros((0, 1, 2), np.float32)


def _relative_motion(p0: np.ndarray, p1: np.ndarray, K: np.ndarray) -> np.ndarray | None:
    """T_(i-1)<-i (pose of camera i in camera i-1) with a unit-length translation, or None."""
    if len(p0) < 8:
        return None
    E, inliers = cv2.findEssentialMat(p1, p0, K, method=cv2.RANSAC, prob=0.999, threshold=RANSAC_THRESHOLD_PX)
    if E is None or E.shape != (3, 3):
        return None
    # recoverPose(E, points in i, points in i-1) gives R, t with X_(i-1) = R X_i + t, i.e. T_(i-1)<-i
    _, R, t, _ = cv2.recoverPose(E, p1, p0, K, mask=inliers)
    if np.degrees(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))) > MAX_STEP_ROTATION_DEG:
        return None
    step = np.eye(4)
    step[:3, :3] = R
    step[:3, 3] = t.reshape(3) / max(np.linalg.norm(t), 1e-12)
    return step


def constant_velocity(gt_poses: np.ndarray) -> np.ndarray:
    """Straight-line constant velocity: the translation of the first GT step T_0<-1 repeated, no rotation - poses
    [N, 4, 4] (the reference of ../shared/data/kitti_odom_07_160/README.md, 5.41 m ATE on its 160 frames)."""
    gt = np.asarray(gt_poses, dtype=np.float64)
    step = np.eye(4)
    step[:3, 3] = (np.linalg.inv(gt[0]) @ gt[1])[:3, 3]
    poses = [np.eye(4)]
    for _ in range(1, len(gt)):
        poses.append(poses[-1] @ step)
    return np.stack(poses)


def heading_deg(poses: np.ndarray) -> np.ndarray:
    """Unwrapped yaw (degrees, about the camera's y axis, negative = left turn in KITTI's x-right/y-down frame) of
    every pose [N, 4, 4]: the angle of its forward (z) axis in the x-z plane of the first camera."""
    forward = np.asarray(poses)[:, :3, 2]
    return np.degrees(np.unwrap(np.arctan2(forward[:, 0], forward[:, 2])))


def turn_windows(gt_poses: np.ndarray, rate_deg: float = 0.5, min_turn_deg: float = 20.0,
                 gap: int = 5) -> list[tuple[int, int]]:
    """Frame windows [first, last] where the GT heading changes faster than ``rate_deg`` per frame (gaps shorter than
    ``gap`` frames closed), kept when the window turns by at least ``min_turn_deg``."""
    rate = np.abs(np.diff(heading_deg(gt_poses)))
    turning = np.nonzero(rate > rate_deg)[0]
    windows: list[list[int]] = []
    for i in turning:
        if windows and i - windows[-1][1] <= gap:
            windows[-1][1] = int(i) + 1
        else:
            windows.append([int(i), int(i) + 1])
    yaw = heading_deg(gt_poses)
    return [(a, b) for a, b in windows if abs(yaw[b] - yaw[a]) >= min_turn_deg]


def yaw_through_turns(gt_poses: np.ndarray, trajectories: dict[str, np.ndarray]) -> list[dict]:
    """Per GT turn: the yaw accumulated by the GT and by each named trajectory, and their ratio to the GT."""
    gt_yaw = heading_deg(gt_poses)
    rows = []
    for a, b in turn_windows(gt_poses):
        row = {"frames": [a, b], "gt_deg": round(float(gt_yaw[b] - gt_yaw[a]), 2)}
        for name, poses in trajectories.items():
            yaw = heading_deg(poses)
            turned = float(yaw[b] - yaw[a])
            row[f"{name}_deg"] = round(turned, 2)
            row[f"{name}_ratio"] = round(turned / row["gt_deg"], 3) if row["gt_deg"] else None
        rows.append(row)
    return rows
