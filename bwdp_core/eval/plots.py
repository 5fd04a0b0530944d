"""Pictures of evaluation results: depth colormap strips (cv2) and top-view trajectory plots (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np


def colorize_inverse_depth(depth: np.ndarray, vmax: float | None = None, dilate: int = 0) -> np.ndarray:
    """uint8 [H, W, 3] RGB image of a depth map [H, W] (metres, <= 0 or non-finite = invalid, drawn black), coloured
    by inverse depth with the magma colormap (near = bright). ``vmax``: inverse depth mapped to the top colour (default:
    the 95th percentile); ``dilate``: grow sparse points (e.g. velodyne GT) by this many pixels to make them visible."""
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    inv = np.zeros_like(depth)
    inv[valid] = 1.0 / depth[valid]
    if vmax is None:
        vmax = float(np.percentile(inv[valid], 95)) if valid.any() else 1.0
    scaled = np.clip(inv / max(vmax, 1e-12), 0.0, 1.0)
    colored = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_MAGMA)[..., ::-1].copy()
    if dilate > 0:
        kernel = np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8)
        grown = cv2.dilate(np.where(valid[..., None], colored, 0).astype(np.uint8), kernel)
        grown_valid = cv2.dilate(valid.astype(np.uint8), kernel).astype(bool)
        colored = np.where(grown_valid[..., None], grown, 0).astype(np.uint8)
    else:
        colored[~valid] = 0
    return colored


def depth_strip(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], path: str | Path,
                width: int = 640, labels: Sequence[str] | None = None) -> Path:
    """Write a PNG with one row per frame: input image | predicted depth | GT depth, each resized to ``width`` px
    (no GT column when no row has GT; a black tile for a row without GT among rows with it).

    ``rows``: (image uint8 [H,W,3] RGB, predicted depth [H,W] metres (already scaled), GT depth [H,W] or None).
    Prediction and GT of a row share one colour scale (from the GT when it has valid pixels). ``labels``: one text per
    row (e.g. the frame index), written into the top-left corner of its input image.
    """
    tiles = []
    any_gt = any(gt is not None for _, _, gt in rows)
    for row, (image, pred, gt) in enumerate(rows):
        h, w = image.shape[:2]
        height = max(1, int(round(h * width / w)))
        gt_valid = gt is not None and np.any(np.asarray(gt) > 0)
        ref = gt if gt_valid else pred
        inv = 1.0 / ref[np.isfinite(ref) & (ref > 0)]
        vmax = float(np.percentile(inv, 95)) if inv.size else 1.0
        sparse = gt_valid and float(np.mean(np.asarray(gt) > 0)) < 0.3
        parts = [image, colorize_inverse_depth(pred, vmax)]
        if any_gt:
            parts.append(colorize_inverse_depth(gt, vmax, dilate=2 if sparse else 0) if gt is not None
                         else np.zeros_like(image))
        resized = [cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA if p.shape[1] > width
                              else cv2.INTER_NEAREST) for p in parts]
        if labels is not None:
            _put_label(resized[0], str(labels[row]))
        tiles.append(np.concatenate(resized, axis=1))
    strip = np.concatenate(tiles, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), strip[..., ::-1])
    return path


def _put_label(image: np.ndarray, text: str) -> None:
    """White text with a black outline in the top-left corner of ``image`` (uint8 RGB, drawn in place)."""
    scale = max(0.35, image.shape[0] / 400)
    origin = (4, 4 + int(round(22 * scale)))
    for color, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def top_view_axes(positions: np.ndarray) -> tuple[int, int]:
    """The two axes of the horizontal plane: the axis along which the positions [N, 3] vary least is taken as
    'up' (y for KITTI's optical camera frame, z for most world frames) and the other two are plotted."""
    spread = np.ptp(positions, axis=0)
    up = int(np.argmin(spread))
    a, b = [i for i in range(3) if i != up]
    return a, b


def plot_trajectories_top_view(gt_poses: np.ndarray, pred_poses: np.ndarray, path: str | Path,
                               title: str = "", pred_label: str = "prediction (aligned)",
                               others: Sequence[tuple[np.ndarray, str]] = (),
                               axes: tuple[int, int] | None = None) -> Path:
    """Top-view PNG of GT and (aligned) predicted camera-to-world poses [N, 4, 4]; start marked with a circle.

    ``others``: further (aligned) trajectories to compare with, as (poses [M, 4, 4], label), drawn dashed.
    ``axes``: the two position axes to plot (default: ``top_view_axes`` of the ground truth)."""
    # matplotlib is an optional dependency (the eval/train extras): imported only when a plot is drawn
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gt_xyz = gt_poses[:, :3, 3]
    pred_xyz = pred_poses[:, :3, 3]
    a, b = top_view_axes(gt_xyz) if axes is None else axes
    names = "xyz"
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.plot(gt_xyz[:, a], gt_xyz[:, b], "k-", lw=1.5, label="ground truth")
    ax.plot(pred_xyz[:, a], pred_xyz[:, b], "r-", lw=1.2, label=pred_label)
    colors = ("tab:gray", "tab:blue", "tab:green", "tab:purple", "tab:orange")
    for i, (poses, label) in enumerate(others):
        xyz = np.asarray(poses)[:, :3, 3]
        ax.plot(xyz[:, a], xyz[:, b], "--", color=colors[i % len(colors)], lw=1.2, label=label)
    ax.plot(gt_xyz[0, a], gt_xyz[0, b], "ko", ms=6, label="start")
    ax.set_xlabel(f"{names[a]} [m]")
    ax.set_ylabel(f"{names[b]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
