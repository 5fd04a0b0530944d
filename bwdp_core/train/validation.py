"""Validation during training: the number that decides which checkpoint becomes best.pt (lower is better).

- data with ground-truth depth: AbsRel (+ the other six metrics) of the target-frame depth, per-image median scaling,
  no Garg crop (bwdp_core.eval.depth_metrics);
- otherwise: the photometric term of the loss on the validation snippets (networks in eval mode, no augmentation).
"""
from __future__ import annotations

import torch

from bwdp_core.eval.depth_metrics import METRIC_NAMES, evaluate_depth_image, summarize
from bwdp_core.losses.total import total_loss
from bwdp_core.model import predict_snippet
from bwdp_core.train.step import batch_to_device


def _photometric_term(terms: dict, total: torch.Tensor) -> float:
    for name in ("photo", "photometric", "l_photo", "photometric_loss"):
        if name in terms:
            return float(torch.as_tensor(terms[name]))
    for name, value in terms.items():
        if "photo" in name:
            return float(torch.as_tensor(value))
    return float(total)


@torch.inference_mode()
def validate(disp_net, pose_net, loss_cfg, loader, device: torch.device, use_gt: bool, max_batches: int = 0) -> dict:
    """``{"metric": name, "value": float, **all metrics}`` over at most ``max_batches`` batches (0 = all).

    ``use_gt`` asks for depth metrics; batches without ``depth_gt`` fall back to the photometric loss.
    """

    was_training = (disp_net.training, pose_net.training)
    disp_net.eval()
    pose_net.eval()
    per_image, skipped, photo_sum, photo_n = [], 0, 0.0, 0
    try:
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            tgt, refs, K = batch_to_device(batch, device)
            if use_gt and "depth_gt" in batch:
                disps, _ = disp_net(tgt)
                depth = (1.0 / disps[0].float()).cpu().numpy()
                gt = batch["depth_gt"].cpu().numpy()
                for b in range(depth.shape[0]):
                    result = evaluate_depth_image(gt[b, 0], depth[b, 0], median_scaling=True, garg_crop=False)
                    if result is None:
                        skipped += 1
                    else:
                        per_image.append(result)
            else:
                pred = predict_snippet(disp_net, pose_net, tgt, refs, loss_cfg)
                total, terms, _ = total_loss(loss_cfg, tgt, refs, K, pred)
                photo_sum += _photometric_term(terms, total) * tgt.shape[0]
                photo_n += tgt.shape[0]
    finally:
        disp_net.train(was_training[0])
        pose_net.train(was_training[1])
    if per_image:
        metrics = summarize(per_image, skipped)["metrics"]
        return {"metric": "abs_rel", "value": metrics["abs_rel"], **{k: metrics[k] for k in METRIC_NAMES}}
    if photo_n:
        value = photo_sum / photo_n
        return {"metric": "photometric", "value": value, "photometric": value}
    return {}
