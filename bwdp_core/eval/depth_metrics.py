"""Depth error metrics of the KITTI Eigen protocol (see shared notes, "Evaluation protocols").

Per image: keep pixels with ``min_depth < gt < max_depth`` (and inside the Garg crop when asked), optionally scale the
prediction by ``median(gt) / median(pred)`` over those pixels (monocular models know depth only up to scale), clamp it
to ``[min_depth, max_depth]``, then compute the seven metrics. The dataset score is the plain mean over images.

Arrays are numpy, ``gt`` and ``pred`` both ``[H, W]`` float in metres; ``gt == 0`` (or any value outside the range)
marks a pixel without ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bwdp_core.errors import DataError

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")
METRIC_LABELS = {"abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSE log",
                 "delta1": "d<1.25", "delta2": "d<1.25^2", "delta3": "d<1.25^3"}

MIN_DEPTH = 1e-3
MAX_DEPTH = 80.0

# Garg et al. (ECCV 2016) crop, as fractions of the image height / width: rows [top, bottom), cols [left, right).
GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)


def garg_crop_mask(height: int, width: int) -> np.ndarray:
    """Boolean ``[H, W]`` mask, True inside the Garg crop: rows [0.40810811 H, 0.99189189 H), cols [0.03594771 W,
    0.96405229 W), bounds truncated to integers as the protocol does."""
    top, bottom, left, right = GARG_CROP
    mask = np.zeros((height, width), dtype=bool)
    mask[int(top * height):int(bottom * height), int(left * width):int(right * width)] = True
    return mask


def compute_depth_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The seven metrics on matching 1-D arrays of valid depths (metres, > 0):

    AbsRel = mean |g−p|/g, SqRel = mean (g−p)²/g, RMSE = sqrt(mean (g−p)²), RMSE log = sqrt(mean (ln g − ln p)²),
    δk = fraction of pixels with max(g/p, p/g) < 1.25^k.
    """
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    ratio = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(gt) - np.log(pred)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25 ** 2)),
        "delta3": float(np.mean(ratio < 1.25 ** 3)),
    }


@dataclass
class ImageDepthResult:
    """Metrics of one image, the median-scaling ratio applied (1.0 when off) and the number of pixels evaluated."""
    metrics: dict[str, float]
    scale: float
    num_pixels: int


def evaluate_depth_image(gt: np.ndarray, pred: np.ndarray, *, median_scaling: bool = True, garg_crop: bool = True,
                         min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH) -> ImageDepthResult | None:
    """Protocol for one image: mask, (median scale), clamp, metrics. ``pred`` must already be at ``gt``'s size.

    Returns None when the image has no valid GT pixel (the caller skips it and counts it).
    """
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise DataError(f"depth prediction {pred.shape} and ground truth {gt.shape} must be [H, W] of equal size")
    mask = (gt > min_depth) & (gt < max_depth) & np.isfinite(gt)
    if garg_crop:
        mask &= garg_crop_mask(*gt.shape)
    if not mask.any():
        return None
    g = gt[mask]
    p = pred[mask]
    scale = 1.0
    if median_scaling:
        scale = float(np.median(g) / np.median(p))
        p = p * scale
    p = np.clip(p, min_depth, max_depth)
    return ImageDepthResult(compute_depth_errors(g, p), scale, int(mask.sum()))


def compute_depth_metrics(gts, preds, *, median_scaling: bool = True, garg_crop: bool = True,
                          min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH) -> dict:
    """Dataset score: the per-image metrics averaged over images (pairs of ``[H, W]`` arrays in metres).

    Returns ``{"metrics": {name: mean}, "num_images": n, "num_skipped": images without valid GT,
    "scale_median": .., "scale_std": .. (ratios of median scaling; 1.0 when off)}``.
    """
    per_image = []
    skipped = 0
    for gt, pred in zip(gts, preds):
        result = evaluate_depth_image(gt, pred, median_scaling=median_scaling, garg_crop=garg_crop,
                                      min_depth=min_depth, max_depth=max_depth)
        if result is None:
            skipped += 1
        else:
            per_image.append(result)
    return summarize(per_image, skipped)


def summarize(per_image: list[ImageDepthResult], skipped: int = 0) -> dict:
    """Average a list of per-image results (see :func:`compute_depth_metrics`)."""
    if not per_image:
        raise DataError("no image had a valid ground-truth depth pixel (check the depth range and the GT files)")
    scales = np.array([r.scale for r in per_image])
    return {
        "metrics": {name: float(np.mean([r.metrics[name] for r in per_image])) for name in METRIC_NAMES},
        "num_images": len(per_image),
        "num_skipped": skipped,
        "scale_median": float(np.median(scales)),
        "scale_std": float(np.std(scales)),
    }


def format_table(metrics: dict[str, float]) -> str:
    """Two-line text table of the seven metrics in protocol order."""
    head = " | ".join(f"{METRIC_LABELS[n]:>9}" for n in METRIC_NAMES)
    vals = " | ".join(f"{metrics[n]:>9.4f}" for n in METRIC_NAMES)
    return f"{head}\n{vals}"
