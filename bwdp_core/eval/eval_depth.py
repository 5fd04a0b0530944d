"""`bwdp eval-depth`: depth metrics of a checkpoint.

Protocols (see ``depth_metrics`` for the per-image steps):

- KITTI Eigen split: ``--split-file eigen_test_files.txt --raw-root KITTI_RAW`` (lines ``<date>/<drive> <frame> l|r``;
  images from ``RAW/<drive>/image_02|03/data/<frame>.png|jpg``). GT from the raw velodyne scans projected with the raw
  calibration (default) or, with ``--gt-png-root``, from KITTI depth-benchmark PNGs (uint16, metres·256, 0 = none) found
  as ``ROOT/[train|val/]<drive>/proj_depth/groundtruth/image_02|03/<frame>.png``. Garg crop on by default.
- Any folder of images + GT depth: ``--images DIR --depth DIR`` (GT ``<stem>.npy`` float metres or ``<stem>.png``
  uint16/256, matched by file stem), or ``--data ROOT`` for the layouts ``ROOT/sequences/NN/{image_2,depth}`` (bwdp
  synth, KITTI odometry style), ``ROOT/{image_2,depth}`` and ``ROOT/{rgb|images|image,depth}``. No crop by default.

The network predicts at the checkpoint's training resolution; its disparity is resized to the GT size and inverted.
Outputs: the table on stdout, ``--out DIR/metrics.json`` and ``DIR/depth_strip.png`` (input | prediction | GT rows).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from bwdp_core.data.sources import image_file_size, list_images, read_depth_file, read_image_file
from bwdp_core.errors import DataError
from bwdp_core.eval.depth_metrics import MAX_DEPTH, MIN_DEPTH, evaluate_depth_image, summarize
from bwdp_core.eval.kitti_velodyne import velodyne_depth_map
from bwdp_core.inference.preprocess import predict_depth


@dataclass
class DepthSample:
    """One evaluation frame: a name, its image file and a loader of its GT depth (float32 [H, W] metres, 0 = none)."""
    name: str
    image_path: Path
    load_gt: Callable[[], np.ndarray]


# ----------------------------------------------------------------------------------------------------- KITTI Eigen
def read_split_file(path: str | Path) -> list[tuple[str, int, str]]:
    """Eigen-style split list: lines ``<date>/<drive> <frame> l|r`` -> [(drive, frame, side)]."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split file not found: {path}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[2] not in ("l", "r") or "/" not in parts[0]:
            raise DataError(f"{path}:{number}: expected '<date>/<drive> <frame> l|r', got {line.strip()[:80]!r}")
        try:
            frame = int(parts[1])
        except ValueError:
            raise DataError(f"{path}:{number}: frame index {parts[1]!r} is not an integer") from None
        entries.append((parts[0], frame, parts[2]))
    if not entries:
        raise DataError(f"split file {path} lists no frames")
    return entries


def _find_image(raw_root: Path, drive: str, frame: int, camera: int) -> Path:
    folder = raw_root / drive / f"image_0{camera}" / "data"
    for ext in (".png", ".jpg"):
        candidate = folder / f"{frame:010d}{ext}"
        if candidate.is_file():
            return candidate
    raise DataError(f"KITTI raw image not found: {folder / f'{frame:010d}.png'} (or .jpg)")


def _find_benchmark_png(gt_root: Path, drive: str, frame: int, camera: int) -> Path | None:
    drive_name = drive.split("/")[-1]
    rel = Path(drive_name) / "proj_depth" / "groundtruth" / f"image_0{camera}" / f"{frame:010d}.png"
    for base in (gt_root, gt_root / "train", gt_root / "val", gt_root / drive.split("/")[0]):
        if (base / rel).is_file():
            return base / rel
    return None


