"""KITTI / TUM trajectory files: round trips, format detection, clear errors."""
import numpy as np
import pytest

from bwdp_core.errors import DataError
from bwdp_core.eval.trajectory_io import detect_format, read_trajectory, write_trajectory


def random_poses(n, seed=0):
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] *= -1
        poses[i, :3, :3] = q
        poses[i, :3, 3] = rng.normal(size=3) * 10
    return poses


def test_kitti_round_trip(tmp_path):
    poses = random_poses(7)
    write_trajectory(tmp_path / "t.txt", poses, "kitti")
    assert len((tmp_path / "t.txt").read_text().splitlines()) == 7
    traj = read_trajectory(tmp_path / "t.txt")
    assert traj.fmt == "kitti" and traj.timestamps is None
    np.testing.assert_allclose(traj.poses, poses, atol=1e-12)


def test_tum_round_trip(tmp_path):
    poses = random_poses(9, seed=1)
    stamps = 1341847980.79 + 0.033 * np.arange(9)
    write_trajectory(tmp_path / "t.tum", poses, "tum", stamps)
    first = (tmp_path / "t.tum").read_text().splitlines()[0].split()
    assert len(first) == 8
    traj = read_trajectory(tmp_path / "t.tum")
    assert traj.fmt == "tum" and detect_format(tmp_path / "t.tum") == "tum"
    np.testing.assert_allclose(traj.timestamps, stamps, rtol=0, atol=1e-6)
    np.testing.assert_allclose(traj.poses, poses, atol=1e-9)


def test_tum_quaternion_order_is_xyzw(tmp_path):
    # 90 deg about z: q = (0, 0, sin45, cos45) in x y z w order
    s = np.sqrt(0.5)
    (tmp_path / "q.txt").write_text(f"# comment\n0.0 1 2 3 0 0 {s} {s}\n")
    traj = read_trajectory(tmp_path / "q.txt")
    np.testing.assert_allclose(traj.poses[0, :3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(traj.poses[0, :3, 3], [1, 2, 3])


@pytest.mark.parametrize("text, message", [
    ("", "no poses"),
    ("1 2 3 4 5\n", "expected 12"),
    ("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0\n", ":2: 3 numbers"),
    ("1 0 0 0 0 1 0 0 0 0 1 x\n", ":1: not a row of numbers"),
    ("0 0 0 0 0 0 0 2\n", "quaternion of norm"),
    ("1 0 0 nan 0 1 0 0 0 0 1 0\n", "non-finite"),
])
def test_bad_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_trajectory(path)


def test_format_mismatch_and_missing(tmp_path):
    write_trajectory(tmp_path / "k.txt", random_poses(2), "kitti")
    with pytest.raises(DataError, match="expected a TUM"):
        read_trajectory(tmp_path / "k.txt", fmt="tum")
    with pytest.raises(DataError, match="not found"):
        read_trajectory(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="timestamp"):
        write_trajectory(tmp_path / "x.txt", random_poses(2), "tum")
