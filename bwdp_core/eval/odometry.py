"""Trajectory metrics: the KITTI odometry t_err / r_err, and ATE / RPE computed by evo.

KITTI definition (odometry devkit): for every first frame i (every 10th frame) and every segment length L in
100, 200, ..., 800 m of ground-truth path, take the first frame j whose GT distance from i exceeds L, the relative
motions ΔG = G_i⁻¹ G_j and ΔP = P_i⁻¹ P_j, and the error E = ΔP⁻¹ ΔG; t_err = |trans(E)| / L,
r_err = angle(E) / L. The scores are means over all (i, L) segments, in % and in degrees per 100 m.

Both trajectories' rotations are first projected onto SO(3) (nearest rotation, ``frames.project_to_so3``): files
written by chaining float poses carry |RRᵀ − I| ~ 1e-6, which evo refuses ("not a valid SO(3) group element"). The
largest deviation found is reported (``so3_projection``) and printed when it is above round-off.

Monocular trajectories are then aligned to the GT with evo's Umeyama alignment (``sim3`` by default; ``se3``, ``scale``
(scale only) or ``none``); all metrics are computed on the aligned prediction.
"""
from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np
from evo.core import metrics, sync
from evo.core.geometry import GeometryException
from evo.core.lie_algebra import LieAlgebraException
from evo.core.trajectory import PosePath3D, PoseTrajectory3D

from bwdp_core.errors import DataError
from bwdp_core.eval.trajectory_io import Trajectory
from bwdp_core.frames import so3_deviation, with_nearest_rotation

ALIGN_MODES = ("sim3", "se3", "scale", "none")
KITTI_SEGMENT_LENGTHS = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)
KITTI_STEP_FRAMES = 10
SO3_ROUNDOFF = 1e-9  # |RR^T - I| above this is reported as drift (float64 round-off of one product is ~1e-15)

logging.getLogger("evo").setLevel(logging.ERROR)


def trajectory_distances(poses: np.ndarray) -> np.ndarray:
    """Cumulative path length [N] (metres) along camera-to-world poses [N, 4, 4]; starts at 0."""
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def rotation_angle(R: np.ndarray) -> float:
    """Rotation angle (radians) of a 3x3 rotation matrix: acos((trace − 1)/2), clamped."""
    return float(np.arccos(np.clip(0.5 * (np.trace(R) - 1.0), -1.0, 1.0)))


def segment_lengths_for(path_length: float) -> tuple[tuple[float, ...], bool]:
    """The KITTI lengths (100..800 m), or — for a path shorter than 100 m — the same eight lengths scaled so that the
    path plays the part of 1 km (10 %, 20 %, ..., 80 % of its length). Returns (lengths, scaled?)."""
    if path_length >= KITTI_SEGMENT_LENGTHS[0]:
        return KITTI_SEGMENT_LENGTHS, False
    factor = path_length / 1000.0
    return tuple(length * factor for length in KITTI_SEGMENT_LENGTHS), True


def kitti_segment_errors(gt_poses: np.ndarray, pred_poses: np.ndarray, lengths=KITTI_SEGMENT_LENGTHS,
                         step: int = KITTI_STEP_FRAMES) -> list[dict]:
    """Per-segment errors of the KITTI devkit: list of {first, last, length, t_err (fraction), r_err (rad/m)}."""
    dist = trajectory_distances(gt_poses)
    errors = []
    for first in range(0, len(gt_poses), step):
        for length in lengths:
            beyond = np.nonzero(dist[first:] > dist[first] + length)[0]
            if beyond.size == 0:
                continue
            last = first + int(beyond[0])
            delta_gt = np.linalg.inv(gt_poses[first]) @ gt_poses[last]
            delta_pred = np.linalg.inv(pred_poses[first]) @ pred_poses[last]
            error = np.linalg.inv(delta_pred) @ delta_gt
            errors.append({"first": first, "last": last, "length": float(length),
                           "t_err": float(np.linalg.norm(error[:3, 3]) / length),
                           "r_err": rotation_angle(error[:3, :3]) / length})
    return errors


