"""A rosbag2 (MCAP or sqlite3) camera stream read directly with ``rosbags`` - no export step, no ROS install.

At construction the image topic is scanned once to build an index of (bag timestamp, occurrence) per frame and the
header stamps; each ``load_image(i)`` then reads just that message (time-range query: sqlite index / MCAP chunk index)
and decodes it with :mod:`bwdp_core.data.image_msgs`. Every process (DataLoader worker) opens its own reader on first
use, so the source can be pickled to workers.

Topics: ``image_topic`` (``sensor_msgs/Image`` or ``CompressedImage``) is auto-selected when the bag has exactly one;
intrinsics come from ``intrinsics`` when given, else from the first message of ``info_topic`` (``CameraInfo``,
auto-selected: the only one, or the one next to the image topic), rescaled when CameraInfo's width/height differ from
the images'. ``gt_topic`` (``nav_msgs/Odometry``, e.g. ``/ground_truth/odom`` written by ``bwdp make-bag``) gives
``poses`` by nearest header stamp.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bwdp_core.data.bag_io import (
    CAMERA_INFO_TYPE,
    IMAGE_TYPES,
    ODOMETRY_TYPE,
    image_from_msg,
    intrinsics_from_camera_info,
    open_reader,
    pose_from_odometry,
    stamp_ns_of,
    topic_connections,
)
from bwdp_core.data.image_folder import resolve_intrinsics
from bwdp_core.data.sources import FrameSource
from bwdp_core.errors import DataError


def _transport_base(topic: str) -> str:
    """``/cam/image_raw/compressed`` -> ``/cam/image_raw`` (image_transport sub-topics name their raw topic)."""
    for suffix in ("/compressed", "/compressedDepth", "/theora"):
        if topic.endswith(suffix):
            return topic[: -len(suffix)]
    return topic


def _pick_topic(reader, path, types, wanted: str | None, what: str, near: str | None = None) -> str | None:
    """The topic to use: ``wanted`` (checked), else the only one of ``types``; with several, the raw one of an
    image_transport family (``X`` over ``X/compressed``), or the one in the namespace of ``near``."""
    if wanted:
        topic_connections(reader, path, wanted, types)
        return wanted
    candidates = sorted({c.topic for c in reader.connections if c.msgtype in types})
    candidates = [t for t in candidates if not t.endswith("/compressedDepth")] or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return None
    bases = {_transport_base(t) for t in candidates}
    if len(bases) == 1:
        base = bases.pop()
        return base if base in candidates else candidates[0]
    if near:
        namespace = _transport_base(near).rsplit("/", 1)[0]
        siblings = [t for t in candidates if t.rsplit("/", 1)[0] == namespace]
        if len(siblings) == 1:
            return siblings[0]
    raise DataError(f"bag {path} has several {what} topics ({', '.join(candidates)}); choose one")


class RosbagSource(FrameSource):
    """``RosbagSource("run.bag")`` or ``RosbagSource(path, image_topic="/cam/image_raw/compressed",
    intrinsics=(fx, fy, cx, cy))``."""

    def __init__(self, path, image_topic: str | None = None, info_topic: str | None = None, intrinsics=None,
                 gt_topic: str | None = None, name: str | None = None, frame_step: int = 1,
                 max_frames: int | None = None, gt_tolerance_s: float = 0.05):
        path = Path(path)
        self.path = path
        self.name = name or path.stem
        self._reader = None
        self._pid = None
        reader = self._open()
        topics_present = ", ".join(sorted({c.topic for c in reader.connections})) or "none"
        self.image_topic = _pick_topic(reader, path, IMAGE_TYPES, image_topic, "image")
        if self.image_topic is None:
            raise DataError(f"bag {path} has no sensor_msgs/Image or CompressedImage topic; topics present: "
                            f"{topics_present}")
        self._conns = topic_connections(reader, path, self.image_topic, IMAGE_TYPES)

        # index: bag time + occurrence at that time (several messages may share a receive time), header stamps
        bag_times: list[int] = []
        stamps: list[int] = []
        first_image = None
        for conn, t, raw in reader.messages(connections=self._conns):
            msg = self._deserialize(raw, conn.msgtype)
            if first_image is None:
                first_image = image_from_msg(msg)
            bag_times.append(int(t))
            stamp = stamp_ns_of(msg)
            stamps.append(stamp if stamp > 0 else int(t))
        if not bag_times:
            raise DataError(f"topic {self.image_topic!r} in bag {path} has no messages")
        step = max(1, int(frame_step))
        keep = np.arange(0, len(bag_times), step)
        if max_frames:
            keep = keep[: int(max_frames)]
        times = np.asarray(bag_times, dtype=np.int64)
        occurrence = np.zeros(len(times), dtype=np.int64)
        for k in range(1, len(times)):
            occurrence[k] = occurrence[k - 1] + 1 if times[k] == times[k - 1] else 0
        self._bag_times = times[keep]
        self._occurrence = occurrence[keep]
        stamps_ns = np.asarray(stamps, dtype=np.int64)[keep]
        self.stamps_ns = stamps_ns
        self.timestamps = stamps_ns.astype(np.float64) * 1e-9
        self.image_size = tuple(first_image.shape[:2])

        if intrinsics is not None:
            self.info_topic = None
            self.intrinsics = resolve_intrinsics(intrinsics, None, f"bag {path}")
        else:
            self.info_topic = _pick_topic(reader, path, (CAMERA_INFO_TYPE,), info_topic, "CameraInfo",
                                          near=self.image_topic)
            if self.info_topic is None:
                raise DataError(f"bag {path} has no sensor_msgs/CameraInfo topic (topics present: {topics_present});"
                                " give the intrinsics (fx fy cx cy)")
            self.intrinsics = self._read_camera_info(reader)

        self.poses = None
        if gt_topic:
            self.poses = self._read_gt(reader, gt_topic, gt_tolerance_s)
        self._close()

    # -- reader per process ----------------------------------------------------------------------------------------
    def _open(self):
        if self._reader is None or self._pid != os.getpid():
            self._reader = open_reader(self.path)
            self._pid = os.getpid()
            # connections belong to one reader: look them up again in every new one
            self._conns = [c for c in self._reader.connections if c.topic == getattr(self, "image_topic", None)]
        return self._reader

    def _close(self):
        if self._reader is not None and self._pid == os.getpid():
            self._reader.close()
        self._reader = None
        self._pid = None
        self._conns = []

    def _deserialize(self, raw, msgtype):
        try:
            return self._reader.deserialize(raw, msgtype)
        except Exception as err:
            raise DataError(f"cannot deserialise a {msgtype} message in bag {self.path}: {err}") from err

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_reader=None, _pid=None, _conns=[])
        return state

    def _read_camera_info(self, reader) -> np.ndarray:
        conns = topic_connections(reader, self.path, self.info_topic, (CAMERA_INFO_TYPE,))
        for conn, _, raw in reader.messages(connections=conns):
            info = self._deserialize(raw, conn.msgtype)
            K = intrinsics_from_camera_info(info, f"topic {self.info_topic!r} in bag {self.path}")
            h, w = self.image_size
            if info.width and info.height and (info.width, info.height) != (w, h):
                sx, sy = w / info.width, h / info.height
                K = K.copy()
                K[0, 0] *= sx
                K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
                K[1, 1] *= sy
                K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
            return K
        raise DataError(f"topic {self.info_topic!r} in bag {self.path} has no messages")

    def _read_gt(self, reader, gt_topic: str, tolerance_s: float) -> np.ndarray:
        conns = topic_connections(reader, self.path, gt_topic, (ODOMETRY_TYPE,))
        gt_stamps, gt_poses = [], []
        for conn, t, raw in reader.messages(connections=conns):
            msg = self._deserialize(raw, conn.msgtype)
            stamp = stamp_ns_of(msg)
            gt_stamps.append(stamp if stamp > 0 else int(t))
            gt_poses.append(pose_from_odometry(msg))
        if not gt_stamps:
            raise DataError(f"topic {gt_topic!r} in bag {self.path} has no messages")
        order = np.argsort(gt_stamps)
        gt_t = np.asarray(gt_stamps, dtype=np.int64)[order]
        gt_p = np.asarray(gt_poses)[order]
        pos = np.clip(np.searchsorted(gt_t, self.stamps_ns), 1, len(gt_t) - 1) if len(gt_t) > 1 else \
            np.zeros(len(self.stamps_ns), dtype=np.int64)
        if len(gt_t) > 1:
            left_better = np.abs(self.stamps_ns - gt_t[pos - 1]) <= np.abs(gt_t[pos] - self.stamps_ns)
            pos = np.where(left_better, pos - 1, pos)
        gap = np.abs(gt_t[pos] - self.stamps_ns).max() * 1e-9
        if gap > tolerance_s:
            raise DataError(f"topic {gt_topic!r} in bag {self.path}: an image is {gap:.3f} s from the nearest "
                            f"ground-truth pose (tolerance {tolerance_s} s)")
        return gt_p[pos]

    # -- FrameSource -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._bag_times)

    def load_image(self, i: int) -> np.ndarray:
        i = self.check_index(i)
        reader = self._open()
        t, occurrence = int(self._bag_times[i]), int(self._occurrence[i])
        for k, (conn, _, raw) in enumerate(reader.messages(connections=self._conns, start=t, stop=t + 1)):
            if k == occurrence:
                image = image_from_msg(self._deserialize(raw, conn.msgtype))
                if image.shape[:2] != self.image_size:
                    raise DataError(f"topic {self.image_topic!r} in bag {self.path}: frame {i} is "
                                    f"{image.shape[1]}x{image.shape[0]}, the first is "
                                    f"{self.image_size[1]}x{self.image_size[0]}")
                return image
        raise DataError(f"topic {self.image_topic!r} in bag {self.path}: frame {i} (t={t} ns) is no longer there")
