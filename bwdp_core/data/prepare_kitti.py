"""`bwdp prepare-kitti RAW_ROOT --out DIR --height 256 --width 832`: KITTI raw drives -> a resized training folder.

Input (the KITTI raw download, unzipped)::

    RAW_ROOT/2011_09_26/calib_cam_to_cam.txt                      P_rect_02, P_rect_03 (3x4, rectified cameras)
    RAW_ROOT/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png   (+ image_03, timestamps.txt)
    RAW_ROOT/2011_09_26/2011_09_26_drive_0001_sync/oxts/data/0000000000.txt      (30 numbers; vf, vl = fields 9, 10)

Output: one folder per drive and camera (``<drive>_02``, ``<drive>_03``: the two colour cameras as separate
sequences) in the layout :class:`bwdp_core.data.kitti_raw.KittiRawSource` reads (frames, cam.txt, times.txt,
frames.txt, .done marker), plus ``DIR/train.txt``.

Exclusion: ``--exclude-scenes FILE`` lists drives to leave out (one per line, ``2011_09_26_drive_0117`` as in the Eigen
test-scene list; a ``<date>/<drive>_sync ...`` line such as the Eigen test-file list excludes that drive too).

Static frames (no ego-motion: they teach nothing and break the photometric loss) are dropped before writing, by one of:
  list   frames named in ``--static-frames FILE`` (``<date> <drive>_sync <frame index>`` per line);
  oxts   the GPS/IMU forward + lateral speed sqrt(vf^2 + vl^2) of the frame below ``--min-speed`` m/s;
  image  image motion: the mean absolute grey-level difference (0-255, at the output size) to the last kept frame below
         ``--min-motion``;
  none   keep every frame.
``--static-method auto`` (default) uses the list when one is given, else oxts when the drive has oxts data, else image
motion; the method used for each drive is printed and saved in its ``.done`` marker.

Intrinsics: P_rect_02 / P_rect_03 left 3x3, rescaled exactly to the output size (see data/augment.py). Re-running skips
drives whose ``.done`` marker records the same settings; a sequence is written to ``<name>.tmp`` and renamed when done.
"""
from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from bwdp_core.data.augment import resize_image, resize_intrinsics
from bwdp_core.data.kitti_raw import DONE_MARKER
from bwdp_core.data.sources import list_images, read_image_file, write_intrinsics_file
from bwdp_core.errors import ConfigError, DataError

CAMERAS = ("02", "03")
OXTS_VF, OXTS_VL = 8, 9  # 0-based columns of forward and leftward velocity (m/s) in an oxts/data line
STATIC_METHODS = ("auto", "list", "oxts", "image", "none")


@dataclass
class Drive:
    date: str
    name: str  # e.g. 2011_09_26_drive_0001_sync
    path: Path

    @property
    def scene(self) -> str:  # 2011_09_26_drive_0001
        return self.name[: -len("_sync")] if self.name.endswith("_sync") else self.name


# ---------------------------------------------------------------------------------------------------- readers
def read_calib_cam_to_cam(path) -> dict[str, np.ndarray]:
    """``calib_cam_to_cam.txt`` -> {key: float array}; non-numeric lines (calib_time) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration file {path} does not exist")
    calib = {}
    for line in path.read_text().splitlines():
        key, sep, values = line.partition(":")
        if not sep:
            continue
        try:
            calib[key.strip()] = np.array([float(v) for v in values.split()])
        except ValueError:
            continue
    return calib


def rectified_intrinsics(calib_file, camera: str) -> np.ndarray:
    """Left 3x3 of ``P_rect_<camera>`` from calib_cam_to_cam.txt."""
    calib = read_calib_cam_to_cam(calib_file)
    key = f"P_rect_{camera}"
    if key not in calib or calib[key].size != 12:
        raise DataError(f"calibration file {calib_file} has no 12-number {key}")
    K = calib[key].reshape(3, 4)[:, :3].copy()
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DataError(f"calibration file {calib_file}: {key} has non-positive focal lengths")
    return K


def find_drives(raw_root) -> list[Drive]:
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise DataError(f"KITTI raw folder {raw_root} does not exist")
    drives = [Drive(p.parent.name, p.name, p) for p in sorted(raw_root.glob("*/*_drive_*_sync")) if p.is_dir()]
    if not drives:
        raise DataError(f"KITTI raw folder {raw_root} has no <date>/<date>_drive_NNNN_sync folders")
    return drives


def read_scene_list(path) -> set[str]:
    """Drives to exclude: ``2011_09_26_drive_0117`` lines, or ``<date>/<drive>_sync ...`` lines (first token)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"scene list {path} does not exist")
    scenes = set()
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        token = line.split()[0].rstrip("/").split("/")[-1]
        scenes.add(token[: -len("_sync")] if token.endswith("_sync") else token)
    return scenes


