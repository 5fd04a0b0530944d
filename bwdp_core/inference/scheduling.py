"""Odometry at camera rate, depth at its own rate: which frames get a DispNet pass, and a thread that runs it.

    scheduled = ScheduledOdometry(vo, DepthSchedule(every_n=3), deliver_depth=publish_depth)
    frame = scheduled.process(image_rgb, K, stamp_ns, has_depth_subscriber=True, context=header)  # pose only
    # ... later, in the depth thread: publish_depth(DepthResult(stamp_ns, depth, K_depth), job)

PoseNet runs on every processed frame in the caller's thread (the node's inference loop); DispNet runs only on the
frames :class:`DepthSchedule` picks -- every ``depth_every_n``-th processed frame, and (``depth_when_subscribed``)
only while something subscribes to the depth topics -- in a :class:`DepthWorker` thread of its own. A depth pass
therefore never delays the next pose: the pose thread hands the frame's network input to the worker and goes on; the
worker keeps only the newest frame it was handed (a frame it had not started is replaced, counted in ``dropped``).
Each depth result keeps the stamp (and the caller's ``context``, e.g. the message header) of the frame it was
computed from.

On a CPU the worker lowers its own scheduling priority (``DEPTH_THREAD_NICE``, Linux per-thread nice), so when the
two compete for the cores the pose wins and depth takes what is left; the ``onnxruntime`` and ``onnxruntime_int8``
backends run the depth network in that thread (see ``depth_threads`` in bwdp_core.inference.backends).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from bwdp_core.errors import ConfigError
from bwdp_core.inference.vo_pipeline import VisualOdometry, VOFrame

DEPTH_THREAD_NICE = 5  # added to the depth thread's nice value: pose first, depth on what is left (0 = equal)


@dataclass(frozen=True)
class DepthSchedule:
    """Which processed frames get depth: every ``every_n``-th (1 = all), and none while nobody subscribes when
    ``only_when_subscribed``."""

    every_n: int = 1
    only_when_subscribed: bool = True

    def __post_init__(self):
        if not isinstance(self.every_n, int) or isinstance(self.every_n, bool) or self.every_n < 1:
            raise ConfigError(f"depth_every_n must be an integer >= 1, got {self.every_n!r}")

    def wants_depth(self, frame_index: int, has_subscriber: bool) -> bool:
        """Depth for processed frame number ``frame_index`` (0, 1, ...)?"""
        if self.only_when_subscribed and not has_subscriber:
            return False
        return frame_index % self.every_n == 0


@dataclass
class DepthJob:
    network_input: torch.Tensor   # [1,3,h,w] the frame as the networks see it
    K: np.ndarray                 # 3x3 intrinsics at the incoming image size
    image_hw: tuple[int, int]     # incoming image size
    stamp_ns: int
    context: Any = None           # handed back unchanged with the result (e.g. the ROS header)


class DepthWorker:
    """One thread computing depth for the newest submitted :class:`DepthJob` and handing the result on.

    worker = DepthWorker(compute=vo.depth_frame, deliver=publish)  # compute(job) -> result; deliver(result, job)
    worker.submit(job)        # never blocks; replaces a job the thread has not started
    worker.wait_idle(5.0)     # (tests, shutdown) until every submitted job is done or dropped
    worker.close()
    """

    def __init__(self, compute: Callable[[DepthJob], Any], deliver: Callable[[Any, DepthJob], None],
                 on_error: Optional[Callable[[BaseException], None]] = None, nice: int = DEPTH_THREAD_NICE):
        self._compute, self._deliver, self._on_error = compute, deliver, on_error
        self._nice = int(nice)
        self._cond = threading.Condition()
        self._job: Optional[DepthJob] = None
        self._busy = False
        self._closed = False
        self.submitted = self.done = self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="bwdp_depth", daemon=True)
        self._thread.start()

    def submit(self, job: DepthJob) -> None:
        with self._cond:
            if self._job is not None:
                self.dropped += 1
            self._job = job
            self.submitted += 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once no job is pending or running (False after ``timeout`` s)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._job is None and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _lower_priority(self) -> None:
        if self._nice > 0 and hasattr(os, "setpriority"):
            try:  # Linux: nice is per thread, addressed by the thread's native id
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0)
                               + self._nice)
            except OSError:  # not permitted or not supported here: run at normal priority
                pass

    def _run(self) -> None:
        self._lower_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._closed)
                if self._closed:
                    return
                job, self._job, self._busy = self._job, None, True
            try:
                self._deliver(self._compute(job), job)
            except Exception as err:  # one failed depth frame must not end the thread
                if self._on_error is not None:
                    self._on_error(err)
            finally:
                with self._cond:
                    self._busy = False
                    self.done += 1
                    self._cond.notify_all()


@dataclass
class DepthResult:
    stamp_ns: int                 # the stamp of the frame the depth was computed from
    depth: np.ndarray             # float32 [h,w] (x metric_scale), NaN where invalid
    K_depth: np.ndarray           # 3x3 intrinsics of `depth`


class ScheduledOdometry:
    """:class:`VisualOdometry` with PoseNet on every frame (caller's thread) and DispNet on the frames the
    :class:`DepthSchedule` picks (a :class:`DepthWorker` thread). ``deliver_depth(DepthResult, DepthJob)`` is
    called from that thread."""

    def __init__(self, vo: VisualOdometry, schedule: DepthSchedule,
                 deliver_depth: Callable[[DepthResult, DepthJob], None],
                 on_error: Optional[Callable[[BaseException], None]] = None, nice: int = DEPTH_THREAD_NICE):
        self.vo = vo
        self.schedule = schedule
        self.frames = 0
        self.worker = DepthWorker(self._compute_depth, deliver_depth, on_error, nice)

    def _compute_depth(self, job: DepthJob) -> DepthResult:
        depth, K_depth = self.vo.depth_frame(job.network_input, job.K, job.image_hw)
        return DepthResult(job.stamp_ns, depth, K_depth)

    def process(self, image_rgb: np.ndarray, K: np.ndarray, stamp_ns: int, has_depth_subscriber: bool = True,
                context: Any = None) -> VOFrame:
        """Odometry for this frame now (its depth is None); hands it to the depth thread when the schedule says so.
        Raises what :meth:`VisualOdometry.process` raises (then the frame counts for neither)."""
        frame = self.vo.process(image_rgb, K, stamp_ns, with_depth=False)
        if self.schedule.wants_depth(self.frames, has_depth_subscriber):
            self.worker.submit(DepthJob(self.vo.last_input, np.asarray(K, dtype=np.float64), image_rgb.shape[:2],
                                        frame.stamp_ns, context))
        self.frames += 1
        return frame

    def close(self) -> None:
        self.worker.close()
