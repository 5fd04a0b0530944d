"""Fitting a camera to the network input and the geometry warning (bwdp_core.inference.camera_fit), no ROS."""
import numpy as np
import pytest

from bwdp_core.inference.camera_fit import centre_crop_box, fit_to_network, geometry_warnings

NET = (128, 384)


def test_crop_box_keeps_the_network_aspect_centred():
    box = centre_crop_box((480, 640), NET)          # 4:3 into 3:1 -> full width, a 213-row band
    assert (box.width, box.height) == (640, 213) and box.left == 0 and box.top == (480 - 213) // 2
    box = centre_crop_box((100, 600), NET)          # wider than 3:1 -> full height
    assert (box.width, box.height) == (300, 100) and box.left == 150 and box.top == 0
    box = centre_crop_box((128, 384), NET)
    assert (box.top, box.left, box.height, box.width) == (0, 0, 128, 384)


def test_crop_moves_the_principal_point_with_the_window():
    image = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3).astype(np.uint8)
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    window, K_crop = fit_to_network(image, K, NET, "crop")
    assert window.shape == (213, 640, 3) and np.array_equal(window, image[133:346])
    assert K_crop[0, 2] == 320 and K_crop[1, 2] == 240 - 133 and K_crop[0, 0] == 500
    same, K_same = fit_to_network(image, K, NET, "stretch")
    assert same is image and K_same is K
    with pytest.raises(ValueError):
        fit_to_network(image, K, NET, "zoom")


def test_warns_for_a_squashed_camera_not_for_a_matching_one():
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    (reason,) = geometry_warnings(K, (480, 640), NET, "stretch", tolerance=0.15)
    assert "fx 300 vs fy 133" in reason and "crop" in reason
    assert geometry_warnings(K, (480, 640), NET, "crop", tolerance=0.15) == []
    kitti = np.array([[718.9, 0, 607.2], [0, 718.9, 185.2], [0, 0, 1]])
    assert geometry_warnings(kitti, (370, 1226), NET, "stretch", tolerance=0.15) == []


def test_field_of_view_is_checked_when_the_training_intrinsics_are_known():
    training = (0.58, 1.92, 0.5, 0.5)              # KITTI-like, normalised by the image size
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    reasons = geometry_warnings(K, (480, 640), NET, "crop", tolerance=0.15, training_intrinsics=training)
    assert any("horizontal field of view" in r for r in reasons)
    same = np.array([[0.58 * 640, 0, 320], [0, 1.92 * 213, 106], [0, 0, 1]])
    assert geometry_warnings(same, (213, 640), NET, "stretch", tolerance=0.15, training_intrinsics=training) == []