def read_static_frames(path) -> set[tuple[str, int]]:
    """``<date> <drive>_sync <frame>`` lines -> {(scene, frame index)}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"static-frames list {path} does not exist")
    frames = set()
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 3:
            raise DataError(f"static-frames list {path} line {lineno}: expected '<date> <drive> <frame>', got {line!r}")
        drive = parts[1][: -len("_sync")] if parts[1].endswith("_sync") else parts[1]
        try:
            frames.add((drive, int(parts[2])))
        except ValueError as err:
            raise DataError(f"static-frames list {path} line {lineno}: frame {parts[2]!r} is not a number") from err
    return frames


def oxts_speeds(drive_dir: Path, frame_ids: list[int]) -> np.ndarray | None:
    """Planar speed sqrt(vf^2 + vl^2) (m/s) per frame from oxts/data/<frame>.txt, None when oxts is missing."""
    oxts_dir = drive_dir / "oxts" / "data"
    if not oxts_dir.is_dir():
        return None
    speeds = []
    for frame in frame_ids:
        f = oxts_dir / f"{frame:010d}.txt"
        if not f.is_file():
            return None
        try:
            values = [float(v) for v in f.read_text().split()]
        except ValueError as err:
            raise DataError(f"oxts file {f} is not numbers") from err
        if len(values) <= OXTS_VL:
            raise DataError(f"oxts file {f} has {len(values)} numbers, expected 30")
        speeds.append(np.hypot(values[OXTS_VF], values[OXTS_VL]))
    return np.asarray(speeds)


def read_timestamps(path: Path, count: int) -> np.ndarray | None:
    """KITTI ``timestamps.txt`` (``2011-09-26 13:02:25.964389445``) -> seconds since the first line, or None."""
    if not path.is_file():
        return None
    lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) != count:
        return None
    seconds = []
    for line in lines:
        day, _, clock = line.partition(" ")
        whole, _, frac = clock.partition(".")
        t = datetime.strptime(f"{day} {whole}", "%Y-%m-%d %H:%M:%S").timestamp()
        seconds.append(t + (float("0." + frac) if frac else 0.0))
    seconds = np.asarray(seconds)
    return seconds - seconds[0]


# ------------------------------------------------------------------------------------------------- static frames
def _grey_small(path: Path, size: tuple[int, int]) -> np.ndarray:
    grey = cv2.cvtColor(resize_image(read_image_file(path), size), cv2.COLOR_RGB2GRAY)
    return grey.astype(np.float32)


def moving_by_image(files: list[Path], size: tuple[int, int], min_motion: float) -> np.ndarray:
    """Keep-mask: a frame is kept when its mean |grey difference| to the last KEPT frame is >= min_motion."""
    keep = np.zeros(len(files), dtype=bool)
    keep[0] = True
    last = _grey_small(files[0], size)
    for i in range(1, len(files)):
        current = _grey_small(files[i], size)
        if float(np.mean(np.abs(current - last))) >= min_motion:
            keep[i] = True
            last = current
    return keep


def select_frames(drive: Drive, files: list[Path], method: str, static_list: set | None, min_speed: float,
                  min_motion: float, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Keep-mask over ``files`` (raw frames of image_02) and the method actually used."""
    frame_ids = [int(f.stem) for f in files]
    if method == "auto":
        if static_list is not None:
            method = "list"
        elif (drive.path / "oxts" / "data").is_dir():
            method = "oxts"
        else:
            method = "image"
    if method == "none":
        return np.ones(len(files), dtype=bool), method
    if method == "list":
        if static_list is None:
            raise ConfigError("--static-method list needs --static-frames FILE")
        return np.array([(drive.scene, f) not in static_list for f in frame_ids]), method
    if method == "oxts":
        speeds = oxts_speeds(drive.path, frame_ids)
        if speeds is None:
            raise DataError(f"drive {drive.path} has no complete oxts/data for --static-method oxts")
        return speeds >= min_speed, method
    return moving_by_image(files, size, min_motion), method


# ------------------------------------------------------------------------------------------------- preparation
def _settings(height, width, method, min_speed, min_motion, ext, static_list_file) -> dict:
    return {"height": height, "width": width, "static_method": method, "min_speed": min_speed,
            "min_motion": min_motion, "ext": ext, "static_frames": str(static_list_file or "")}


def _is_done(folder: Path, settings: dict) -> bool:
    marker = folder / DONE_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("settings") == settings
    except (ValueError, AttributeError):
        return False


