"""A folder of images in name order + intrinsics (``cam.txt`` in the folder, another file, or fx fy cx cy).

Optional extras: ``depth_dir`` with ground-truth depth per image (``<stem>.npy`` float metres or ``<stem>.png`` uint16
/256, 0 = invalid), ``poses_file`` in KITTI format (camera-to-world, one line per image) and ``times.txt`` in the folder
(seconds, one per image).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bwdp_core.data.sources import (
    FileFrameSource,
    as_intrinsics,
    check_image_files,
    list_images,
    read_image_file,
    read_intrinsics_file,
    read_poses_file,
    read_times_file,
)
from bwdp_core.errors import DataError


def resolve_intrinsics(intrinsics, default_file: Path | None, where: str) -> np.ndarray:
    """``intrinsics`` = None (use ``default_file``), a path to a cam.txt, 4 numbers or a 3x3 -> float64 3x3."""
    if intrinsics is None:
        if default_file is None or not default_file.is_file():
            raise DataError(f"{where} has no intrinsics: put a cam.txt (3x3 or fx fy cx cy) at {default_file} "
                            "or give them (--intrinsics / intrinsics: fx fy cx cy)")
        return read_intrinsics_file(default_file)
    if isinstance(intrinsics, (str, Path)):
        text = str(intrinsics)
        parts = text.replace(",", " ").split()
        try:
            return as_intrinsics([float(p) for p in parts], where)
        except ValueError:
            return read_intrinsics_file(Path(text))
    return as_intrinsics(intrinsics, where)


class ImageFolderSource(FileFrameSource):
    """Images directly inside ``folder`` (png/jpg/...), sorted by file name."""

    def __init__(self, folder, intrinsics=None, name: str | None = None, depth_dir=None, poses_file=None,
                 check_images: bool = True):
        folder = Path(folder)
        self.folder = folder
        self.name = name or folder.name
        self.files = list_images(folder)
        self.intrinsics = resolve_intrinsics(intrinsics, folder / "cam.txt", f"image folder {folder}")
        where = f"image folder {folder}"
        self.image_size = check_image_files(self.files, None, where) if check_images else \
            read_image_file(self.files[0]).shape[:2]
        self.poses = read_poses_file(poses_file, expected=len(self.files)) if poses_file else None
        self.timestamps = read_times_file(folder / "times.txt", expected=len(self.files))
        self.depth_files = None
        if depth_dir is not None:
            depth_dir = Path(depth_dir)
            if not depth_dir.is_dir():
                raise DataError(f"depth folder {depth_dir} does not exist")
            self.depth_files = []
            for f in self.files:
                found = [depth_dir / f"{f.stem}{ext}" for ext in (".npy", ".png")]
                found = [p for p in found if p.is_file()]
                if not found:
                    raise DataError(f"depth folder {depth_dir} has no {f.stem}.npy or {f.stem}.png for image {f.name}")
                self.depth_files.append(found[0])
