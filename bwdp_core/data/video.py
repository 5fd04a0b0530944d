"""A video file (anything OpenCV's FFmpeg backend opens: mp4, avi, mkv...) + intrinsics; frames decoded lazily.

The number of frames is taken from the container and verified by decoding the last frame (falling back to counting
frames when the container lies). Each process (DataLoader worker) opens its own capture on first use; reads in order are
sequential, a jump backwards or far forwards seeks. A few recently decoded frames are cached because consecutive
snippets share frames. ``frame_step`` keeps every k-th frame (e.g. 3 for a 30 fps camera at walking speed).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from bwdp_core.data.image_folder import resolve_intrinsics
from bwdp_core.data.sources import FrameSource
from bwdp_core.errors import DataError

_CACHE_FRAMES = 8
# Captures inherited through fork (DataLoader workers) are kept alive, never released: releasing one in the child
# would wait for FFmpeg threads that only exist in the parent and hang the worker forever.
_INHERITED_CAPTURES: list = []
_MAX_SKIP_BY_READING = 48  # forward jumps up to this many frames decode through instead of seeking


class VideoSource(FrameSource):
    """``VideoSource("drive.mp4", intrinsics=(fx, fy, cx, cy))``; ``intrinsics=None`` reads ``<video>.cam.txt`` or
    ``cam.txt`` next to the video."""

    def __init__(self, path, intrinsics=None, name: str | None = None, frame_step: int = 1,
                 max_frames: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise DataError(f"video file {path} does not exist")
        if int(frame_step) < 1:
            raise DataError(f"frame_step for video {path} must be >= 1, got {frame_step}")
        self.path = path
        self.name = name or path.stem
        self.frame_step = int(frame_step)
        default_cam = path.with_suffix(path.suffix + ".cam.txt")
        if not default_cam.is_file():
            default_cam = path.parent / "cam.txt"
        self.intrinsics = resolve_intrinsics(intrinsics, default_cam, f"video {path}")
        self._cap = None
        self._pid = None
        self._next = 0
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

        cap = self._capture()
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        first = self._read_raw(0)
        if first is None:
            raise DataError(f"video file {path} has no decodable frames")
        self.image_size = tuple(first.shape[:2])
        if total <= 0 or self._read_raw(total - 1) is None or self._read_raw(total) is not None:
            total = self._count_frames()
        self.num_raw_frames = total
        count = (total + self.frame_step - 1) // self.frame_step
        self._len = min(count, int(max_frames)) if max_frames else count
        self.fps = fps
        self.timestamps = (np.arange(self._len) * self.frame_step / fps) if fps > 0 else None
        self.poses = None

    # -- capture handling (one per process) --------------------------------------------------------------------
    def _capture(self):
        if self._cap is None or self._pid != os.getpid():
            if self._cap is not None:
                _INHERITED_CAPTURES.append(self._cap)
            cap = cv2.VideoCapture(str(self.path))
            if not cap.isOpened():
                raise DataError(f"video file {self.path} cannot be opened (unknown container or codec)")
            self._cap, self._pid, self._next = cap, os.getpid(), 0
            self._cache = OrderedDict()
        return self._cap

    def _read_raw(self, raw_index: int):
        """Decode raw frame ``raw_index`` (BGR) or None past the end."""
        cap = self._capture()
        if raw_index != self._next:
            if 0 <= self._next < raw_index <= self._next + _MAX_SKIP_BY_READING:
                while self._next < raw_index:
                    if not cap.grab():
                        return None
                    self._next += 1
            else:
                cap.set(cv2.CAP_PROP_POS_FRAMES, raw_index)
                self._next = raw_index
        ok, frame = cap.read()
        if not ok or frame is None:
            self._next = -1  # unknown position: the next read seeks
            return None
        self._next = raw_index + 1
        return frame

    def _count_frames(self) -> int:
        cap = self._capture()
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        count = 0
        while cap.grab():
            count += 1
        self._next = count
        return count

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_cap=None, _pid=None, _next=0, _cache=OrderedDict())
        return state

    # -- FrameSource ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    def load_image(self, i: int) -> np.ndarray:
        i = self.check_index(i)
        self._capture()
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i].copy()
        frame = self._read_raw(i * self.frame_step)
        if frame is None:
            raise DataError(f"video file {self.path}: frame {i * self.frame_step} cannot be decoded")
        if frame.shape[:2] != self.image_size:
            raise DataError(f"video file {self.path}: frame {i * self.frame_step} is {frame.shape[1]}x{frame.shape[0]}"
                            f", the first frame is {self.image_size[1]}x{self.image_size[0]}")
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        self._cache[i] = rgb
        if len(self._cache) > _CACHE_FRAMES:
            self._cache.popitem(last=False)
        return rgb.copy()
