"""A KITTI raw drive prepared by ``bwdp prepare-kitti``: one folder per drive and camera.

Layout written by :mod:`bwdp_core.data.prepare_kitti` (and read here)::

    OUT/2011_09_26_drive_0001_sync_02/000000.jpg ...   resized frames, static frames already dropped
    OUT/2011_09_26_drive_0001_sync_02/cam.txt          3x3 intrinsics at the resized size
    OUT/2011_09_26_drive_0001_sync_02/times.txt        seconds since the drive's first frame, one line per image
    OUT/2011_09_26_drive_0001_sync_02/frames.txt       the raw frame index of every image (for GT lookup)
    OUT/2011_09_26_drive_0001_sync_02/.done            marker: the folder is complete (prepare-kitti skips it)
    OUT/train.txt                                      the prepared folder names, one per line

Frames are consecutive in the source drive except where static frames were dropped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bwdp_core.data.image_folder import ImageFolderSource
from bwdp_core.errors import DataError

DONE_MARKER = ".done"


class KittiRawSource(ImageFolderSource):
    """One prepared drive/camera folder (see module docstring)."""

    def __init__(self, folder, check_images: bool = True):
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"prepared KITTI folder {folder} does not exist")
        if not (folder / DONE_MARKER).is_file():
            raise DataError(f"prepared KITTI folder {folder} is incomplete (no {DONE_MARKER}); re-run bwdp "
                            "prepare-kitti")
        super().__init__(folder, intrinsics=folder / "cam.txt", name=f"kitti_raw/{folder.name}",
                         check_images=check_images)
        self.frame_ids = None
        frames_file = folder / "frames.txt"
        if frames_file.is_file():
            ids = np.loadtxt(frames_file, dtype=np.int64, ndmin=1)
            if len(ids) != len(self.files):
                raise DataError(f"{frames_file} has {len(ids)} lines for {len(self.files)} images")
            self.frame_ids = ids


def prepared_kitti_folders(root) -> list[Path]:
    """Complete drive/camera folders in a prepare-kitti output (``train.txt`` order when present)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"prepared KITTI folder {root} does not exist")
    listing = root / "train.txt"
    if listing.is_file():
        names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
        folders = [root / n for n in names]
        missing = [f for f in folders if not (f / DONE_MARKER).is_file()]
        if missing:
            raise DataError(f"{listing} names {missing[0]}, which is missing or incomplete")
    else:
        folders = sorted(p for p in root.iterdir() if (p / DONE_MARKER).is_file())
    if not folders:
        raise DataError(f"prepared KITTI folder {root} has no prepared sequences (run bwdp prepare-kitti first)")
    return folders
