"""Velodyne -> image projection on a tiny point cloud with a hand-made KITTI calibration."""
import numpy as np
import pytest

from bwdp_core.errors import DataError
from bwdp_core.eval.kitti_velodyne import (
    project_velodyne_to_depth,
    read_calib_file,
    velo_to_image_matrix,
    velodyne_depth_map,
)

DRIVE = "2011_01_01/2011_01_01_drive_0001_sync"


def write_raw_calib(date_dir):
    """f = 100, cx = 20, cy = 10, 40x24 image, P_rect_02 with a 6 px*m baseline term; velodyne (x fwd, y left, z up)
    -> camera (x right, y down, z fwd), 8 cm above and 27 cm behind the camera."""
    date_dir.mkdir(parents=True, exist_ok=True)
    (date_dir / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n"
        "R_rect_00: 1 0 0 0 1 0 0 0 1\n"
        "P_rect_02: 100 0 20 6 0 100 10 0 0 0 1 0\n"
        "S_rect_02: 4.000000e+01 2.400000e+01\n")
    (date_dir / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\nR: 0 -1 0 0 0 -1 1 0 0\nT: 0 -0.08 -0.27\n")


def test_projection_by_hand(tmp_path):
    write_raw_calib(tmp_path / "2011_01_01")
    P, T_rect, shape = velo_to_image_matrix(tmp_path / "2011_01_01", camera=2)
    assert shape == (24, 40)
    points = np.array([
        [10.0, 0.0, 0.0, 1.0],    # camera (0, -0.08, 9.73): u = 20 + 6/9.73 -> 21, v = 10 - 8/9.73 -> 9
        [20.0, 0.0, 0.0, 1.0],    # u = 20 + 6/19.73 -> 20, v = 10 - 8/19.73 -> 10
        [20.0, 0.01, 0.0, 1.0],   # u = 20 + 5/19.73 -> 20: the same pixel (20, 10), one value kept
        [19.0, 0.0, -0.19, 1.0],  # u = 20 + 6/18.73 = 20.32 -> 20, v = 10 + 100*0.11/18.73 = 10.59 -> 11
        [-5.0, 0.0, 0.0, 1.0],    # behind the sensor: dropped
        [10.0, -10.0, 0.0, 1.0],  # far right, u = 20 + 1006/9.73 > 40: dropped
    ])
    depth = project_velodyne_to_depth(points, P, shape, T_rect)
    assert depth.shape == (24, 40) and depth.dtype == np.float32
    assert depth[9, 21] == pytest.approx(10.0)     # velodyne x (the published Eigen GT convention)
    assert depth[11, 20] == pytest.approx(19.0)
    assert depth[10, 20] == pytest.approx(20.0)
    assert np.count_nonzero(depth) == 3
    cam = project_velodyne_to_depth(points, P, shape, T_rect, depth_from="camera")
    assert cam[9, 21] == pytest.approx(9.73)


def test_nearest_point_wins(tmp_path):
    write_raw_calib(tmp_path / "2011_01_01")
    P, T_rect, shape = velo_to_image_matrix(tmp_path / "2011_01_01")
    # two points on one camera ray through pixel (20, 10) at different distances
    cam_points = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 30.0], [0.0, 0.0, 12.0]])
    T_velo_to_cam = T_rect  # R_rect is identity
    velo = (np.linalg.inv(T_velo_to_cam) @ np.c_[cam_points, np.ones(3)].T).T
    depth = project_velodyne_to_depth(velo, P, shape, T_rect, depth_from="camera")
    u = int(round(20 + 6 / 5.0))
    assert depth[10, u] == pytest.approx(5.0)


def test_depth_map_from_raw_layout(tmp_path):
    write_raw_calib(tmp_path / DRIVE.split("/")[0])
    scan_dir = tmp_path / DRIVE / "velodyne_points" / "data"
    scan_dir.mkdir(parents=True)
    np.array([[10.0, 0.0, 0.0, 0.5]], dtype=np.float32).tofile(scan_dir / "0000000007.bin")
    depth = velodyne_depth_map(tmp_path, DRIVE, 7, camera=2)
    assert depth[9, 21] == pytest.approx(10.0)
    with pytest.raises(DataError, match="0000000008.bin"):
        velodyne_depth_map(tmp_path, DRIVE, 8)
    with pytest.raises(DataError, match="P_rect_03"):
        velodyne_depth_map(tmp_path, DRIVE, 7, camera=3)


def test_calib_parser_skips_text(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("calib_time: 09-Jan-2012 13:57:47\nK_00: 1 2 3\ncorner_dist: 9.950000e-02\n")
    calib = read_calib_file(path)
    assert set(calib) == {"K_00", "corner_dist"}
    with pytest.raises(DataError, match="not found"):
        read_calib_file(tmp_path / "missing.txt")
