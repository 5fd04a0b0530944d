"""The camera mount from static transforms (bwdp_core.inference.transform_tree), no ROS."""
import numpy as np

from bwdp_core.frames import OPTICAL_RPY, transform_from_xyz_rpy
from bwdp_core.inference.transform_tree import StaticTransformTree


def test_chain_is_composed_and_inverse_lookups_agree():
    tree = StaticTransformTree()
    T1 = transform_from_xyz_rpy((0.2, 0.0, 0.5), (0.0, 0.1, 0.0))
    T2 = transform_from_xyz_rpy((0.0, 0.03, 0.0), OPTICAL_RPY)
    assert tree.add("base_link", "camera_link", T1, source="urdf") is None
    assert tree.lookup("base_link", "camera_optical_frame") is None        # not connected yet
    assert tree.add("camera_link", "camera_optical_frame", T2, source="urdf") is None
    assert np.allclose(tree.lookup("base_link", "camera_optical_frame"), T1 @ T2)
    assert np.allclose(tree.lookup("camera_optical_frame", "base_link") @ T1 @ T2, np.eye(4))
    assert np.allclose(tree.lookup("camera_link", "camera_link"), np.eye(4))


def test_sibling_frames_through_a_common_root():
    tree = StaticTransformTree()
    Ta = transform_from_xyz_rpy((1, 0, 0), (0, 0, 0.3))
    Tb = transform_from_xyz_rpy((0, 2, 0), (0, 0, -0.2))
    tree.add("base_footprint", "base_link", Ta)
    tree.add("base_footprint", "camera", Tb)
    assert np.allclose(tree.lookup("base_link", "camera"), np.linalg.inv(Ta) @ Tb)


def test_a_second_parent_is_reported_and_the_parent_is_known():
    tree = StaticTransformTree()
    tree.add("base_link", "cam", np.eye(4), source="driver")
    assert tree.parent_of("cam").parent == "base_link" and tree.parent_of("cam").source == "driver"
    assert "had parent 'base_link'" in tree.add("mount", "cam", np.eye(4), source="other")
    assert tree.parent_of("cam").parent == "mount" and tree.parent_of("base_link") is None
