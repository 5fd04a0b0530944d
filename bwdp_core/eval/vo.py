"""`bwdp vo`: offline visual odometry — PoseNet's frame-to-frame motion chained into a camera-to-world trajectory.

For consecutive frames (i−1, i) the network runs as PoseNet(tgt = frame i, ref = frame i−1), which predicts
T_{t→r} = T_{i−1←i}: it maps points of camera i into camera i−1, i.e. it *is* the pose of camera i expressed in
camera i−1. Chaining therefore needs no inversion:

    T_w←0 = I,    T_w←i = T_w←(i−1) · T_(i−1)←i

(the first camera defines the world frame, as in KITTI's poses files). The trajectory has the network's depth scale
(a scale-invariant-warp model's translations are converted to it with each frame's mean depth, as in the node);
``bwdp eval-odom`` aligns it (sim3) to the ground truth.

    bwdp vo --checkpoint ckpt.pt --images DIR --intrinsics cam.txt --out traj.txt [--format kitti|tum]
    bwdp vo --checkpoint ckpt.pt --kitti-seq ROOT/sequences/09 --out 09.txt
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bwdp_core.data.kitti_odometry import KittiOdometrySource, kitti_cameras, kitti_odometry_sequences
from bwdp_core.errors import DataError
from bwdp_core.frames import with_nearest_rotation
from bwdp_core.geometry import pose_vec_to_mat
from bwdp_core.inference.preprocess import image_to_tensor
from bwdp_core.inference.vo_pipeline import translation_in_depth_units


def chain_relative_poses(relative: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Camera-to-world poses [N+1, 4, 4] from N relative poses T_(i−1)←i (pose of camera i in camera i−1).

    Every relative pose and every product is projected back onto SO(3) (``frames.with_nearest_rotation``): the network's
    float32 rotations and a long chain of float products otherwise drift off it (|RRᵀ − I| ~ 1e-6 after 160 KITTI
    frames), which evo and other trajectory tools refuse as "not a valid SO(3) group element".
    """
    poses = [np.eye(4)]
    for T_prev_cur in relative:
        poses.append(with_nearest_rotation(poses[-1] @ with_nearest_rotation(T_prev_cur)))
    return np.stack(poses)


def run_vo(pose_net, source, height: int, width: int, device="cpu", progress: bool = True,
           batch_size: int = 8, translation_unit: str = "depth", disp_net=None) -> np.ndarray:
    """Chained camera-to-world trajectory [N, 4, 4] of a FrameSource (``len``, ``load_image(i)``).

    Consecutive pairs are run ``batch_size`` at a time (eval-mode networks: the result does not depend on batching).
    ``translation_unit``: the checkpoint's ``pose_translation_unit``; "target_mean_depth" (a scale-invariant-warp
    model) needs ``disp_net``: each translation is multiplied by the mean depth of its current frame
    (``translation_in_depth_units``), so the trajectory has one scale, as the node's.
    """


    n = len(source)
    if n < 2:
        raise DataError(f"{getattr(source, 'name', 'sequence')} has {n} frame(s); visual odometry needs at least 2")
    relative: list[np.ndarray] = []
    current: list = []
    previous: list = []

    if translation_unit != "depth" and disp_net is None:
        raise ValueError(f"run_vo: translation unit {translation_unit!r} needs disp_net")

    def flush():
        # tgt = current frames, ref = previous frames -> T_(i-1)<-i for each pair
        tgt = torch.cat(current)
        vec = pose_net(tgt, torch.cat(previous))
        T = pose_vec_to_mat(vec.float()).double().cpu().numpy()
        mean_depth = None
        if translation_unit != "depth":
            mean_depth = (1.0 / disp_net(tgt)[0][0].float()).mean(dim=(1, 2, 3)).double().cpu().numpy()
        relative.extend(translation_in_depth_units(T, translation_unit, mean_depth))
        current.clear()
        previous.clear()

    with torch.inference_mode():
        prev = image_to_tensor(source.load_image(0), height, width, device)
        for i in tqdm(range(1, n), desc="vo", unit="frame", disable=None if progress else True):
            cur = image_to_tensor(source.load_image(i), height, width, device)
            current.append(cur)
            previous.append(prev)
            prev = cur
            if len(current) >= max(1, batch_size):
                flush()
        if current:
            flush()
    return chain_relative_poses(relative)


def run_pipeline(vo, source, timestamps, progress: bool = True, warn=None) -> tuple[np.ndarray, np.ndarray]:
    """The node's processing (a :class:`~bwdp_core.inference.vo_pipeline.VisualOdometry`) over every frame of a
    FrameSource: (camera poses [N,4,4] w.r.t. the first camera, in the pipeline's units; the scale of each frame [N]).

    ``timestamps``: seconds [N] (the pipeline's frame-gap rule uses them). A frame whose motion the pipeline does not
    trust (tracking lost) keeps the previous pose, as the node's odometry does. ``warn(line)`` gets the pipeline's
    warnings (a near-constant-depth checkpoint), as the node logs them.
    """
    n = len(source)
    if n < 2:
        raise DataError(f"{getattr(source, 'name', 'sequence')} has {n} frame(s); visual odometry needs at least 2")
    poses, scales = [], []
    for i in tqdm(range(n), desc="vo", unit="frame", disable=None if progress else True):
        frame = vo.process(source.load_image(i), source.intrinsics, int(round(float(timestamps[i]) * 1e9)))
        if frame.warning and warn is not None:
            warn(frame.warning)
        poses.append(frame.T_start_camera)
        scales.append(frame.scale)
    return np.stack(poses), np.asarray(scales)


def open_kitti_sequence(path: str | Path, camera: int | None = None):
    """``--kitti-seq``: a sequence folder ``ROOT/sequences/NN``, or a ROOT holding exactly one sequence.

    ``camera``: 0..3 (image_0 = left grey, image_2 = left colour); None = image_2 when present, else the first camera
    the folder has (e.g. a grey-only layout with image_0).
    """

    path = Path(path)
    if (path / "sequences").is_dir():
        names = kitti_odometry_sequences(path)
        if len(names) != 1:
            raise DataError(f"{path} holds sequences {', '.join(names)}: pass one of them as "
                            f"--kitti-seq {path / 'sequences' / names[0]}")
        root, name = path, names[0]
    elif not path.is_dir():
        raise DataError(f"KITTI odometry sequence folder {path} does not exist")
    else:
        root, name = path.parent.parent, path.name
    if camera is None:
        present = kitti_cameras(root / "sequences" / name)
        camera = 2 if 2 in present or not present else present[0]
    return KittiOdometrySource(root, name, camera=camera)
