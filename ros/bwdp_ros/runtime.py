"""Plumbing of the VO node that needs no rclpy: the keep-latest frame slot, throttled rejection logs, latency stats,
and the /diagnostics levels."""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np


class LatestFrameSlot:
    """Holds only the newest unprocessed frame: ``put`` overwrites (counting a drop), ``take`` waits for one.

    The subscription callback only calls ``put`` (cheap), the inference thread loops on ``take`` -- so inference always
    works on the newest frame and a slow network never builds a queue.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item: Any) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify()

    def take(self, timeout: float) -> Any:
        """The newest frame (removed from the slot), or None after ``timeout`` s or when closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def open(self) -> None:
        """Accept frames again after ``close`` (a lifecycle re-activation); the counters keep running."""
        with self._cond:
            self._closed, self._item = False, None

    @property
    def closed(self) -> bool:
        return self._closed


class ThrottledLog:
    """At most one log line per ``category`` per ``period`` s; the next line says how many were suppressed."""

    def __init__(self, log: Callable[[str], None], period: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._log = log
        self.period = float(period)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, category: str, message: str) -> bool:
        """Count the event; log it unless this category logged less than ``period`` s ago. Returns True if logged."""
        self.counts[category] = self.counts.get(category, 0) + 1
        now = self._clock()
        last = self._last.get(category)
        if last is not None and now - last < self.period:
            self._suppressed[category] = self._suppressed.get(category, 0) + 1
            return False
        suppressed = self._suppressed.pop(category, 0)
        suffix = f" (+{suppressed} similar in the last {now - last:.0f} s)" if suppressed and last is not None else ""
        self._log(message + suffix)
        self._last[category] = now
        return True

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class LatencyWindow:
    """Latencies (s) since the last report; ``report()`` returns (count, p50, p95) and starts a new window."""

    def __init__(self, max_samples: int = 10000):
        self._samples: deque[float] = deque(maxlen=max_samples)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(float(seconds))

    def report(self) -> tuple[int, Optional[float], Optional[float]]:
        with self._lock:
            samples, self._samples = np.array(self._samples), deque(maxlen=self._samples.maxlen)
        if samples.size == 0:
            return 0, None, None
        return int(samples.size), float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


# ----------------------------------------------------------------------------------------------------------------------
# diagnostics (/diagnostics levels and values; the node turns a report into diagnostic_msgs/DiagnosticArray)
# ----------------------------------------------------------------------------------------------------------------------
OK, WARN, ERROR, STALE = 0, 1, 2, 3          # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}
WAITING_CATEGORIES = ("no_camera_info", "no_mount")   # rejections that mean "not ready yet", not "bad input"
STAMP_AGE_LIMIT_S = 10.0  # stamps older (or newer) than this are not live data: their age is no latency


@dataclass
class DiagnosticsReport:
    level: int
    message: str
    values: list[tuple[str, str]]


class DiagnosticsWindow:
    """What happened since the last report (frames processed, rejected by reason, latencies, tracking) -> one
    :class:`DiagnosticsReport` per period: OK (tracking), WARN (tracking lost, some input rejected, waiting for
    camera_info or the camera mount), ERROR (every received frame rejected), STALE (no input, or not active).

    The counters of received and dropped frames belong to the frame slot; ``report`` takes their running totals.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._last_report = clock()
        self._last_received, self._last_dropped = 0, 0
        self._last_input: Optional[float] = None
        self._reset_window()
        self.tracking = "none yet"

    def _reset_window(self) -> None:
        self.processed, self.lost = 0, 0
        self.rejected: dict[str, int] = {}
        self.receive_latency: list[float] = []
        self.stamp_age: list[float] = []

    def frame_processed(self, receive_to_publish_s: float, stamp_to_publish_s: float, tracking: str) -> None:
        with self._lock:
            self.processed += 1
            self.lost += tracking == "lost"
            self.tracking = tracking
            self.receive_latency.append(float(receive_to_publish_s))
            self.stamp_age.append(float(stamp_to_publish_s))

    def frame_rejected(self, category: str) -> None:
        with self._lock:
            self.rejected[category] = self.rejected.get(category, 0) + 1

    def report(self, received_total: int, dropped_total: int, inactive: Optional[str] = None,
               extra: Optional[dict] = None) -> DiagnosticsReport:
        """The report of the window that ends now; starts the next window. ``inactive``: why the node does not
        process (lifecycle state), which makes it STALE. ``extra``: more key-value pairs (scale, adaptation, ...)."""
        now = self._clock()
        with self._lock:
            period = max(1e-9, now - self._last_report)
            received = received_total - self._last_received
            dropped = dropped_total - self._last_dropped
            if received > 0:
                self._last_input = now
            processed, lost, rejected = self.processed, self.lost, dict(self.rejected)
            receive_latency, stamp_age = np.array(self.receive_latency), np.array(self.stamp_age)
            self._last_received, self._last_dropped, self._last_report = received_total, dropped_total, now
            self._reset_window()
        waiting = {k: v for k, v in rejected.items() if k in WAITING_CATEGORIES}
        bad = {k: v for k, v in rejected.items() if k not in WAITING_CATEGORIES}
        if inactive:
            level, message = STALE, inactive
        elif received == 0 and processed == 0:
            idle = "no images received yet" if self._last_input is None else \
                f"no images for {now - self._last_input:.0f} s"
            level, message = STALE, idle
        elif processed == 0 and bad:
            level, message = ERROR, f"every frame rejected: {_top(bad)}"
        elif processed == 0 and waiting:
            level, message = WARN, f"waiting: {_top(waiting)}"
        elif lost:
            level, message = WARN, f"tracking lost in {lost} of {processed} frames"
        elif bad:
            level, message = WARN, f"{sum(bad.values())} frames rejected: {_top(bad)}"
        else:
            level, message = OK, f"tracking at {processed / period:.1f} frames/s"
        values = [
            ("processed frames/s", f"{processed / period:.2f}"),
            ("received frames/s", f"{received / period:.2f}"),
            ("dropped frames/s (a newer frame arrived first)", f"{dropped / period:.2f}"),
            ("frames received / dropped since start", f"{received_total} / {dropped_total}"),
            ("tracking", self.tracking),
            ("latency receive->publish", _percentiles(receive_latency)),
            ("latency stamp->publish", _stamp_latency(stamp_age)),
        ]
        values += [(f"rejected: {k}", str(v)) for k, v in sorted(rejected.items())]
        values += [(str(k), str(v)) for k, v in (extra or {}).items()]
        return DiagnosticsReport(level, message, values)


def _top(counts: dict[str, int]) -> str:
    name, count = max(counts.items(), key=lambda kv: kv[1])
    return f"{name} ({count})" + (f" and {len(counts) - 1} more reasons" if len(counts) > 1 else "")


def _percentiles(seconds: np.ndarray) -> str:
    if seconds.size == 0:
        return "no frames"
    return f"p50 {np.percentile(seconds, 50) * 1e3:.1f} ms, p95 {np.percentile(seconds, 95) * 1e3:.1f} ms"


def _stamp_latency(ages: np.ndarray) -> str:
    if ages.size == 0:
        return "no frames"
    median = float(np.median(ages))
    if abs(median) > STAMP_AGE_LIMIT_S:
        return (f"n/a: the image stamps are {median:.3g} s {'old' if median > 0 else 'in the future'} (recorded "
                "stamps, or a bag played without --clock / use_sim_time), so their age is no latency")
    return _percentiles(ages)
