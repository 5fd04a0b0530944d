"""Ground-truth depth for the KITTI Eigen split: raw velodyne scans projected into a rectified colour camera.

Projection (KITTI raw devkit): a velodyne point X_v (homogeneous) lands at pixel
``P_rect_0c · R_rect_00 · [R|T]_velo_to_cam · X_v`` (divided by its third row), c = 2 (left colour, 'l') or 3 ('r').
Points behind the sensor (velodyne x < 0) and outside the image are dropped; when several points hit one pixel the
nearest depth is kept. Pixel coordinates are rounded to the nearest integer (0-based; the MATLAB-inherited "- 1" of
some reference scripts is not applied: it shifts the map by one pixel).

The depth stored per pixel is, by default, the velodyne forward distance (its x coordinate), which is the value the
published Eigen-split numbers were computed with (Eigen et al. 2014 and the code bases that followed). ``depth_from=
"camera"`` stores the rectified camera z instead (≈ 0.27 m smaller on KITTI).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bwdp_core.errors import DataError


def read_calib_file(path: str | Path) -> dict[str, np.ndarray]:
    """Parse a KITTI ``key: v1 v2 ...`` calibration file into float arrays (non-numeric entries such as dates are
    skipped). DataError naming the file when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration file not found: {path}")
    values: dict[str, np.ndarray] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read calibration file {path}: {err}") from None
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, rest = line.split(":", 1)
        try:
            values[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            continue  # e.g. "calib_time: 09-Jan-2012 13:57:47"
    return values


def _calib_entry(calib: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in calib or calib[key].size != size:
        raise DataError(f"{path}: entry '{key}' with {size} numbers is missing")
    return calib[key]


def velo_to_image_matrix(calib_dir: str | Path, camera: int = 2) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """From a KITTI raw date folder (``calib_cam_to_cam.txt``, ``calib_velo_to_cam.txt``) build

    - ``P_velo_to_img`` [3, 4]: P_rect_0c · R_rect_00 · T_velo_to_cam (velodyne points -> homogeneous pixels),
    - ``T_velo_to_rect`` [4, 4]: R_rect_00 · T_velo_to_cam (velodyne points -> rectified camera-0 coordinates),
    - the rectified image size (H, W) from S_rect_0c.
    """
    calib_dir = Path(calib_dir)
    cam_path = calib_dir / "calib_cam_to_cam.txt"
    velo_path = calib_dir / "calib_velo_to_cam.txt"
    cam = read_calib_file(cam_path)
    velo = read_calib_file(velo_path)
    T_velo_to_cam = np.eye(4)
    T_velo_to_cam[:3, :3] = _calib_entry(velo, "R", 9, velo_path).reshape(3, 3)
    T_velo_to_cam[:3, 3] = _calib_entry(velo, "T", 3, velo_path)
    R_rect = np.eye(4)
    R_rect[:3, :3] = _calib_entry(cam, "R_rect_00", 9, cam_path).reshape(3, 3)
    P_rect = _calib_entry(cam, f"P_rect_0{camera}", 12, cam_path).reshape(3, 4)
    width, height = _calib_entry(cam, f"S_rect_0{camera}", 2, cam_path)
    T_velo_to_rect = R_rect @ T_velo_to_cam
    return P_rect @ T_velo_to_rect, T_velo_to_rect, (int(round(height)), int(round(width)))


def load_velodyne_points(path: str | Path) -> np.ndarray:
    """A KITTI ``velodyne_points/data/*.bin`` scan: float32 [N, 4] (x, y, z, reflectance), x forward, metres."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"velodyne scan not found: {path}")
    data = np.fromfile(path, dtype=np.float32)
    if data.size % 4:
        raise DataError(f"velodyne scan {path} is not a multiple of 4 float32 values (corrupt file?)")
    return data.reshape(-1, 4)


def project_velodyne_to_depth(points: np.ndarray, P_velo_to_img: np.ndarray, image_shape: tuple[int, int],
                              T_velo_to_rect: np.ndarray | None = None, depth_from: str = "velodyne") -> np.ndarray:
    """Sparse depth map float32 [H, W] (0 = no point) from velodyne points [N, >=3].

    ``depth_from="velodyne"``: the point's velodyne x (the published Eigen GT); ``"camera"``: its rectified camera z
    (needs ``T_velo_to_rect``). The nearest depth wins where several points fall into one pixel.
    """
    height, width = image_shape
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    pts = pts[pts[:, 0] >= 0]  # in front of the sensor
    homog = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
    proj = homog @ P_velo_to_img.T
    in_front = proj[:, 2] > 0
    proj, pts, homog = proj[in_front], pts[in_front], homog[in_front]
    u = np.round(proj[:, 0] / proj[:, 2]).astype(np.int64)
    v = np.round(proj[:, 1] / proj[:, 2]).astype(np.int64)
    if depth_from == "velodyne":
        depth = pts[:, 0]
    elif depth_from == "camera":
        if T_velo_to_rect is None:
            raise ValueError("depth_from='camera' needs T_velo_to_rect")
        depth = (homog @ T_velo_to_rect.T)[:, 2]
    else:
        raise ValueError(f"depth_from must be 'velodyne' or 'camera', not {depth_from!r}")
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height) & (depth > 0)
    u, v, depth = u[inside], v[inside], depth[inside]
    depth_map = np.zeros((height, width), dtype=np.float32)
    order = np.argsort(-depth)  # far first, so the nearest point is written last and wins
    depth_map[v[order], u[order]] = depth[order]
    return depth_map


def velodyne_depth_map(raw_root: str | Path, drive: str, frame: int, camera: int = 2,
                       image_shape: tuple[int, int] | None = None, depth_from: str = "velodyne") -> np.ndarray:
    """GT depth [H, W] of frame ``frame`` of ``drive`` (``"2011_09_26/2011_09_26_drive_0002_sync"``) in camera 2 or 3.

    Reads ``RAW_ROOT/<date>/calib_*.txt`` and ``RAW_ROOT/<drive>/velodyne_points/data/<frame:010d>.bin``;
    ``image_shape`` defaults to the rectified size in the calibration.
    """
    raw_root = Path(raw_root)
    date_dir = raw_root / drive.split("/")[0]
    P, T_rect, calib_shape = velo_to_image_matrix(date_dir, camera)
    points = load_velodyne_points(raw_root / drive / "velodyne_points" / "data" / f"{frame:010d}.bin")
    return project_velodyne_to_depth(points, P, image_shape or calib_shape, T_rect, depth_from)
