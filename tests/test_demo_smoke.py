"""`make demo` at toy size, end to end: bwdp synth -> bwdp train -> the real vo_node over DDS -> eval -> demo_out/.

Proves the plumbing (files, keys, node outputs, caching, Ctrl-C cleanup), not the learning: at toy size the model is
not expected to beat the baselines. The full-size run is `make demo` (numbers in the README's results section).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bwdp_tools.processes import pick_domain_id, ros_env

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _env() -> dict:
    return ros_env(pick_domain_id("test_demo_smoke"))


def _demo_cmd(out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "bwdp_tools.demo", "--toy", "--out", str(out), "--cache", str(cache)]


def _processes_mentioning(text: str) -> list[int]:
    """PIDs (other than ours) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    pytest.importorskip("rclpy", reason="the demo needs the ROS 2 wheels (make installs them)")
    pytest.importorskip("tf2_msgs.msg", reason="the node needs tf2_msgs (make generates it)")
    base = tmp_path_factory.mktemp("demo")
    out, cache = base / "out", base / "cache"
    proc = subprocess.run(_demo_cmd(out, cache), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out, cache, proc.stdout


def test_toy_demo_writes_pictures_and_metrics(toy_run):
    out, _, stdout = toy_run
    for name in ("trajectory.png", "depth.png", "metrics.json"):
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, f"{path} missing or empty"
    metrics = json.loads((out / "metrics.json").read_text())
    odo, depth, node = metrics["odometry"], metrics["depth"], metrics["node"]
    for key in ("ate_m", "t_err_percent", "baseline_constant_velocity_ate_m"):
        assert key in odo
    assert odo["ate_m"] >= 0 and odo["baseline_constant_velocity_ate_m"] >= 0
    assert 0 < depth["abs_rel"] < 10 and 0 < depth["baseline_median_depth_abs_rel"] < 10
    assert node["frames_processed"] >= 3 and node["frames_processed"] <= node["frames_published"]
    assert node["fps"] > 0 and node["latency_ms_p50"] > 0 and node["latency_ms_p95"] >= node["latency_ms_p50"]
    assert node["tf_odom_base_link_messages"] >= 1
    assert set(metrics["beats_baselines"]) == {"ate", "abs_rel"}
    assert "total_s" in metrics["timings"]
    # the summary names the files and states the comparison with numbers
    assert str(out / "trajectory.png") in stdout and "constant velocity" in stdout and "median depth" in stdout


def test_second_run_reuses_checkpoint_and_ctrl_c_leaves_no_node(toy_run, tmp_path):
    out_first, cache, _ = toy_run
    out = tmp_path / "out2"
    proc = subprocess.Popen(_demo_cmd(out, cache), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "streaming the held-out sequence" in line:
                break
        text = "".join(lines)
        assert "trained checkpoint cached" in text, f"second run did not reuse the checkpoint:\n{text}"
        assert "training (" not in text
        time.sleep(0.3)
        # the node's command line names the cached checkpoint, the streamer's the cached held-out sequence
        children = [p for p in _processes_mentioning(str(cache)) if p != proc.pid]
        assert any(p in _processes_mentioning("bwdp_ros.vo_node") for p in children), "no node while streaming"
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the foreground process group
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, f"exit code {proc.returncode}\n{text}{rest}"
        time.sleep(0.5)
        left = [p for p in children if _alive(p)]
        assert not left, f"processes left behind after Ctrl-C: {left}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
