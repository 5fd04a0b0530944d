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
    # without GT the strip has no (black) GT column; one row without GT among rows with it gets a black tile
    no_gt = depth_strip([(image, np.full((20, 30), 5.0, np.float32), None)] * 2, tmp_path / "n.png", width=60)
    assert cv2.imread(str(no_gt)).shape == (80, 120, 3)
    mixed = cv2.imread(str(depth_strip([(image, np.full((20, 30), 5.0, np.float32), gt),
                                        (image, np.full((20, 30), 5.0, np.float32), None)], tmp_path / "m.png",
                                       width=60)))
    assert mixed.shape == (80, 180, 3) and not mixed[40:, 120:].any()


def test_top_view_drops_the_flattest_axis():
    xyz = np.c_[np.linspace(0, 10, 5), np.zeros(5) + 0.1 * np.arange(5) % 0.2, np.linspace(0, 30, 5)]
    assert top_view_axes(xyz) == (0, 2)  # KITTI camera frame: x right, z forward


def test_strip_labels_and_extra_trajectories(tmp_path):
    import cv2

    from bwdp_core.eval.plots import plot_trajectories_top_view

    image = np.zeros((20, 30, 3), np.uint8)
    rows = [(image, np.full((20, 30), 5.0, np.float32), np.full((20, 30), 4.0, np.float32))] * 2
    plain = cv2.imread(str(depth_strip(rows, tmp_path / "plain.png", width=120)))
    labelled = cv2.imread(str(depth_strip(rows, tmp_path / "labelled.png", width=120, labels=["frame 0", "frame 9"])))
    assert labelled.shape == plain.shape == (160, 360, 3)
    assert (labelled[:, :120] != plain[:, :120]).any()  # the label is written into the input image
    assert (labelled[:, 120:] == plain[:, 120:]).all()  # the depth panels are untouched
    poses = np.tile(np.eye(4), (5, 1, 1))
    poses[:, 2, 3] = np.arange(5)
    baseline = poses.copy()
    baseline[:, 0, 3] = 0.1 * np.arange(5)
    path = plot_trajectories_top_view(poses, poses, tmp_path / "t.png", title="two\nlines",
                                      others=[(baseline, "constant velocity")], axes=(0, 2))
    assert path.is_file() and path.stat().st_size > 1000
