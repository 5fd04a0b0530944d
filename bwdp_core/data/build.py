"""`build_sources(data_cfg)`: the config's data section -> a list of FrameSources, fully validated before training.

Accepted forms: one source dict, a list of them, or ``{"sources": [...], "snippet_length": 3, "stride": 1}``.
Keys per ``type`` (``path`` is required except for an in-memory synth source):

=========== ====================================================================================================
kitti_odom  path (dataset root with sequences/), sequences (list; default all under sequences/), camera (2)
kitti_raw   path (a ``bwdp prepare-kitti`` output), sequences (folder names; default train.txt or all prepared)
images      path (folder), intrinsics (cam.txt path, [fx, fy, cx, cy] or 3x3; default <folder>/cam.txt),
            depth_dir, poses_file, name
video       path (file), intrinsics (default <video>.cam.txt or cam.txt beside it), frame_step (1), max_frames, name
rosbag      path (bag dir or .mcap/.db3), image_topic, info_topic, intrinsics, gt_topic, frame_step, max_frames, name
synth       path (a ``bwdp synth`` output, read as kitti_odom), or frames/height/width/seed to render in memory
=========== ====================================================================================================

Common keys: ``snippet_length`` (3) and ``stride`` (1) - every sequence must hold one snippet; ``check_images``
(true: the header of every image file is read, so a corrupt or odd-sized file is named now, not mid-training).
Errors: ConfigError for unknown types/keys, DataError naming the file or topic for bad data.
"""
from __future__ import annotations

from pathlib import Path

from bwdp_core.data.image_folder import ImageFolderSource
from bwdp_core.data.kitti_odometry import KittiOdometrySource, kitti_odometry_sequences
from bwdp_core.data.kitti_raw import KittiRawSource, prepared_kitti_folders
from bwdp_core.data.rosbag_source import RosbagSource
from bwdp_core.data.snippets import check_snippet_fits
from bwdp_core.data.sources import FrameSource
from bwdp_core.data.synth_source import SynthSource
from bwdp_core.data.video import VideoSource
from bwdp_core.errors import ConfigError, DataError

_COMMON = {"type", "snippet_length", "stride", "check_images"}
_KEYS = {
    "kitti_odom": {"path", "sequences", "camera"},
    "kitti_raw": {"path", "sequences"},
    "images": {"path", "intrinsics", "depth_dir", "poses_file", "name"},
    "video": {"path", "intrinsics", "frame_step", "max_frames", "name"},
    "rosbag": {"path", "image_topic", "info_topic", "intrinsics", "gt_topic", "frame_step", "max_frames", "name"},
    "synth": {"path", "sequences", "frames", "height", "width", "seed", "moving_object"},
}


def _require_path(cfg: dict, kind: str) -> Path:
    if not cfg.get("path"):
        raise ConfigError(f"data source of type {kind} needs a 'path'")
    path = Path(str(cfg["path"])).expanduser()
    if not path.exists():
        raise DataError(f"{kind} data path {path} does not exist")
    return path


def _sequences(value, default, where: str) -> list[str]:
    if value is None:
        return default
    if isinstance(value, (str, int)):
        value = [value]
    names = [str(v) for v in value]
    if not names:
        raise ConfigError(f"'sequences' for {where} is empty")
    return names


def _kitti_odom(cfg: dict, check: bool) -> list[FrameSource]:

    root = _require_path(cfg, cfg["type"])
    names = _sequences(cfg.get("sequences"), None, str(root)) or kitti_odometry_sequences(root)
    camera = int(cfg.get("camera", 2))
    return [KittiOdometrySource(root, name, camera=camera, check_images=check) for name in names]


def _kitti_raw(cfg: dict, check: bool) -> list[FrameSource]:

    root = _require_path(cfg, "kitti_raw")
    names = cfg.get("sequences")
    folders = ([root / n for n in _sequences(names, [], str(root))] if names is not None
               else prepared_kitti_folders(root))
    return [KittiRawSource(folder, check_images=check) for folder in folders]


def _one_source(cfg: dict, check: bool) -> list[FrameSource]:
    kind = cfg.get("type")
    if kind not in _KEYS:
        raise ConfigError(f"data source type {kind!r} is unknown (use one of {', '.join(_KEYS)})")
    unknown = set(cfg) - _KEYS[kind] - _COMMON
    if unknown:
        raise ConfigError(f"data source of type {kind} has unknown key(s) {', '.join(sorted(unknown))} "
                          f"(allowed: {', '.join(sorted(_KEYS[kind] | _COMMON))})")
    if kind == "kitti_odom" or (kind == "synth" and cfg.get("path")):
        return _kitti_odom(cfg, check)
    if kind == "kitti_raw":
        return _kitti_raw(cfg, check)
    if kind == "images":

        return [ImageFolderSource(_require_path(cfg, kind), cfg.get("intrinsics"), name=cfg.get("name"),
                                  depth_dir=cfg.get("depth_dir"), poses_file=cfg.get("poses_file"),
                                  check_images=check)]
    if kind == "video":

        return [VideoSource(_require_path(cfg, kind), cfg.get("intrinsics"), name=cfg.get("name"),
                            frame_step=int(cfg.get("frame_step", 1)), max_frames=cfg.get("max_frames"))]
    if kind == "rosbag":

        return [RosbagSource(_require_path(cfg, kind), image_topic=cfg.get("image_topic"),
                             info_topic=cfg.get("info_topic"), intrinsics=cfg.get("intrinsics"),
                             gt_topic=cfg.get("gt_topic"), name=cfg.get("name"),
                             frame_step=int(cfg.get("frame_step", 1)), max_frames=cfg.get("max_frames"))]
    # synth without a path: render in memory

    missing = [k for k in ("frames", "height", "width") if k not in cfg]
    if missing:
        raise ConfigError(f"synth data source needs 'path' or {', '.join(missing)}")
    return [SynthSource.render(int(cfg["frames"]), int(cfg["height"]), int(cfg["width"]), seed=int(cfg.get("seed", 0)),
                               moving_object=bool(cfg.get("moving_object", False)))]


def build_sources(data_cfg) -> list[FrameSource]:
    """Config data section -> validated FrameSources (see module docstring for the accepted keys)."""

    if isinstance(data_cfg, (list, tuple)):
        data_cfg = {"sources": list(data_cfg)}
    if not isinstance(data_cfg, dict):
        raise ConfigError(f"data config must be a mapping or a list of sources, got {type(data_cfg).__name__}")
    if "sources" in data_cfg:
        extra = set(data_cfg) - {"sources", "snippet_length", "stride", "check_images"}
        if extra:
            raise ConfigError(f"data config has unknown key(s) {', '.join(sorted(extra))} next to 'sources'")
        entries = data_cfg["sources"]
        if not isinstance(entries, (list, tuple)) or not entries:
            raise ConfigError("data config 'sources' must be a non-empty list")
        defaults = {k: data_cfg[k] for k in ("snippet_length", "stride", "check_images") if k in data_cfg}
    else:
        entries, defaults = [data_cfg], {}
    sources: list[FrameSource] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ConfigError(f"each data source must be a mapping, got {entry!r}")
        cfg = {**defaults, **entry}
        length, stride = int(cfg.get("snippet_length", 3)), int(cfg.get("stride", 1))
        for source in _one_source(cfg, bool(cfg.get("check_images", True))):
            check_snippet_fits(source, length, stride)
            sources.append(source)
    return sources
