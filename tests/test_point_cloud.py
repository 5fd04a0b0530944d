"""Depth back-projection for the node's PointCloud2 (bwdp_core.inference.point_cloud), no ROS."""
import numpy as np
import pytest

from bwdp_core.inference.point_cloud import back_project_depth, depth_cloud


def test_points_project_back_onto_their_pixels_and_skip_invalid_depth():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 10, size=(12, 20)).astype(np.float32)
    depth[0, 0], depth[3, 4], depth[5, 5] = np.nan, 0.0, -1.0
    K = np.array([[30.0, 0.0, 9.5], [0.0, 28.0, 6.0], [0.0, 0.0, 1.0]])
    points, flat = back_project_depth(depth, K)
    assert len(points) == depth.size - 3 and np.all(np.isfinite(points))
    uvw = (K @ points.astype(np.float64).T).T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    assert np.allclose(u, flat % 20, atol=1e-4) and np.allclose(v, flat // 20, atol=1e-4)
    assert np.allclose(points[:, 2], depth.reshape(-1)[flat])


def test_decimation_keeps_every_nth_row_and_column():
    depth = np.ones((8, 9), np.float32)
    K = np.array([[5.0, 0, 4], [0, 5.0, 4], [0, 0, 1]])
    points, flat = back_project_depth(depth, K, decimation=3)
    assert len(points) == 3 * 3 and set(flat % 9) == {0, 3, 6} and set(flat // 9) == {0, 3, 6}
    with pytest.raises(ValueError):
        back_project_depth(depth, K, decimation=0)


def test_colours_come_from_the_image_at_the_depth_size():
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, 30:] = (255, 0, 0)          # right half red
    depth = np.full((4, 6), 2.0, np.float32)
    cloud = depth_cloud(depth, np.array([[6.0, 0, 2.5], [0, 6.0, 1.5], [0, 0, 1]]), image)
    assert len(cloud) == 24 and cloud.rgb.shape == (24, 3) and cloud.rgb.dtype == np.uint8
    right = cloud.points[:, 0] > 0
    assert np.all(cloud.rgb[right] == (255, 0, 0)) and np.all(cloud.rgb[~right] == 0)
