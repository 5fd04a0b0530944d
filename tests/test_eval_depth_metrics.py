"""Depth metrics against values computed by hand; Garg crop, depth range, clamp and median scaling."""
import math

import numpy as np
import pytest

from bwdp_core.eval.depth_metrics import (
    compute_depth_errors,
    compute_depth_metrics,
    evaluate_depth_image,
    format_table,
    garg_crop_mask,
)


def test_seven_metrics_by_hand():
    gt = np.array([10.0, 10.0, 10.0, 10.0])
    pred = np.array([12.0, 15.0, 19.0, 25.0])  # ratios 1.2, 1.5, 1.9, 2.5
    m = compute_depth_errors(gt, pred)
    assert m["abs_rel"] == pytest.approx((2 + 5 + 9 + 15) / 10 / 4)          # 0.775
    assert m["sq_rel"] == pytest.approx((4 + 25 + 81 + 225) / 10 / 4)        # 8.375
    assert m["rmse"] == pytest.approx(math.sqrt((4 + 25 + 81 + 225) / 4))
    logs = [math.log(1.2) ** 2, math.log(1.5) ** 2, math.log(1.9) ** 2, math.log(2.5) ** 2]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(logs) / 4))
    assert m["delta1"] == pytest.approx(0.25)   # 1.2 < 1.25
    assert m["delta2"] == pytest.approx(0.50)   # 1.5 < 1.5625
    assert m["delta3"] == pytest.approx(0.75)   # 1.9 < 1.953125
    # the ratio is symmetric: under-estimation by the same factor counts the same for delta
    m2 = compute_depth_errors(np.array([12.0]), np.array([10.0]))
    assert m2["delta1"] == 1.0 and m2["abs_rel"] == pytest.approx(2 / 12)


def test_garg_crop_bounds():
    mask = garg_crop_mask(100, 200)
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    assert (rows[0], rows[-1]) == (40, 98)   # [int(40.81), int(99.19)) = [40, 99)
    assert (cols[0], cols[-1]) == (7, 191)   # [int(7.19), int(192.81)) = [7, 192)
    assert mask[40:99, 7:192].all() and mask.sum() == 59 * 185


def test_garg_crop_ignores_errors_outside_the_crop():
    gt = np.full((100, 200), 10.0)
    pred = gt.copy()
    pred[:40] = 30.0  # wrong only in the sky rows the crop removes
    cropped = evaluate_depth_image(gt, pred, median_scaling=False, garg_crop=True)
    full = evaluate_depth_image(gt, pred, median_scaling=False, garg_crop=False)
    assert cropped.metrics["abs_rel"] == pytest.approx(0.0)
    assert full.metrics["abs_rel"] == pytest.approx(0.4 * 2.0)  # 40 % of the pixels with |10-30|/10


def test_median_scaling_removes_a_global_scale():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2, 60, size=(20, 30))
    pred = 0.5 * gt
    scaled = evaluate_depth_image(gt, pred, median_scaling=True, garg_crop=False)
    assert scaled.scale == pytest.approx(2.0)
    assert scaled.metrics["abs_rel"] == pytest.approx(0.0, abs=1e-12) and scaled.metrics["delta1"] == 1.0
    metric = evaluate_depth_image(gt, pred, median_scaling=False, garg_crop=False)
    assert metric.scale == 1.0 and metric.metrics["abs_rel"] == pytest.approx(0.5)


def test_depth_range_mask_and_clamp():
    gt = np.array([[0.0, 90.0, 10.0, 10.0]])    # 0 = invalid, 90 > 80 m excluded
    pred = np.array([[5.0, 5.0, 200.0, 1e-6]])  # clamped to 80 and to 1e-3
    r = evaluate_depth_image(gt, pred, median_scaling=False, garg_crop=False)
    assert r.num_pixels == 2
    assert r.metrics["abs_rel"] == pytest.approx(((80 - 10) / 10 + (10 - 1e-3) / 10) / 2)
    assert evaluate_depth_image(np.zeros((4, 4)), np.ones((4, 4)), garg_crop=False) is None


def test_dataset_score_is_the_mean_over_images_not_pixels():
    gt1, pred1 = np.full((1, 1), 10.0), np.full((1, 1), 12.0)    # abs_rel 0.2 on 1 pixel
    gt2, pred2 = np.full((10, 10), 10.0), np.full((10, 10), 10.0)  # abs_rel 0 on 100 pixels
    empty = np.zeros((3, 3))
    out = compute_depth_metrics([gt1, gt2, empty], [pred1, pred2, np.ones((3, 3))], median_scaling=False,
                                garg_crop=False)
    assert out["metrics"]["abs_rel"] == pytest.approx(0.1)
    assert out["num_images"] == 2 and out["num_skipped"] == 1
    table = format_table(out["metrics"])
    assert "AbsRel" in table and "0.1000" in table
