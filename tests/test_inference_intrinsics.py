"""The one intrinsics picker (node + `bwdp replay`) and the one camera-matrix rule (also the bag reader's)."""
from types import SimpleNamespace

import numpy as np
import pytest

from bwdp_core.data.bag_io import intrinsics_from_camera_info
from bwdp_core.errors import DataError
from bwdp_core.inference.intrinsics import IntrinsicsPicker, camera_info_intrinsics, parameter_intrinsics

K = np.array([[300.0, 0.0, 190.0], [0.0, 300.0, 62.0], [0.0, 0.0, 1.0]])
H, W = 128, 384


def _node_rule(k):
    return camera_info_intrinsics(np.asarray(k).reshape(-1).tolist(), H, W)[0]


def _bag_rule(k):
    return intrinsics_from_camera_info(SimpleNamespace(k=np.asarray(k).reshape(-1)), "topic /c")


@pytest.mark.parametrize("rule", [_node_rule, _bag_rule])
def test_one_camera_matrix_rule_for_the_node_and_the_bag_reader(rule):
    np.testing.assert_array_equal(rule(K), K)
    near_one = K.copy()
    near_one[2, 2] = 1.0 + 1e-9  # float round-off is still a pinhole matrix (the bag reader required exactly 1)
    np.testing.assert_allclose(rule(near_one), near_one)
    not_pinhole = K.copy()
    not_pinhole[2, 2] = 0.0  # the node used to accept this (it checked fx, fy only); the bag reader did not
    bad = [np.zeros((3, 3)), np.full((3, 3), np.nan), not_pinhole, K * 2, np.diag([-1.0, 1.0, 1.0]), K[:2]]
    for k in bad:
        with pytest.raises(DataError):
            rule(k)


def test_camera_info_needs_its_image_size():
    assert camera_info_intrinsics(K.reshape(-1), H, W)[1] == (H, W)
    with pytest.raises(DataError, match="zero image size"):
        camera_info_intrinsics(K.reshape(-1), 0, 0)
    with pytest.raises(DataError, match="no usable intrinsics"):
        camera_info_intrinsics([0.0] * 9, H, W)


def test_parameter_intrinsics_are_optional():
    assert parameter_intrinsics(0.0, 0.0, 0.0, 0.0) is None
    assert parameter_intrinsics(300.0, 0.0, 190.0, 62.0) is None
    np.testing.assert_array_equal(parameter_intrinsics(300.0, 300.0, 190.0, 62.0), K)


def test_picker_prefers_camera_info_and_checks_sizes():
    picker = IntrinsicsPicker(parameter_intrinsics(100.0, 100.0, 50.0, 40.0))
    np.testing.assert_array_equal(picker.pick((H, W), camera_info_intrinsics(K.reshape(-1), H, W), "-"), K)
    with pytest.raises(DataError, match="does not match camera_info 384x128") as err:
        picker.pick((96, 288), camera_info_intrinsics(K.reshape(-1), H, W), "-")
    assert err.value.category == "size"
    # no camera_info: the fallback, which belongs to the first image size it is used with
    assert picker.pick((96, 288), None, "-")[0, 0] == 100.0
    with pytest.raises(DataError, match="image size changed from 288x96 to 384x128") as err:
        picker.pick((H, W), None, "-")
    assert err.value.category == "size"
    with pytest.raises(DataError, match="no camera_info yet") as err:
        IntrinsicsPicker().pick((H, W), None, "no camera_info yet")
    assert err.value.category == "no_camera_info"
