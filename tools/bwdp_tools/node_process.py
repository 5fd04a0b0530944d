"""The VO node as a child process (``python -m bwdp_ros.vo_node``), on the one process manager; no rclpy here.

    with VoNodeProcess("model.pt", domain_id=pick_domain_id("demo"), params={"device": "cpu"}) as node:
        node.wait_ready()
        ...
    print(node.output)                                       # the node's log

``vo_config_path()`` finds the node's parameter file (ros/config/vo.yaml in a checkout, share/bwdp_ros/config/vo.yaml
in an ament install).
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import bwdp_ros
from bwdp_core.errors import ConfigError
from bwdp_tools.processes import ManagedProcess, ros_env

try:  # optional: only an ament (colcon) install has the share directory; a pip/editable install does not need it
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
except ImportError:
    get_package_share_directory = None
    PackageNotFoundError = LookupError


def vo_config_path() -> Path:
    """The node's parameter file: next to the bwdp_ros package (ros/config/vo.yaml in a checkout), else in its ament
    share dir (colcon install), else in this environment's share/bwdp_ros (a non-editable pip install of ros/)."""
    candidates = [Path(bwdp_ros.__file__).resolve().parents[1] / "config" / "vo.yaml"]
    if not candidates[0].is_file() and get_package_share_directory is not None:
        try:
            candidates.append(Path(get_package_share_directory("bwdp_ros")) / "config" / "vo.yaml")
        except (PackageNotFoundError, LookupError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH
            pass
    candidates.append(Path(sys.prefix) / "share" / "bwdp_ros" / "config" / "vo.yaml")
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError("the node's parameter file vo.yaml was found in none of: "
                      + ", ".join(str(p) for p in candidates))


def _param_arg(name: str, value) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "[" + ",".join(_param_text(v) for v in value) + "]"
    else:
        text = _param_text(value)
    return f"{name}:={text}"


def _param_text(value) -> str:
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, str):
        return value if value else "''"
    return str(value)


class VoNodeProcess:
    """The VO node in its own process (``python -m bwdp_ros.vo_node``); always stopped on exit of the ``with``.

    Runs in ``ros_env(domain_id)`` (localhost discovery, its own domain). The node also gets SIGTERM if the thread
    that started it dies (PR_SET_PDEATHSIG): start it from a long-lived thread (the main one).
    """

    def __init__(self, checkpoint, domain_id: int, params: Optional[dict] = None, params_file=None,
                 remaps: Optional[dict] = None, log_path=None, python: str = sys.executable):
        self.args = [python, "-m", "bwdp_ros.vo_node", "--ros-args"]
        if params_file is not None:
            self.args += ["--params-file", str(params_file)]
        if checkpoint is not None:
            self.args += ["-p", _param_arg("checkpoint", str(checkpoint))]
        # no robot here: the node publishes its camera_xyz / camera_rpy mount unless told otherwise
        params = {"publish_camera_tf": True, **(params or {})}
        for name, value in params.items():
            self.args += ["-p", _param_arg(name, value)]
        for src, dst in (remaps or {}).items():
            self.args += ["-r", f"{src}:={dst}"]
        self.env = ros_env(domain_id)
        self._tmp = None
        if log_path is None:
            self._tmp = tempfile.NamedTemporaryFile(prefix="bwdp_vo_node_", suffix=".log", delete=False)
            log_path = self._tmp.name
        self.log_path = Path(log_path)
        self.managed = ManagedProcess(self.args, env=self.env, log=self.log_path)

    @property
    def proc(self):
        """The node's subprocess.Popen (None before start)."""
        return self.managed.proc

    def start(self) -> "VoNodeProcess":
        self.managed.start()
        return self

    @property
    def pid(self) -> int:
        return self.managed.pid

    @property
    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.managed.alive()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the node logs 'ready:'; RuntimeError with its log when it exits or times out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "]: ready:" in self.output:
                return
            if not self.alive():
                raise RuntimeError(f"vo_node exited with {self.proc.returncode}:\n{self.output}")
            time.sleep(0.1)
        raise RuntimeError(f"vo_node not ready after {timeout} s:\n{self.output}")

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.managed.wait(timeout)

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGINT (clean shutdown) and ``timeout`` s to exit, then SIGTERM, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return None
        return self.managed.stop(grace_s=timeout)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> "VoNodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.close()
