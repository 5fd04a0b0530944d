"""The one way bwdp's demo, tests and benchmarks start child processes, and the one ROS environment they get.

- ``ManagedProcess``: a child in its own session/process group, its output optionally in a log file; it gets
  SIGTERM when the process that started it dies (PR_SET_PDEATHSIG, Linux), and ``stop()`` ends the whole group:
  SIGINT, then SIGTERM, then SIGKILL, then one more SIGKILL sweep of the group for stragglers.
- every started child is in a registry: ``stop_all()`` stops the live ones, and ``stopping_children_on_signals()``
  turns SIGINT/SIGTERM/SIGHUP into KeyboardInterrupt and stops every live child when its block ends, so Ctrl-C
  never leaves a node behind.
- ``ros_env(domain_id)``: DDS on this machine only (localhost discovery) in a domain of its own, unbuffered output;
  ``pick_domain_id(salt)`` picks that domain.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

LOCALHOST_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1"}
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load_libc() -> Optional[ctypes.CDLL]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


# ----------------------------------------------------------------------------------------------------------------------
# environments
# ----------------------------------------------------------------------------------------------------------------------
def pick_domain_id(salt: str = "") -> int:
    """A ROS_DOMAIN_ID in 101..198 from this process id and ``salt`` (different salts -> usually different ids)."""
    value = os.getpid() * 31 + sum(ord(c) * (i + 1) for i, c in enumerate(salt))
    return 101 + value % 98


def child_env(base: Optional[dict] = None) -> dict:
    """Environment for a child process: ours (or ``base``), with unbuffered Python output."""
    env = dict(os.environ if base is None else base)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ros_env(domain_id: Optional[int] = None, base: Optional[dict] = None) -> dict:
    """Environment for a ROS process kept on this machine (localhost discovery) in ``domain_id``
    (default: ``pick_domain_id()``), with unbuffered Python and ROS log output."""
    env = child_env(base)
    env.update(LOCALHOST_ENV)
    env["ROS_DOMAIN_ID"] = str(int(pick_domain_id() if domain_id is None else domain_id))
    env.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    return env


# ----------------------------------------------------------------------------------------------------------------------
# the process manager
# ----------------------------------------------------------------------------------------------------------------------
def _die_with_parent(sig: int, parent_pid: int):
    """preexec_fn: in the child, ask the kernel for ``sig`` when the parent (thread) dies; if it already died between
    fork and here, send it right away."""

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), sig)

    return preexec


class ManagedProcess:
    """A child in its own session/process group; stopped on leaving the ``with`` (``__enter__`` returns the Popen).

    ``log``: a file that receives stdout and stderr (else they are inherited). ``death_signal``: what the child gets
    when the thread that started it dies (PR_SET_PDEATHSIG; start from a long-lived thread, e.g. the main one).
    """

    def __init__(self, cmd: list[str], env: Optional[dict] = None, log: Optional[Path] = None,
                 cwd: Optional[Path] = None, death_signal: int = signal.SIGTERM):
        self.cmd = [str(c) for c in cmd]
        self.env = child_env() if env is None else env
        self.log = None if log is None else Path(log)
        self.cwd = cwd
        self.death_signal = death_signal
        self.proc: Optional[subprocess.Popen] = None
        self._log_file = None

    def start(self) -> subprocess.Popen:
        out = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log, "wb")
            out = self._log_file
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=out,
                                     stderr=subprocess.STDOUT if out else None, start_new_session=True,
                                     preexec_fn=_die_with_parent(self.death_signal, os.getpid()))
        _LIVE.add(self)
        return self.proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: Optional[float] = None) -> int:
        return self.proc.wait(timeout)

    def stop(self, grace_s: float = 5.0, term_s: float = 3.0, kill_s: float = 3.0) -> Optional[int]:
        """SIGINT to the group (clean shutdown) and ``grace_s`` to exit, then SIGTERM, then SIGKILL; then one more
        SIGKILL to the group (the leader may be gone while others in its group linger). Returns the exit status."""
        proc = self.proc
        try:
            if proc is not None and proc.poll() is None:
                for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, term_s), (signal.SIGKILL, kill_s)):
                    try:
                        os.killpg(proc.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        proc.wait(timeout=wait_s)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        finally:
            _LIVE.discard(self)
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
        return None if proc is None else proc.poll()

    def __enter__(self) -> subprocess.Popen:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_LIVE: set[ManagedProcess] = set()


def stop_all(grace_s: float = 2.0) -> None:
    """Stop every child started by a ManagedProcess that is still registered as live."""
    for managed in list(_LIVE):
        managed.stop(grace_s=grace_s)


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def stopping_children_on_signals(signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """While the block runs, SIGINT/SIGTERM/SIGHUP raise KeyboardInterrupt (SIGINT too: a shell that starts us in the
    background leaves SIGINT ignored, and children inherit that); when it ends, every live child is stopped and the
    previous handlers come back. Main thread only."""
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in signals}
    try:
        yield
    finally:
        stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
