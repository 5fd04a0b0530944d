"""Depth colormaps and the top-view axis choice."""
import numpy as np

from bwdp_core.eval.plots import colorize_inverse_depth, depth_strip, top_view_axes


def test_inverse_depth_colormap_near_is_bright_invalid_is_black():
    depth = np.array([[2.0, 50.0, 0.0, np.nan]], dtype=np.float32)
    rgb = colorize_inverse_depth(depth, vmax=0.5)
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].sum() > rgb[0, 1].sum()
    assert (rgb[0, 2:] == 0).all()


def test_sparse_gt_is_dilated_and_strip_is_written(tmp_path):
    gt = np.zeros((20, 30), np.float32)
    gt[10, 15] = 5.0
    assert (colorize_inverse_depth(gt, dilate=2).any(axis=2)).sum() == 25
    image = np.zeros((20, 30, 3), np.uint8)
    path = depth_strip([(image, np.full((20, 30), 5.0, np.float32), gt)] * 2, tmp_path / "s.png", width=60)
    import cv2
    assert cv2.imread(str(path)).shape == (80, 180, 3)


def test_top_view_drops_the_flattest_axis():
    xyz = np.c_[np.linspace(0, 10, 5), np.zeros(5) + 0.1 * np.arange(5) % 0.2, np.linspace(0, 30, 5)]
    assert top_view_axes(xyz) == (0, 2)  # KITTI camera frame: x right, z forward
