"""`FrameSource`: one camera's frame sequence, whatever it is stored in, plus the small readers every source shares.

A source knows its length, native image size and 3x3 intrinsics up front (so bad data fails before training starts)
and loads frames lazily: ``load_image(i)`` -> uint8 [H, W, 3] RGB, ``load_depth(i)`` -> float32 [H, W] metres
(0 = invalid) or None. ``poses`` (camera-to-world [N, 4, 4]) and ``timestamps`` (seconds [N]) are None when unknown.
Implementations: KittiOdometrySource, KittiRawSource, ImageFolderSource (file-backed: FileFrameSource), VideoSource,
RosbagSource, SynthSource.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from bwdp_core.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff")


class FrameSource:
    """Base class. Subclasses set ``name``, ``intrinsics``, ``image_size``, ``poses``, ``timestamps`` in __init__."""

    name: str = "source"
    intrinsics: np.ndarray  # float64 [3, 3] at image_size
    image_size: tuple[int, int]  # (H, W)
    poses: np.ndarray | None = None
    timestamps: np.ndarray | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def load_image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def load_depth(self, i: int) -> np.ndarray | None:
        return None

    @property
    def has_depth(self) -> bool:
        return False

    def check_index(self, i: int) -> int:
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range for {self.name} ({len(self)} frames)")
        return int(i)

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"{type(self).__name__}({self.name!r}, {len(self)} frames, {w}x{h})"


class FileFrameSource(FrameSource):
    """A source whose frames are image files (``files``) with optional per-frame depth files (``depth_files``)."""

    files: list[Path]
    depth_files: list[Path] | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def has_depth(self) -> bool:
        return self.depth_files is not None

    def load_image(self, i: int) -> np.ndarray:
        return read_image_file(self.files[self.check_index(i)])

    def load_depth(self, i: int) -> np.ndarray | None:
        if self.depth_files is None:
            return None
        return read_depth_file(self.depth_files[self.check_index(i)])


# ------------------------------------------------------------------------------------------------ shared readers
def read_image_file(path) -> np.ndarray:
    """Image file -> uint8 RGB [H, W, 3] (grey replicated, alpha dropped, 16 bit -> high byte); DataError if
    unreadable."""
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise DataError(f"image file {path} does not exist")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(f"image file {path} is unreadable (corrupt or not an image)")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_file_size(path) -> tuple[int, int]:
    """(H, W) of an image file (decodes it: also proves it is readable)."""
    return read_image_file(path).shape[:2]


def list_images(folder) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; DataError when the folder is missing or has none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"image folder {folder} contains no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def as_intrinsics(value, where: str) -> np.ndarray:
    """3x3 matrix, 9 numbers or (fx, fy, cx, cy) -> float64 3x3; DataError naming ``where`` otherwise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"intrinsics from {where} are not numbers: {value!r}") from err
    if arr.size == 4:
        fx, fy, cx, cy = arr.reshape(-1)
        arr = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    elif arr.size == 9:
        arr = arr.reshape(3, 3)
    else:
        raise DataError(f"intrinsics from {where} must be a 3x3 matrix or fx fy cx cy, got {arr.size} numbers")
    if not np.all(np.isfinite(arr)) or arr[0, 0] <= 0 or arr[1, 1] <= 0:
        raise DataError(f"intrinsics from {where} need finite values and positive fx, fy: {arr.tolist()}")
    if not np.allclose(arr[2], [0.0, 0.0, 1.0]) or arr[1, 0] != 0:
        raise DataError(f"intrinsics from {where} are not a pinhole matrix (last row must be 0 0 1): {arr.tolist()}")
    return arr


def read_intrinsics_file(path) -> np.ndarray:
    """``cam.txt``: a 3x3 matrix (3 rows of 3 numbers, or 9 numbers) or ``fx fy cx cy``; '#' starts a comment."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"intrinsics file {path} does not exist")
    numbers: list[float] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        try:
            numbers.extend(float(tok) for tok in line.split())
        except ValueError as err:
            raise DataError(f"intrinsics file {path} line {lineno} is not numbers: {line!r}") from err
    return as_intrinsics(numbers, str(path))


def write_intrinsics_file(path, K) -> None:
    """Write a 3x3 ``cam.txt`` (three rows) readable by :func:`read_intrinsics_file`."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    Path(path).write_text("".join(" ".join(f"{v:.10g}" for v in row) + "\n" for row in K))


def read_poses_file(path, expected: int | None = None) -> np.ndarray:
    """KITTI poses file (12 numbers a line = top 3 rows of camera-to-world) -> float64 [N, 4, 4]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"poses file {path} does not exist")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError as err:
            raise DataError(f"poses file {path} line {lineno} is not numbers") from err
        if len(values) != 12:
            raise DataError(f"poses file {path} line {lineno} has {len(values)} numbers, expected 12")
        rows.append(values)
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    if rows:
        poses[:, :3, :] = np.asarray(rows).reshape(-1, 3, 4)
    if expected is not None and len(poses) != expected:
        raise DataError(f"poses file {path} has {len(poses)} poses but the sequence has {expected} frames")
    return poses


def read_times_file(path, expected: int) -> np.ndarray | None:
    """``times.txt`` (one number of seconds per line, one line per frame) -> float64 [N], or None when absent."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        times = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as err:
        raise DataError(f"timestamps file {path} is not one number per line") from err
    if len(times) != expected:
        raise DataError(f"timestamps file {path} has {len(times)} lines for {expected} frames")
    return times


def read_depth_file(path) -> np.ndarray:
    """Depth ground truth: ``.npy`` float metres, or uint16 PNG (value / 256, KITTI) -> float32 [H, W], 0 = invalid."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"depth file {path} does not exist")
    if path.suffix == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"depth file {path} is unreadable: {err}") from err
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.dtype != np.uint16:
            raise DataError(f"depth file {path} is not a uint16 PNG")
        depth = raw.astype(np.float32) / 256.0
    depth = np.squeeze(np.asarray(depth, dtype=np.float32))
    if depth.ndim != 2:
        raise DataError(f"depth file {path} has shape {depth.shape}, expected [H, W]")
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def check_image_files(files, expected_size: tuple[int, int] | None, where: str) -> tuple[int, int]:
    """Read the header of every image file (fast: no pixel decoding) and check they share one size.

    Returns (H, W). DataError naming the first missing, unreadable or differently sized file. The first file is also
    fully decoded, so a folder of undecodable images fails here rather than in a DataLoader worker.
    """

    files = list(files)
    if not files:
        raise DataError(f"{where} has no images")
    size = expected_size or image_file_size(files[0])
    for path in files:
        try:
            with Image.open(path) as img:
                w, h = img.size
        except FileNotFoundError as err:
            raise DataError(f"image file {path} does not exist") from err
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise DataError(f"image file {path} is unreadable (corrupt or not an image)") from err
        if (h, w) != tuple(size):
            raise DataError(f"image file {path} is {w}x{h}, but {where} has {size[1]}x{size[0]} images")
    return tuple(size)
