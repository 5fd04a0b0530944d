"""KITTI odometry layout: ``ROOT/sequences/NN/image_2/*.png``, ``ROOT/sequences/NN/calib.txt`` (line ``P2:``),
optional ``ROOT/poses/NN.txt`` (camera-to-world of the left camera), ``ROOT/sequences/NN/times.txt`` and
``ROOT/sequences/NN/depth/<frame>.npy`` (float metres, 0 = invalid; written by ``bwdp synth``).

``camera`` picks ``image_<camera>`` and the intrinsics from the left 3x3 block of ``P<camera>``: 2 (default) = the left
colour camera, 0 = the left grey camera (one-channel PNGs, replicated to three channels by ``read_image_file``, so a
grey camera trains and runs through the same networks). KITTI's poses are those of camera 0; camera 2 is a pure
x-translation of it, so relative motion is identical and no correction is applied.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bwdp_core.data.sources import (
    FileFrameSource,
    check_image_files,
    list_images,
    read_image_file,
    read_poses_file,
    read_times_file,
)
from bwdp_core.errors import DataError


def read_kitti_calib(path, key: str = "P2") -> np.ndarray:
    """``calib.txt`` line ``<key>: 12 numbers`` -> 3x4 projection matrix (float64)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration file {path} does not exist")
    for line in path.read_text().splitlines():
        name, _, values = line.partition(":")
        if name.strip() == key:
            try:
                numbers = [float(v) for v in values.split()]
            except ValueError as err:
                raise DataError(f"calibration file {path}: {key} is not numbers") from err
            if len(numbers) != 12:
                raise DataError(f"calibration file {path}: {key} has {len(numbers)} numbers, expected 12 (3x4)")
            return np.asarray(numbers).reshape(3, 4)
    raise DataError(f"calibration file {path} has no {key}: line")


class KittiOdometrySource(FileFrameSource):
    """One sequence of the KITTI odometry layout, e.g. ``KittiOdometrySource("/data/kitti_odom", "09")``."""

    def __init__(self, root, sequence: str = "00", camera: int = 2, check_images: bool = True):
        root = Path(root)
        sequence = str(sequence)
        seq_dir = root / "sequences" / sequence
        if not seq_dir.is_dir():
            raise DataError(f"KITTI odometry sequence folder {seq_dir} does not exist")
        self.name = f"kitti_odom/{sequence}"
        self.sequence_dir = seq_dir
        self.camera = int(camera)
        if not (seq_dir / f"image_{camera}").is_dir():
            present = kitti_cameras(seq_dir)
            hint = (f"; it has {', '.join(f'image_{c}' for c in present)}: choose one with data.source.camera "
                    f"(bwdp vo: --camera), e.g. {present[0]} for the left grey camera" if present else "")
            raise DataError(f"KITTI odometry sequence folder {seq_dir} has no image_{camera} folder{hint}")
        self.files = list_images(seq_dir / f"image_{camera}")
        P = read_kitti_calib(seq_dir / "calib.txt", f"P{camera}")
        self.intrinsics = P[:, :3].copy()
        if self.intrinsics[0, 0] <= 0 or self.intrinsics[1, 1] <= 0:
            raise DataError(f"calibration file {seq_dir / 'calib.txt'}: P{camera} has non-positive focal lengths")
        where = f"sequence folder {seq_dir / f'image_{camera}'}"
        self.image_size = check_image_files(self.files, None, where) if check_images else \
            read_image_file(self.files[0]).shape[:2]
        poses_file = root / "poses" / f"{sequence}.txt"
        self.poses = read_poses_file(poses_file, expected=len(self.files)) if poses_file.is_file() else None
        self.timestamps = read_times_file(seq_dir / "times.txt", expected=len(self.files))
        depth_dir = seq_dir / "depth"
        self.depth_files = None
        if depth_dir.is_dir():
            self.depth_files = [depth_dir / f"{f.stem}.npy" for f in self.files]
            missing = [p for p in self.depth_files if not p.is_file()]
            if missing:
                raise DataError(f"depth folder {depth_dir} lacks {missing[0].name} ({len(missing)} files missing)")


def kitti_cameras(sequence_dir) -> list[int]:
    """The cameras (0..3) whose ``image_<c>`` folder a KITTI odometry sequence folder has (sorted)."""
    return [c for c in range(4) if (Path(sequence_dir) / f"image_{c}").is_dir()]


def kitti_odometry_sequences(root) -> list[str]:
    """Names of the sequences present under ``ROOT/sequences`` (sorted)."""
    seq_root = Path(root) / "sequences"
    if not seq_root.is_dir():
        raise DataError(f"KITTI odometry folder {seq_root} does not exist")
    names = sorted(p.name for p in seq_root.iterdir() if p.is_dir())
    if not names:
        raise DataError(f"KITTI odometry folder {seq_root} has no sequences")
    return names