def kitti_odometry_errors(gt_poses: np.ndarray, pred_poses: np.ndarray) -> dict:
    """t_err (%) and r_err (deg/100 m) averaged over all segments, per-length means, and the lengths used."""
    path_length = float(trajectory_distances(gt_poses)[-1])
    lengths, scaled = segment_lengths_for(path_length)
    segments = kitti_segment_errors(gt_poses, pred_poses, lengths) if path_length > 0 else []
    result = {"segment_lengths_m": [float(x) for x in lengths], "segment_lengths_scaled": scaled,
              "num_segments": len(segments), "gt_path_length_m": path_length}
    if scaled:
        result["note"] = (f"ground-truth path is {path_length:.2f} m (< 100 m): segment lengths scaled to 10..80 % of "
                          "the path length instead of 100..800 m; t_err/r_err are not comparable with KITTI tables")
    if not segments:
        result.update(t_err_percent=None, r_err_deg_per_100m=None, per_length={})
        return result
    result["t_err_percent"] = float(np.mean([s["t_err"] for s in segments]) * 100.0)
    result["r_err_deg_per_100m"] = float(np.degrees(np.mean([s["r_err"] for s in segments])) * 100.0)
    per_length = {}
    for length in lengths:
        chosen = [s for s in segments if s["length"] == length]
        if chosen:
            per_length[f"{length:g}"] = {"t_err_percent": float(np.mean([s["t_err"] for s in chosen]) * 100.0),
                                         "r_err_deg_per_100m": float(np.degrees(np.mean([s["r_err"] for s in chosen]))
                                                                     * 100.0),
                                         "num_segments": len(chosen)}
    result["per_length"] = per_length
    return result


