"""Run the two networks on a snippet: disparities + encoder features of every frame, and the relative poses.

    tgt_img, ref_imgs --DispNet (one batched forward over all frames)--> disparities per scale, encoder features
                      --PoseNet (tgt, ref)--> T_{t->r}
                      T_{r->t} = second pass PoseNet(ref, tgt), or invert_pose(T_{t->r}) (LossConfig.inverse_pose)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch

from bwdp_core.geometry import invert_pose, pose_vec_to_mat


@dataclass
class SnippetPrediction:
    """Network outputs for one batch of snippets (B snippets, N reference frames each).

    Frames are stacked frame-major along the batch dimension: rows [0:B] = tgt, rows [B(j+1):B(j+2)] = ref j.
    disps:          per decoder scale s, [(1+N)·B, 1, H/2^s, W/2^s] (disp = 1/depth)
    features:       the 5 DispNet-encoder maps, [(1+N)·B, C_l, H_l, W_l]
    pose_vecs:      [N·B, 6] PoseNet output for (tgt, ref j), ref-major rows
    poses_tgt_to_ref: [N·B, 4, 4] T_{t->r_j} (ref-major rows, as pose_vecs)
    poses_ref_to_tgt: [N·B, 4, 4] T_{r_j->t} (second PoseNet pass or inverse, per LossConfig.inverse_pose)
    """

    disps: List[torch.Tensor]
    features: List[torch.Tensor]
    pose_vecs: torch.Tensor
    poses_tgt_to_ref: torch.Tensor
    poses_ref_to_tgt: torch.Tensor
    num_refs: int
    batch_size: int

    @property
    def tgt_disps(self) -> List[torch.Tensor]:
        """Target disparity per scale, [B,1,H_s,W_s]."""
        return [d[: self.batch_size] for d in self.disps]

    @property
    def ref_disps(self) -> List[List[torch.Tensor]]:
        """ref_disps[j][s]: disparity of ref j at scale s, [B,1,H_s,W_s]."""
        b = self.batch_size
        return [[d[b * (j + 1): b * (j + 2)] for d in self.disps] for j in range(self.num_refs)]

    @property
    def tgt_depth(self) -> torch.Tensor:
        """Full-resolution target depth [B,1,H,W]."""
        return 1.0 / self.disps[0][: self.batch_size]

    def pose(self, j: int, direction: str = "tgt_to_ref") -> torch.Tensor:
        """[B,4,4] T_{t->r_j} (direction "tgt_to_ref") or T_{r_j->t} ("ref_to_tgt")."""
        poses = self.poses_tgt_to_ref if direction == "tgt_to_ref" else self.poses_ref_to_tgt
        return poses[self.batch_size * j: self.batch_size * (j + 1)]


def predict_snippet(disp_net, pose_net, tgt_img: torch.Tensor, ref_imgs: List[torch.Tensor], cfg) -> SnippetPrediction:
    """Disparities/features of all frames (one DispNet forward) and poses tgt<->ref (one or two PoseNet forwards).

    tgt_img: [B,3,H,W] in [0,1]; ref_imgs: list of N tensors [B,3,H,W]; cfg: LossConfig (uses ``inverse_pose``)
    -> :class:`SnippetPrediction`.
    """
    batch = tgt_img.shape[0]
    num_refs = len(ref_imgs)
    disps, features = disp_net(torch.cat([tgt_img, *ref_imgs], dim=0))
    tgt_rep = tgt_img.repeat(num_refs, 1, 1, 1)
    refs = torch.cat(list(ref_imgs), dim=0)
    if getattr(cfg, "inverse_pose", False):
        pose_vecs = pose_net(tgt_rep, refs)
        poses_fwd = pose_vec_to_mat(pose_vecs)
        poses_bwd = invert_pose(poses_fwd)
    else:
        both = pose_net(torch.cat([tgt_rep, refs], dim=0), torch.cat([refs, tgt_rep], dim=0))
        pose_vecs = both[: num_refs * batch]
        poses_fwd = pose_vec_to_mat(pose_vecs)
        poses_bwd = pose_vec_to_mat(both[num_refs * batch:])
    return SnippetPrediction(disps=list(disps), features=list(features), pose_vecs=pose_vecs,
                             poses_tgt_to_ref=poses_fwd, poses_ref_to_tgt=poses_bwd,
                             num_refs=num_refs, batch_size=batch)
