"""The node's plumbing without DDS: keep-latest slot, throttled logs, latency windows, message conversions."""
import threading

import numpy as np
import pytest

from bwdp_ros.runtime import LatencyWindow, LatestFrameSlot, ThrottledLog


def test_latest_frame_slot_keeps_only_the_newest_and_counts_drops():
    slot = LatestFrameSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(0.01) == 4 and slot.received == 5 and slot.dropped == 4
    assert slot.take(0.01) is None
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.take(5.0)))
    consumer.start()
    slot.put("late")
    consumer.join(5.0)
    assert got == ["late"] and slot.dropped == 4
    slot.close()
    assert slot.take(5.0) is None and slot.closed


def test_throttled_log_one_line_per_kind_and_period():
    now = [0.0]
    lines = []
    log = ThrottledLog(lines.append, period=5.0, clock=lambda: now[0])
    for _ in range(10):
        log("encoding", "bad encoding")
    log("size", "bad size")
    assert lines == ["bad encoding", "bad size"] and log.total == 11
    now[0] = 6.0
    log("encoding", "bad encoding")
    assert lines[-1].startswith("bad encoding (+9 similar")


def test_latency_window_percentiles_and_reset():
    window = LatencyWindow()
    assert window.report() == (0, None, None)
    for ms in range(1, 101):
        window.add(ms / 1000.0)
    count, p50, p95 = window.report()
    assert count == 100 and p50 == pytest.approx(0.0505) and p95 == pytest.approx(0.09505)
    assert window.report()[0] == 0


def test_depth_and_pose_messages_round_trip():
    pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages are not importable")
    from std_msgs.msg import Header

    from bwdp_core.frames import OPTICAL_RPY, transform_from_xyz_rpy
    from bwdp_core.inference.intrinsics import camera_info_intrinsics
    from bwdp_ros.conversions import (
        camera_info_numbers,
        depth_camera_info,
        depth_to_image,
        ns_to_stamp,
        odometry_msg,
        stamp_to_ns,
        transform_stamped,
    )
    from bwdp_tools.stream import depth_from_msg

    header = Header(stamp=ns_to_stamp(1_234_567_890_123), frame_id="cam")
    assert stamp_to_ns(header.stamp) == 1_234_567_890_123
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    depth[1, 2] = np.nan
    msg = depth_to_image(depth, header)
    assert msg.encoding == "32FC1" and msg.step == 16 and msg.header == header
    assert np.array_equal(depth_from_msg(msg), depth, equal_nan=True)
    K = np.array([[50.0, 0, 2], [0, 60.0, 1.5], [0, 0, 1]])
    info = depth_camera_info(K, (3, 4), header)
    assert np.allclose(np.reshape(info.k, (3, 3)), K) and (info.height, info.width) == (3, 4)
    assert not any(info.d) and np.allclose(np.reshape(info.p, (3, 4))[:, :3], K)
    assert camera_info_intrinsics(*camera_info_numbers(info))[1] == (3, 4)
    T = transform_from_xyz_rpy((1, 2, 3), OPTICAL_RPY)
    tf = transform_stamped(T, header.stamp, "base_link", "cam")
    assert (tf.transform.rotation.x, tf.transform.rotation.w) == pytest.approx((-0.5, 0.5))
    odom = odometry_msg(T, [1, 0, 0], [0, 0, 0.1], header.stamp, "odom", "base_link", [0.1] * 36, [0.2] * 36)
    assert odom.pose.pose.position.z == 3 and odom.twist.twist.angular.z == pytest.approx(0.1)


def test_diagnostics_levels_from_one_window_each():
    from bwdp_ros.runtime import ERROR, OK, STALE, WARN, DiagnosticsWindow

    now = [0.0]
    window = DiagnosticsWindow(clock=lambda: now[0])

    def report(received, **kw):
        now[0] += 1.0
        return window.report(received, 0, **kw)

    first = report(0)
    assert first.level == STALE and first.message == "no images received yet"
    for _ in range(3):
        window.frame_processed(0.02, 0.05, "ok")
    healthy = report(3)
    values = dict(healthy.values)
    assert healthy.level == OK and values["processed frames/s"] == "3.00" and values["tracking"] == "ok"
    assert values["latency stamp->publish"].startswith("p50 50.0 ms")
    window.frame_processed(0.02, 0.05, "lost")
    assert report(4).level == WARN
    window.frame_rejected("no_mount")
    waiting = report(5)
    assert waiting.level == WARN and waiting.message.startswith("waiting: no_mount")
    window.frame_rejected("encoding")
    assert report(6).level == ERROR
    idle = report(6)
    assert idle.level == STALE and idle.message == "no images for 1 s"
    assert report(6, inactive="inactive (lifecycle state: inactive)").level == STALE


def test_old_stamps_give_no_stamp_latency_and_extra_fields_are_listed():
    from bwdp_ros.runtime import DiagnosticsWindow

    window = DiagnosticsWindow(clock=lambda: 0.0)
    window.frame_processed(0.02, 9.6e7, "ok")   # a 3-year-old bag stamp, no --clock
    values = dict(window.report(1, 0, extra={"scale": 1.7, "adaptation": "running"}).values)
    assert values["latency stamp->publish"].startswith("n/a: the image stamps are 9.6e+07 s old")
    assert values["scale"] == "1.7" and values["adaptation"] == "running"