def prepare_sequence(drive: Drive, camera: str, out: Path, size: tuple[int, int], keep: np.ndarray, method: str,
                     settings: dict, ext: str, pool: ThreadPoolExecutor, progress=None) -> int:
    """Write one drive/camera folder (via ``<name>.tmp`` + rename); returns the number of frames written."""
    src_dir = drive.path / f"image_{camera}" / "data"
    files = list_images(src_dir)
    if len(files) != len(keep):
        raise DataError(f"{src_dir} has {len(files)} images but image_02/data has {len(keep)}; the drive is incomplete")
    raw_size = read_image_file(files[0]).shape[:2]
    K = resize_intrinsics(rectified_intrinsics(drive.path.parent / "calib_cam_to_cam.txt", camera), raw_size, size)
    final = out / f"{drive.name}_{camera}"
    tmp = out / f"{drive.name}_{camera}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    kept = [f for f, k in zip(files, keep) if k]

    def convert(job):
        index, src = job
        image = read_image_file(src)
        if image.shape[:2] != raw_size:
            raise DataError(f"image {src} is {image.shape[1]}x{image.shape[0]}, the drive's first is "
                            f"{raw_size[1]}x{raw_size[0]}")
        bgr = cv2.cvtColor(resize_image(image, size), cv2.COLOR_RGB2BGR)
        target = tmp / f"{index:06d}.{ext}"
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []
        if not cv2.imwrite(str(target), bgr, params):
            raise DataError(f"cannot write {target}")

    for _ in pool.map(convert, enumerate(kept)):
        if progress is not None:
            progress.update(1)
    write_intrinsics_file(tmp / "cam.txt", K)
    np.savetxt(tmp / "frames.txt", np.array([int(f.stem) for f in kept], dtype=np.int64), fmt="%d")
    times = read_timestamps(drive.path / f"image_{camera}" / "timestamps.txt", len(files))
    if times is not None:
        np.savetxt(tmp / "times.txt", times[keep], fmt="%.6f")
    info = {"settings": settings, "drive": f"{drive.date}/{drive.name}", "camera": camera, "static_method": method,
            "raw_frames": len(files), "frames": len(kept), "raw_size": list(raw_size)}
    (tmp / DONE_MARKER).write_text(json.dumps(info, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return len(kept)


def prepare_kitti(raw_root, out, height: int = 256, width: int = 832, exclude_scenes=None, static_frames=None,
                  static_method: str = "auto", min_speed: float = 0.3, min_motion: float = 2.0, ext: str = "jpg",
                  workers: int | None = None, min_frames: int = 3, progress: bool = True, log=print) -> dict:
    """Prepare every drive under ``raw_root`` into ``out``; returns a summary dict (see module docstring)."""

    if static_method not in STATIC_METHODS:
        raise ConfigError(f"--static-method must be one of {', '.join(STATIC_METHODS)}, got {static_method!r}")
    if ext not in ("jpg", "png"):
        raise ConfigError(f"--ext must be jpg or png, got {ext!r}")
    if height < 8 or width < 8:
        raise ConfigError(f"output size {height}x{width} is too small")
    out = Path(out)
    size = (int(height), int(width))
    excluded = read_scene_list(exclude_scenes) if exclude_scenes else set()
    static_list = read_static_frames(static_frames) if static_frames else None
    drives = find_drives(raw_root)
    settings = _settings(size[0], size[1], static_method, min_speed, min_motion, ext, static_frames)
    out.mkdir(parents=True, exist_ok=True)

    summary = {"prepared": [], "skipped_done": [], "excluded": [], "too_short": [], "methods": {}}
    todo = []
    for drive in drives:
        if drive.scene in excluded:
            summary["excluded"].append(drive.name)
            continue
        for camera in CAMERAS:
            if not (drive.path / f"image_{camera}" / "data").is_dir():
                raise DataError(f"drive {drive.path} has no image_{camera}/data folder")
            if not (drive.path.parent / "calib_cam_to_cam.txt").is_file():
                raise DataError(f"calibration file {drive.path.parent / 'calib_cam_to_cam.txt'} does not exist")
            folder = out / f"{drive.name}_{camera}"
            if _is_done(folder, settings):
                summary["skipped_done"].append(folder.name)
            else:
                todo.append((drive, camera))
    if summary["skipped_done"]:
        log(f"prepare-kitti: {len(summary['skipped_done'])} sequences already done, skipped")

    # one keep-mask per drive (from camera 02), shared by both cameras so the stereo pair stays in sync
    masks: dict[str, tuple[np.ndarray, str]] = {}
    total = 0
    for drive, _ in todo:
        if drive.name not in masks:
            files = list_images(drive.path / "image_02" / "data")
            masks[drive.name] = select_frames(drive, files, static_method, static_list, min_speed, min_motion, size)
            keep, method = masks[drive.name]
            summary["methods"][drive.name] = method
            log(f"prepare-kitti: {drive.name}: {int(keep.sum())}/{len(keep)} frames kept "
                f"(static frames by {method})")
        total += int(masks[drive.name][0].sum())

    workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=total, unit="frame", desc="prepare-kitti", disable=not progress) as bar:
        for drive, camera in todo:
            keep, method = masks[drive.name]
            name = f"{drive.name}_{camera}"
            bar.set_postfix_str(name)
            if int(keep.sum()) < min_frames:
                summary["too_short"].append(name)
                log(f"prepare-kitti: {name}: only {int(keep.sum())} moving frames, skipped")
                bar.update(int(keep.sum()))
                continue
            count = prepare_sequence(drive, camera, out, size, keep, method, settings, ext, pool, bar)
            summary["prepared"].append((name, count))

    wanted = [f"{d.name}_{c}" for d in drives if d.scene not in excluded for c in CAMERAS]
    done = [name for name in wanted if _is_done(out / name, settings)]
    (out / "train.txt").write_text("".join(n + "\n" for n in done))
    summary["sequences"] = done
    return summary


