"""Plumbing of the VO node that needs no rclpy: the keep-latest frame slot, throttled rejection logs, latency stats."""
from __future__ import annotations

import threading
import time
from collections import deque
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