def _as_trajectory(value, name: str) -> Trajectory:
    if isinstance(value, Trajectory):
        return value
    poses = np.asarray(value, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise DataError(f"{name} trajectory must be [N, 4, 4] poses, got {poses.shape}")
    return Trajectory(poses, None, "kitti", name)


def associate(pred: Trajectory, gt: Trajectory, max_time_diff: float = 0.01):
    """Pair the poses of ``pred`` and ``gt`` as evo paths (gt_path, pred_path), plus a description of how.

    Both with timestamps: evo.core.sync.associate_trajectories (nearest stamp within ``max_time_diff`` s).
    Otherwise the i-th pose of one is the i-th of the other and the lengths must match.
    """

    if pred.timestamps is not None and gt.timestamps is not None:
        gt_traj = PoseTrajectory3D(poses_se3=list(gt.poses), timestamps=gt.timestamps)
        pred_traj = PoseTrajectory3D(poses_se3=list(pred.poses), timestamps=pred.timestamps)
        try:
            gt_sync, pred_sync = sync.associate_trajectories(gt_traj, pred_traj, max_diff=max_time_diff)
        except Exception as err:  # evo raises SyncException when nothing matches
            raise DataError(f"cannot associate timestamps of {pred.name or 'prediction'} and "
                            f"{gt.name or 'ground truth'}"
                            f" within {max_time_diff} s: {err}") from None
        if gt_sync.num_poses < 2:
            raise DataError(f"only {gt_sync.num_poses} poses of {pred.name} match {gt.name} in time")
        return gt_sync, pred_sync, f"timestamps (max diff {max_time_diff} s), {gt_sync.num_poses} pairs"
    if len(pred) != len(gt):
        raise DataError(f"trajectory lengths differ: {pred.name or 'prediction'} has {len(pred)} poses, "
                        f"{gt.name or 'ground truth'} has {len(gt)} (without timestamps on both, poses are paired by "
                        "index)")
    if len(gt) < 2:
        raise DataError(f"{gt.name or 'ground truth'} has fewer than 2 poses")
    return PosePath3D(poses_se3=list(gt.poses)), PosePath3D(poses_se3=list(pred.poses)), "by index"


def align_path(pred_path, gt_path, mode: str = "sim3") -> dict:
    """Align ``pred_path`` (an evo path, modified in place) to ``gt_path`` with evo's Umeyama alignment.

    A collinear (straight-line) trajectory makes Umeyama's covariance degenerate; then (sim3/se3) the first poses are
    made to coincide (evo ``align_origin``) and (sim3/scale) the prediction is scaled about its first position by the
    least-squares factor of positions relative to the first pose (the GT/prediction path-length ratio when that factor
    is not positive). Returns {"mode", "scale", "method"}.
    """

    if mode not in ALIGN_MODES:
        raise DataError(f"unknown alignment {mode!r} (choose one of {', '.join(ALIGN_MODES)})")
    if mode == "none":
        return {"mode": mode, "scale": 1.0, "method": "none"}
    try:
        _, _, scale = pred_path.align(gt_path, correct_scale=(mode == "sim3"), correct_only_scale=(mode == "scale"))
        return {"mode": mode, "scale": float(scale), "method": "umeyama (evo)"}
    except GeometryException:
        pass
    scale, how = 1.0, "origin alignment"
    if mode in ("sim3", "se3"):
        pred_path.align_origin(gt_path)
    if mode in ("sim3", "scale"):
        p = pred_path.positions_xyz - pred_path.positions_xyz[0]
        g = gt_path.positions_xyz - gt_path.positions_xyz[0]
        denom = float(np.sum(p * p))
        scale = float(np.sum(p * g) / denom) if denom > 0 else 0.0
        how += " + least-squares scale" if mode == "sim3" else "least-squares scale"
        if scale <= 0:  # prediction moves against the GT: a similarity cannot flip it, use the path-length ratio
            pred_len, gt_len = pred_path.path_length, gt_path.path_length
            scale = gt_len / pred_len if pred_len > 0 and gt_len > 0 else 1.0
            how = how.replace("least-squares scale", "path-length ratio scale")
        origin = pred_path.positions_xyz[0].copy()
        pred_path.scale(scale)  # scales about the world origin; keep the first pose where it was
        shift = np.eye(4)
        shift[:3, 3] = origin - pred_path.positions_xyz[0]
        pred_path.transform(shift)
    if mode == "scale":
        how = how.replace("origin alignment", "").strip(" +")
    return {"mode": mode, "scale": float(scale),
            "method": f"degenerate (collinear) trajectory, Umeyama impossible: {how}"}


def _stats(metric) -> dict:
    stats = metric.get_all_statistics()
    return {key: float(stats[key]) for key in ("rmse", "mean", "median", "std", "min", "max") if key in stats}


def evo_ate_rpe(gt_path, pred_path) -> dict:
    """ATE (evo APE, translation part, metres) and RPE (evo, consecutive frames: translation m, rotation deg)."""

    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((gt_path, pred_path))
    rpe_t = metrics.RPE(metrics.PoseRelation.translation_part, delta=1, delta_unit=metrics.Unit.frames)
    rpe_t.process_data((gt_path, pred_path))
    rpe_r = metrics.RPE(metrics.PoseRelation.rotation_angle_deg, delta=1, delta_unit=metrics.Unit.frames)
    rpe_r.process_data((gt_path, pred_path))
    return {"ate_m": _stats(ape), "rpe_trans_m": _stats(rpe_t), "rpe_rot_deg": _stats(rpe_r)}


def project_trajectory(traj: Trajectory) -> tuple[Trajectory, float]:
    """``traj`` with every rotation projected onto SO(3) and the largest |RRᵀ − I| it had before."""
    deviation = so3_deviation(traj.poses[:, :3, :3])
    return dataclasses.replace(traj, poses=with_nearest_rotation(traj.poses)), deviation


def align_and_associate(pred, gt, align: str = "sim3", max_time_diff: float = 0.01):
    """Project onto SO(3) + associate + align; returns (gt_poses [M,4,4], aligned pred_poses [M,4,4], info dict,
    (gt evo path, aligned pred evo path))."""
    pred, pred_dev = project_trajectory(_as_trajectory(pred, "prediction"))
    gt, gt_dev = project_trajectory(_as_trajectory(gt, "ground truth"))
    gt_path, pred_path, association = associate(pred, gt, max_time_diff)
    pred_path = copy.deepcopy(pred_path)
    try:
        alignment = align_path(pred_path, gt_path, align)
    except (GeometryException, LieAlgebraException, np.linalg.LinAlgError) as err:
        raise DataError(f"cannot align {pred.name or 'the prediction'} to {gt.name or 'the ground truth'}: "
                        f"{err}") from None
    info = {"association": association, "num_poses": int(gt_path.num_poses), "alignment": alignment,
            "so3_projection": {"pred_max_deviation": pred_dev, "gt_max_deviation": gt_dev,
                               "note": "rotations projected onto SO(3) (nearest rotation, SVD) before evaluation"}}
    return np.asarray(gt_path.poses_se3), np.asarray(pred_path.poses_se3), info, (gt_path, pred_path)


def evaluate_odometry(pred, gt, align: str = "sim3", max_time_diff: float = 0.01) -> dict:
    """All trajectory metrics of ``pred`` against ``gt`` (Trajectory objects or [N, 4, 4] camera-to-world arrays).

    Returns a JSON-ready dict: {"association", "num_poses", "alignment": {mode, scale, method}, "kitti": {t_err_percent,
    r_err_deg_per_100m, segment_lengths_m, segment_lengths_scaled, per_length, ...}, "ate_m": {rmse, mean, ...},
    "rpe_trans_m": {...}, "rpe_rot_deg": {...}}.
    """
    gt_poses, pred_poses, info, (gt_path, pred_path) = align_and_associate(pred, gt, align, max_time_diff)
    result = dict(info)
    result["kitti"] = kitti_odometry_errors(gt_poses, pred_poses)
    try:
        result.update(evo_ate_rpe(gt_path, pred_path))
    except (GeometryException, LieAlgebraException) as err:  # evo's own checks; never a traceback for the user
        raise DataError(f"evo could not score the trajectories: {err}") from None
    return result


def format_summary(result: dict) -> str:
    """A few lines for the terminal."""
    k = result["kitti"]
    t_err = "n/a" if k["t_err_percent"] is None else f"{k['t_err_percent']:.3f} %"
    r_err = "n/a" if k["r_err_deg_per_100m"] is None else f"{k['r_err_deg_per_100m']:.3f} deg/100m"
    lines = [f"poses: {result['num_poses']} ({result['association']}), alignment: {result['alignment']['mode']} "
             f"(scale {result['alignment']['scale']:.4f})",
             f"KITTI  t_err {t_err}   r_err {r_err}   ({k['num_segments']} segments, lengths "
             f"{k['segment_lengths_m'][0]:.3g}..{k['segment_lengths_m'][-1]:.3g} m)",
             f"ATE    rmse {result['ate_m']['rmse']:.4f} m   mean {result['ate_m']['mean']:.4f} m",
             f"RPE    trans rmse {result['rpe_trans_m']['rmse']:.4f} m   rot rmse "
             f"{result['rpe_rot_deg']['rmse']:.4f} deg"]
    if "note" in k:
        lines.append(f"note: {k['note']}")
    so3 = result.get("so3_projection", {})
    worst = max(so3.get("pred_max_deviation", 0.0), so3.get("gt_max_deviation", 0.0))
    if worst > SO3_ROUNDOFF:
        lines.append(f"note: rotations projected onto SO(3) before evaluation (largest |RR^T - I|: prediction "
                     f"{so3['pred_max_deviation']:.1e}, ground truth {so3['gt_max_deviation']:.1e})")
    return "\n".join(lines)
