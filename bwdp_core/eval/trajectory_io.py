"""Trajectory files: KITTI (12 numbers per line: the first three rows of a camera-to-world 4x4) and TUM
(``timestamp tx ty tz qx qy qz qw``). Read with a whitespace-tolerant parser that names the file and line of any
problem; written with evo's ``file_interface`` so the files load in the ``evo_*`` tools unchanged.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from evo.core.trajectory import PosePath3D, PoseTrajectory3D
from evo.tools import file_interface

from bwdp_core.errors import DataError

FORMATS = ("kitti", "tum")
_COLUMNS = {12: "kitti", 8: "tum"}


@dataclass
class Trajectory:
    """Camera-to-world poses ``[N, 4, 4]`` float64, timestamps ``[N]`` seconds (TUM files) or None (KITTI files)."""
    poses: np.ndarray
    timestamps: np.ndarray | None
    fmt: str
    name: str = ""

    def __len__(self) -> int:
        return len(self.poses)


def _read_rows(path: Path) -> tuple[np.ndarray, list[int]]:
    """Numeric rows of a text file (blank and '#' lines skipped) and their 1-based line numbers."""
    if not path.is_file():
        raise DataError(f"trajectory file not found: {path}")
    rows, lines = [], []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read trajectory file {path}: {err}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.replace(",", " ").strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            rows.append([float(v) for v in stripped.split()])
        except ValueError:
            raise DataError(f"{path}:{number}: not a row of numbers: {line.strip()[:60]!r}") from None
        lines.append(number)
    if not rows:
        raise DataError(f"trajectory file {path} has no poses")
    width = len(rows[0])
    for row, number in zip(rows, lines):
        if len(row) != width:
            raise DataError(f"{path}:{number}: {len(row)} numbers, the first pose line has {width}")
    if width not in _COLUMNS:
        raise DataError(f"{path}: {width} numbers per line; expected 12 (KITTI) or 8 (TUM: t x y z qx qy qz qw)")
    data = np.asarray(rows, dtype=np.float64)
    bad = ~np.isfinite(data).all(axis=1)
    if bad.any():
        raise DataError(f"{path}:{lines[int(np.argmax(bad))]}: non-finite value (nan/inf)")
    return data, lines


def _quat_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices [N, 3, 3] from unit quaternions [N, 4] in (qx, qy, qz, qw) order."""
    x, y, z, w = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def detect_format(path: str | Path) -> str:
    """'kitti' (12 numbers per line) or 'tum' (8)."""
    data, _ = _read_rows(Path(path))
    return _COLUMNS[data.shape[1]]


def read_trajectory(path: str | Path, fmt: str = "auto") -> Trajectory:
    """Read a KITTI or TUM trajectory (``fmt="auto"`` decides by the number of columns)."""
    path = Path(path)
    data, lines = _read_rows(path)
    found = _COLUMNS[data.shape[1]]
    if fmt != "auto" and fmt != found:
        raise DataError(f"{path}: expected a {fmt.upper()} trajectory, found {data.shape[1]} numbers per line "
                        f"({found})")
    n = len(data)
    poses = np.tile(np.eye(4), (n, 1, 1))
    if found == "kitti":
        poses[:, :3, :] = data.reshape(n, 3, 4)
        return Trajectory(poses, None, "kitti", path.name)
    quat = data[:, 4:8]
    norms = np.linalg.norm(quat, axis=1)
    if (np.abs(norms - 1.0) > 1e-2).any():
        bad = int(np.argmax(np.abs(norms - 1.0) > 1e-2))
        raise DataError(f"{path}:{lines[bad]}: quaternion of norm {norms[bad]:.4f} is not a rotation")
    poses[:, :3, :3] = _quat_xyzw_to_matrix(quat / norms[:, None])
    poses[:, :3, 3] = data[:, 1:4]
    return Trajectory(poses, data[:, 0].copy(), "tum", path.name)


def write_trajectory(path: str | Path, poses: np.ndarray, fmt: str = "kitti",
                     timestamps: np.ndarray | None = None) -> Path:
    """Write camera-to-world poses [N, 4, 4] as KITTI or TUM (TUM needs ``timestamps`` [N], seconds)."""

    path = Path(path)
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(poses) == 0:
        raise DataError(f"cannot write {path}: poses must be a non-empty [N, 4, 4] array, got {poses.shape}")
    if fmt not in FORMATS:
        raise DataError(f"unknown trajectory format {fmt!r} (choose kitti or tum)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "kitti":
        traj = PosePath3D(poses_se3=list(poses))
        with io.StringIO() as buf:
            file_interface.write_kitti_poses_file(buf, traj)
            path.write_text(buf.getvalue())
        return path
    if timestamps is None or len(timestamps) != len(poses):
        raise DataError(f"cannot write TUM trajectory {path}: need one timestamp per pose")
    traj = PoseTrajectory3D(poses_se3=list(poses), timestamps=np.asarray(timestamps, dtype=np.float64))
    with io.StringIO() as buf:
        file_interface.write_tum_trajectory_file(buf, traj)
        path.write_text(buf.getvalue())
    return path