def eigen_samples(split_file, raw_root, gt_png_root=None, velo_depth: str = "velodyne",
                  skip_missing: bool = False) -> tuple[list[DepthSample], list[str]]:
    """Samples of an Eigen split list; returns (samples, names of frames skipped for lack of GT)."""

    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise DataError(f"KITTI raw folder not found: {raw_root}")
    gt_root = Path(gt_png_root) if gt_png_root else None
    if gt_root is not None and not gt_root.is_dir():
        raise DataError(f"KITTI depth-benchmark GT folder not found: {gt_root}")
    samples, missing = [], []
    for drive, frame, side in read_split_file(split_file):
        camera = 2 if side == "l" else 3
        image_path = _find_image(raw_root, drive, frame, camera)
        name = f"{drive} {frame:010d} {side}"
        if gt_root is not None:
            png = _find_benchmark_png(gt_root, drive, frame, camera)
            if png is None:
                missing.append(name)
                continue
            samples.append(DepthSample(name, image_path, lambda p=png: read_depth_file(p)))
        else:
            scan = raw_root / drive / "velodyne_points" / "data" / f"{frame:010d}.bin"
            if not scan.is_file():
                missing.append(name)
                continue

            def load(drive=drive, frame=frame, camera=camera, image_path=image_path):
                return velodyne_depth_map(raw_root, drive, frame, camera, image_file_size(image_path), velo_depth)
            samples.append(DepthSample(name, image_path, load))
    if missing and not skip_missing:
        where = f"under {gt_root}" if gt_root is not None else "(velodyne scan)"
        raise DataError(f"{len(missing)} frames of {split_file} have no ground truth {where}, first: {missing[0]} "
                        "(use --skip-missing to evaluate the rest)")
    return samples, missing


# ------------------------------------------------------------------------------------------------- image folders
def folder_samples(images_dir, depth_dir, name_prefix: str = "") -> list[DepthSample]:
    """Images in ``images_dir`` paired with ``depth_dir/<stem>.npy|.png`` by file stem (every image needs GT)."""

    depth_dir = Path(depth_dir)
    if not depth_dir.is_dir():
        raise DataError(f"depth folder not found: {depth_dir}")
    samples = []
    for image_path in list_images(images_dir):
        found = [depth_dir / f"{image_path.stem}{ext}" for ext in (".npy", ".png")]
        found = [p for p in found if p.is_file()]
        if not found:
            raise DataError(f"depth folder {depth_dir} has no {image_path.stem}.npy or .png for image {image_path}")
        samples.append(DepthSample(f"{name_prefix}{image_path.stem}", image_path,
                                   lambda p=found[0]: read_depth_file(p)))
    return samples


def data_root_samples(root) -> list[DepthSample]:
    """``--data ROOT``: ROOT/sequences/*/{image_2,depth} (all sequences), ROOT/{image_2|rgb|images|image} +
    ROOT/depth."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    if (root / "sequences").is_dir():
        samples = []
        for seq in sorted(p for p in (root / "sequences").iterdir() if p.is_dir()):
            if (seq / "image_2").is_dir() and (seq / "depth").is_dir():
                samples += folder_samples(seq / "image_2", seq / "depth", name_prefix=f"{seq.name}/")
        if not samples:
            raise DataError(f"{root / 'sequences'} has no sequence with both image_2/ and depth/")
        return samples
    for images in ("image_2", "rgb", "images", "image"):
        if (root / images).is_dir() and (root / "depth").is_dir():
            return folder_samples(root / images, root / "depth")
    raise DataError(f"{root}: no known layout (sequences/NN/image_2 + depth, or image_2|rgb|images|image + depth)")


# ------------------------------------------------------------------------------------------------------- running
def evaluate_checkpoint(disp_net, samples: list[DepthSample], height: int, width: int, *, device="cpu",
                        median_scaling: bool = True, garg_crop: bool = True, min_depth: float = MIN_DEPTH,
                        max_depth: float = MAX_DEPTH, num_visuals: int = 4, progress: bool = True) -> dict:
    """Predict every sample, score it, average. Returns the summary dict of ``depth_metrics.summarize`` plus
    "per_image" (name, metrics, scale) and "visuals" (list of (image, scaled prediction, gt) for the strip)."""


    vis_ids = set(np.linspace(0, len(samples) - 1, min(num_visuals, len(samples))).round().astype(int).tolist()) \
        if num_visuals > 0 else set()
    results, per_image, visuals, skipped = [], [], [], 0
    for i, sample in enumerate(tqdm(samples, desc="eval-depth", unit="img", disable=None if progress else True)):
        image = read_image_file(sample.image_path)
        gt = sample.load_gt()
        pred = predict_depth(disp_net, image, height, width, out_size=gt.shape, device=device)
        result = evaluate_depth_image(gt, pred, median_scaling=median_scaling, garg_crop=garg_crop,
                                      min_depth=min_depth, max_depth=max_depth)
        if result is None:
            skipped += 1
            continue
        results.append(result)
        per_image.append({"name": sample.name, "scale": result.scale, "num_pixels": result.num_pixels,
                          **result.metrics})
        if i in vis_ids:
            visuals.append((image, np.clip(pred * result.scale, min_depth, max_depth), gt))
    summary = summarize(results, skipped)
    summary["per_image"] = per_image
    summary["visuals"] = visuals
    return summary
