"""Write a synthetic sequence in the KITTI odometry layout, so every loader and evaluator can run on it.

    root/sequences/<seq>/image_2/000000.png   RGB images (PNG, written through cv2 as BGR)
    root/sequences/<seq>/depth/000000.npy     float32 depth in metres (optical z, 0 = sky / invalid)
    root/sequences/<seq>/calib.txt            P0..P3 = K|0 (one camera: no right images), Tr = identity
    root/sequences/<seq>/times.txt            seconds, 10 Hz like KITTI
    root/poses/<seq>.txt                      camera-to-world 3x4 per line (first 3 rows, row-major), first = I
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from bwdp_core.errors import DataError

FRAME_PERIOD_S = 0.1  # KITTI's 10 Hz


def sequence_dirs(root, sequence: str = "00") -> tuple[Path, Path]:
    """(sequences/<seq> folder, poses file) under root."""
    root = Path(root)
    return root / "sequences" / sequence, root / "poses" / f"{sequence}.txt"


def write_header(root, K: np.ndarray, poses: np.ndarray, sequence: str = "00") -> Path:
    """calib.txt, times.txt and poses/<seq>.txt; creates the folders. Returns the sequence folder."""
    seq_dir, poses_file = sequence_dirs(root, sequence)
    try:
        (seq_dir / "image_2").mkdir(parents=True, exist_ok=True)
        (seq_dir / "depth").mkdir(parents=True, exist_ok=True)
        poses_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"synth: cannot create the output folder {seq_dir}: {err}") from err
    _remove_stale_frames(seq_dir, len(poses))
    P = np.zeros((3, 4))
    P[:, :3] = K
    p_line = " ".join(f"{x + 0.0:.12e}" for x in P.ravel())
    tr_line = " ".join(f"{x:.12e}" for x in np.eye(4)[:3].ravel())
    calib = "".join(f"P{i}: {p_line}\n" for i in range(4)) + f"Tr: {tr_line}\n"
    _write_text(seq_dir / "calib.txt", calib)
    _write_text(seq_dir / "times.txt", "".join(f"{i * FRAME_PERIOD_S:.6e}\n" for i in range(len(poses))))
    pose_lines = (" ".join(f"{x + 0.0:.12e}" for x in np.asarray(T)[:3].ravel()) + "\n" for T in poses)
    _write_text(poses_file, "".join(pose_lines))
    return seq_dir


def write_frame(seq_dir: Path, index: int, image: np.ndarray, depth: np.ndarray) -> None:
    """image_2/<index>.png (image uint8 [H,W,3] RGB) and depth/<index>.npy (float32 [H,W])."""
    name = f"{index:06d}"
    png = Path(seq_dir) / "image_2" / f"{name}.png"
    if not cv2.imwrite(str(png), np.ascontiguousarray(image[..., ::-1])):
        raise DataError(f"synth: cannot write {png}")
    try:
        np.save(Path(seq_dir) / "depth" / f"{name}.npy", depth.astype(np.float32, copy=False))
    except OSError as err:
        raise DataError(f"synth: cannot write depth {name}.npy in {seq_dir}: {err}") from err


def write_frames(root, K: np.ndarray, poses: np.ndarray, frames: Iterable[tuple[np.ndarray, np.ndarray]],
                 sequence: str = "00") -> Path:
    """Stream (image, depth) pairs to disk (no whole sequence in memory). Returns the sequence folder."""
    seq_dir = write_header(root, K, poses, sequence)
    for index, (image, depth) in enumerate(frames):
        write_frame(seq_dir, index, image, depth)
    return seq_dir


def write_kitti_odometry(seq, root, sequence: str = "00") -> Path:
    """Write a SynthSequence under root in the KITTI odometry layout (module docstring). Returns the sequence folder."""
    return write_frames(root, seq.K, seq.poses, zip(seq.images, seq.depths), sequence)


def read_poses(path) -> np.ndarray:
    """KITTI poses file -> camera-to-world [N,4,4] float64."""
    try:
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read poses file {path}: {err}") from err
    if rows.shape[1] != 12:
        raise DataError(f"poses file {path}: expected 12 numbers per line, got {rows.shape[1]}")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    poses[:, :3, :] = rows.reshape(-1, 3, 4)
    return poses


def _remove_stale_frames(seq_dir: Path, frames: int) -> None:
    """Delete frames numbered >= frames left by an earlier, longer run (they would not match the poses file)."""
    for folder, suffix in (("image_2", ".png"), ("depth", ".npy")):
        for path in (seq_dir / folder).glob(f"[0-9][0-9][0-9][0-9][0-9][0-9]{suffix}"):
            if int(path.stem) >= frames:
                try:
                    path.unlink()
                except OSError as err:
                    raise DataError(f"synth: cannot remove stale frame {path}: {err}") from err


def _write_text(path: Path, text: str) -> None:
    try:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        raise DataError(f"synth: cannot write {path}: {err}") from err
