"""Decoupled rates: odometry for every processed frame, depth on the scheduled frames in its own thread, each depth
result with the stamp (and context) of the frame it was computed from; a depth pass never blocks the pose path."""
import threading

import numpy as np
import pytest
import torch

from bwdp_core.errors import ConfigError
from bwdp_core.inference.scheduling import DepthJob, DepthSchedule, DepthWorker, ScheduledOdometry
from bwdp_core.inference.vo_pipeline import VisualOdometry

H, W = 32, 96
K = np.array([[50.0, 0, W / 2], [0, 50.0, H / 2], [0, 0, 1]])


class FakeEstimator:
    """Depth = the frame's brightness (so a result names its frame), motion = 0.1 forward; optional depth gate."""

    height, width = H, W

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.depth_threads = set()

    def to_tensor(self, rgb):
        return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float() / 255.0

    def depth(self, x):
        self.depth_threads.add(threading.get_ident())
        self.started.set()
        assert self.gate.wait(10.0)
        return np.full((H, W), float(x.mean()) * 255.0 + 1.0, np.float32)

    def relative_pose(self, x_cur, x_prev):
        T = np.eye(4)
        T[2, 3] = 0.1
        return T


def frame(i):
    return np.full((H, W, 3), i, np.uint8)


def run(schedule, n, subscribed=True, flush=True):
    estimator = FakeEstimator()
    results = []
    scheduled = ScheduledOdometry(VisualOdometry(estimator), schedule, lambda r, job: results.append((r, job)))
    frames = []
    for i in range(n):
        frames.append(scheduled.process(frame(i), K, 1_000_000 * (i + 1), subscribed, context=f"header{i}"))
        if flush:
            assert scheduled.worker.wait_idle(10.0)
    scheduled.close()
    return estimator, frames, results


def test_odometry_every_frame_depth_every_third_with_its_own_stamp():
    estimator, frames, results = run(DepthSchedule(every_n=3), 9)
    assert [f.stamp_ns for f in frames] == [1_000_000 * (i + 1) for i in range(9)]
    assert all(f.depth is None for f in frames)  # odometry frames carry no depth: it comes separately
    assert frames[-1].T_odom_base[0, 3] == pytest.approx(0.8)  # 8 motions of 0.1 (optical z = base x)
    assert [r.stamp_ns for r, _ in results] == [1_000_000, 4_000_000, 7_000_000]
    assert [job.context for _, job in results] == ["header0", "header3", "header6"]
    for (result, _), i in zip(results, (0, 3, 6)):
        assert result.depth.shape == (H, W) and float(result.depth[0, 0]) == pytest.approx(i + 1.0)  # its frame
        np.testing.assert_allclose(result.K_depth, K)  # same size in, same size out
    assert threading.get_ident() not in estimator.depth_threads  # depth ran in the worker thread


def test_no_depth_without_a_subscriber_unless_asked_for():
    _, frames, results = run(DepthSchedule(every_n=1, only_when_subscribed=True), 4, subscribed=False)
    assert len(frames) == 4 and results == []
    _, _, results = run(DepthSchedule(every_n=2, only_when_subscribed=False), 4, subscribed=False)
    assert [r.stamp_ns for r, _ in results] == [1_000_000, 3_000_000]


def test_pose_does_not_wait_for_a_slow_depth_pass_and_the_newest_job_wins():
    estimator = FakeEstimator()
    estimator.gate.clear()  # depth blocks until released
    results = []
    scheduled = ScheduledOdometry(VisualOdometry(estimator), DepthSchedule(every_n=1),
                                  lambda r, job: results.append(r.stamp_ns))
    frames = [scheduled.process(frame(0), K, 1_000_000)]
    assert estimator.started.wait(10.0)  # frame 0's depth pass is running (and blocked)
    frames += [scheduled.process(frame(i), K, 1_000_000 * (i + 1)) for i in range(1, 5)]  # none of these waits
    assert len(frames) == 5 and results == []
    estimator.gate.set()
    assert scheduled.worker.wait_idle(10.0)
    scheduled.close()
    # frame 0 was running when 1..4 arrived: 1, 2, 3 were replaced by newer ones, 4 ran next
    assert results == [1_000_000, 5_000_000]
    assert scheduled.worker.dropped == 3


def test_a_failing_depth_pass_is_reported_and_the_worker_goes_on():
    errors, done = [], []

    def compute(job):
        if job.stamp_ns == 1:
            raise RuntimeError("boom")
        return job.stamp_ns

    worker = DepthWorker(compute, lambda r, job: done.append(r), on_error=errors.append)
    for stamp in (1, 2):
        worker.submit(DepthJob(torch.zeros(1), K, (H, W), stamp))
        assert worker.wait_idle(10.0)
    worker.close()
    assert [str(e) for e in errors] == ["boom"] and done == [2]


@pytest.mark.parametrize("every_n", [0, -1, 1.5, True])
def test_bad_depth_every_n(every_n):
    with pytest.raises(ConfigError, match="depth_every_n"):
        DepthSchedule(every_n=every_n)
