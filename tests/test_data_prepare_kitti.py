"""bwdp prepare-kitti on a tiny fake KITTI raw tree made from synth frames, then KittiRawSource on its output."""
import os

import cv2
import numpy as np
import pytest

from bwdp_core.commands.cli import main as bwdp
from bwdp_core.data.augment import resize_image, resize_intrinsics
from bwdp_core.data.build import build_sources
from bwdp_core.data.kitti_raw import KittiRawSource
from bwdp_core.data.prepare_kitti import prepare_kitti, read_scene_list, read_static_frames
from bwdp_core.errors import DataError
from bwdp_core.synth.render import render_sequence

RAW_H, RAW_W = 64, 192
DATE = "2011_01_01"
SPEEDS_0001 = [5.0, 5.0, 0.1, 0.05, 5.0, 5.0, 5.0, 5.0]  # frames 2 and 3 are static by oxts (< 0.3 m/s)
IMAGE_ORDER_0003 = [0, 0, 1, 2, 2, 2, 3, 4]  # repeated renders = a camera standing still


@pytest.fixture(scope="module")
def frames():
    return render_sequence(8, RAW_H, RAW_W, seed=21)


def _k(fx, cx, cy):
    return np.array([[fx, 0, cx], [0, fx, cy], [0, 0, 1.0]])


K02, K03 = _k(110.0, 95.2, 31.7), _k(111.0, 96.1, 32.3)


def _write_drive(root, drive, images, speeds=None):
    base = root / DATE / f"{DATE}_drive_{drive}_sync"
    for cam, shift in (("02", 0), ("03", 2)):
        data = base / f"image_{cam}" / "data"
        data.mkdir(parents=True)
        for i, image in enumerate(images):
            cv2.imwrite(str(data / f"{i:010d}.png"), cv2.cvtColor(np.roll(image, shift, axis=1), cv2.COLOR_RGB2BGR))
        stamps = "".join(f"2011-01-01 12:00:{i // 10:02d}.{(i % 10) * 100000000:09d}\n" for i in range(len(images)))
        (base / f"image_{cam}" / "timestamps.txt").write_text(stamps)
    if speeds is not None:
        (base / "oxts" / "data").mkdir(parents=True)
        for i, v in enumerate(speeds):
            values = np.zeros(30)
            values[:3] = [49.0, 8.4, 110.0]
            values[8], values[9] = v * 0.8, v * 0.6  # vf, vl: |v| = v
            (base / "oxts" / "data" / f"{i:010d}.txt").write_text(" ".join(f"{x:.6f}" for x in values) + "\n")


def _write_calib(root):
    def p_line(K, tx):
        P = np.zeros((3, 4))
        P[:, :3], P[0, 3] = K, tx
        return " ".join(f"{v:.6e}" for v in P.ravel())

    (root / DATE).mkdir(parents=True, exist_ok=True)
    (root / DATE / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\ncorner_dist: 9.950000e-02\n"
        f"S_rect_02: {RAW_W:.6e} {RAW_H:.6e}\nP_rect_00: {p_line(K02, 0)}\n"
        f"P_rect_02: {p_line(K02, 44.8)}\nP_rect_03: {p_line(K03, -33.4)}\n")


@pytest.fixture()
def raw_root(tmp_path, frames):
    root = tmp_path / "raw"
    _write_calib(root)
    _write_drive(root, "0001", frames.images, SPEEDS_0001)
    _write_drive(root, "0002", frames.images[:5], [5.0] * 5)
    _write_drive(root, "0003", [frames.images[i] for i in IMAGE_ORDER_0003])  # no oxts: image motion
    (tmp_path / "test_scenes.txt").write_text(f"{DATE}_drive_0002\n")
    return root


def _run(raw_root, out, *extra):
    args = ["prepare-kitti", str(raw_root), "--out", str(out), "--height", "32", "--width", "96", "--no-progress",
            "--exclude-scenes", str(raw_root.parent / "test_scenes.txt"), *extra]
    assert bwdp(args) == 0


def test_prepare_then_read(raw_root, frames, tmp_path, capsys):
    out = tmp_path / "prepared"
    _run(raw_root, out)
    log = capsys.readouterr().out
    assert "drive_0001_sync: 6/8 frames kept (static frames by oxts)" in log
    assert "drive_0003_sync: 5/8 frames kept (static frames by image)" in log
    names = [f"{DATE}_drive_0001_sync_02", f"{DATE}_drive_0001_sync_03", f"{DATE}_drive_0003_sync_02",
             f"{DATE}_drive_0003_sync_03"]
    assert (out / "train.txt").read_text().split() == names
    assert not list(out.glob("*0002*")) and not list(out.glob("*.tmp"))

    src = KittiRawSource(out / names[0])
    assert len(src) == 6 and src.image_size == (32, 96)
    np.testing.assert_array_equal(src.frame_ids, [0, 1, 4, 5, 6, 7])
    np.testing.assert_allclose(src.intrinsics, resize_intrinsics(K02, (RAW_H, RAW_W), (32, 96)), atol=1e-8)
    np.testing.assert_allclose(KittiRawSource(out / names[1]).intrinsics,
                               resize_intrinsics(K03, (RAW_H, RAW_W), (32, 96)), atol=1e-8)
    np.testing.assert_allclose(src.timestamps, [0.0, 0.1, 0.4, 0.5, 0.6, 0.7], atol=1e-6)
    expected = resize_image(frames.images[4], (32, 96))
    assert np.abs(src.load_image(2).astype(int) - expected).mean() < 3  # JPEG quality 95
    np.testing.assert_array_equal(KittiRawSource(out / names[2]).frame_ids, [0, 2, 3, 6, 7])

    sources = build_sources({"type": "kitti_raw", "path": str(out)})
    assert [s.name for s in sources] == [f"kitti_raw/{n}" for n in names]
    (one,) = build_sources({"type": "kitti_raw", "path": str(out), "sequences": [names[3]]})
    assert len(one) == 5


def test_rerun_skips_done_work_and_redoes_changed_or_broken(raw_root, tmp_path):
    out = tmp_path / "prepared"
    summary = prepare_kitti(raw_root, out, 32, 96, raw_root.parent / "test_scenes.txt", progress=False, log=lambda m: 0)
    assert len(summary["prepared"]) == 4
    first = out / f"{DATE}_drive_0001_sync_02" / "000000.jpg"
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(stamp - 10**9, stamp - 10**9))
    again = prepare_kitti(raw_root, out, 32, 96, raw_root.parent / "test_scenes.txt", progress=False,
                          log=lambda m: 0)
    assert again["prepared"] == [] and len(again["skipped_done"]) == 4
    assert first.stat().st_mtime_ns == stamp - 10**9  # untouched
    # an interrupted sequence (no .done marker, stale .tmp) is redone; the others stay skipped
    broken = out / f"{DATE}_drive_0003_sync_03"
    (broken / ".done").unlink()
    (out / f"{DATE}_drive_0001_sync_03.tmp").mkdir()
    third = prepare_kitti(raw_root, out, 32, 96, raw_root.parent / "test_scenes.txt", progress=False,
                          log=lambda m: 0)
    assert [name for name, _ in third["prepared"]] == [broken.name] and len(third["skipped_done"]) == 3
    assert (broken / ".done").is_file()
    # other settings (size) redo everything
    fourth = prepare_kitti(raw_root, out, 64, 96, raw_root.parent / "test_scenes.txt", progress=False,
                           log=lambda m: 0)
    assert len(fourth["prepared"]) == 4
    assert KittiRawSource(out / f"{DATE}_drive_0001_sync_02").image_size == (64, 96)


def test_static_frames_list_and_no_exclusion(raw_root, tmp_path, capsys):
    static = tmp_path / "static.txt"
    static.write_text(f"{DATE} {DATE}_drive_0001_sync 0000000000\n{DATE} {DATE}_drive_0001_sync 0000000005\n"
                      f"{DATE} {DATE}_drive_0003_sync 0000000007\n")
    assert read_static_frames(static) == {(f"{DATE}_drive_0001", 0), (f"{DATE}_drive_0001", 5),
                                          (f"{DATE}_drive_0003", 7)}
    out = tmp_path / "prepared"
    assert bwdp(["prepare-kitti", str(raw_root), "--out", str(out), "--height", "32", "--width", "96",
                 "--static-frames", str(static), "--no-progress"]) == 0
    assert "static frames by list" in capsys.readouterr().out
    np.testing.assert_array_equal(KittiRawSource(out / f"{DATE}_drive_0001_sync_02").frame_ids, [1, 2, 3, 4, 6, 7])
    np.testing.assert_array_equal(KittiRawSource(out / f"{DATE}_drive_0003_sync_03").frame_ids, list(range(7)))
    assert len((out / "train.txt").read_text().split()) == 6  # drive 0002 not excluded this time


def test_forced_methods(raw_root, tmp_path):
    out = tmp_path / "p"
    summary = prepare_kitti(raw_root, out, 32, 96, raw_root.parent / "test_scenes.txt", static_method="none",
                            progress=False, log=lambda m: 0)
    assert all(count == 8 for _, count in summary["prepared"])
    summary = prepare_kitti(raw_root, tmp_path / "q", 32, 96, raw_root.parent / "test_scenes.txt",
                            static_method="image", progress=False, log=lambda m: 0)
    assert summary["methods"][f"{DATE}_drive_0001_sync"] == "image"
    with pytest.raises(DataError, match="oxts"):
        prepare_kitti(raw_root, tmp_path / "r", 32, 96, raw_root.parent / "test_scenes.txt", static_method="oxts",
                      progress=False, log=lambda m: 0)


def test_scene_list_formats(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("2011_09_26_drive_0117\n2011_09_26/2011_09_26_drive_0002_sync 0000000069 l\n\n# comment\n")
    assert read_scene_list(f) == {"2011_09_26_drive_0117", "2011_09_26_drive_0002"}


def test_bad_inputs(raw_root, tmp_path, capsys):
    out = tmp_path / "o"
    assert bwdp(["prepare-kitti", str(tmp_path / "nothing"), "--out", str(out), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert bwdp(["prepare-kitti", str(raw_root), "--out", str(out), "--exclude-scenes", str(tmp_path / "x.txt"),
                 "--no-progress"]) == 2
    assert "x.txt" in capsys.readouterr().err
    (raw_root / DATE / "calib_cam_to_cam.txt").unlink()
    assert bwdp(["prepare-kitti", str(raw_root), "--out", str(out), "--no-progress"]) == 2
    assert "calib_cam_to_cam.txt does not exist" in capsys.readouterr().err
    _write_calib(raw_root)
    calib = raw_root / DATE / "calib_cam_to_cam.txt"
    calib.write_text(calib.read_text().replace("P_rect_03", "P_rect_09"))
    assert bwdp(["prepare-kitti", str(raw_root), "--out", str(out), "--height", "32", "--width", "96",
                 "--no-progress"]) == 2
    assert "P_rect_03" in capsys.readouterr().err
    with pytest.raises(DataError, match="incomplete"):
        (out / "half").mkdir(parents=True)
        KittiRawSource(out / "half")
