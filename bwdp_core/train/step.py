"""One optimisation step: the networks, the optimizer, and forward -> loss -> backward -> update.

`SnippetModel` puts DispNet and PoseNet behind a single forward (predict_snippet), so that DistributedDataParallel sees
exactly one forward per backward. The loss stays outside the model: swap the LossConfig (or total_loss) without
touching the networks, swap the networks without touching the loss.
"""
from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from bwdp_core.checkpoint import build_models, load_weights
from bwdp_core.errors import ConfigError
from bwdp_core.losses.config import loss_config
from bwdp_core.losses.total import total_loss
from bwdp_core.model import SnippetPrediction, predict_snippet


class SnippetModel(torch.nn.Module):
    """DispNet + PoseNet; ``forward(tgt_img, ref_imgs)`` = bwdp_core.model.predict_snippet as a plain dict.

    The dict (not the SnippetPrediction dataclass) is what DDP must see: it hooks its gradient synchronisation into
    the tensors it finds by flattening the output, and it does not flatten dataclasses. `as_prediction` turns the
    dict back into the SnippetPrediction the loss takes.
    """

    def __init__(self, disp_net: torch.nn.Module, pose_net: torch.nn.Module, loss_cfg, channels_last: bool = False):
        super().__init__()
        self.disp_net = disp_net
        self.pose_net = pose_net
        self.loss_cfg = loss_cfg
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, tgt_img: torch.Tensor, ref_imgs: list[torch.Tensor]) -> dict:
        """tgt_img [B,3,H,W], ref_imgs list of [B,3,H,W] -> the SnippetPrediction fields. The images are laid out in
        the networks' memory format first (``train.channels_last``; the values are the same either way)."""
        tgt_img = tgt_img.contiguous(memory_format=self.memory_format)
        ref_imgs = [ref.contiguous(memory_format=self.memory_format) for ref in ref_imgs]
        pred = predict_snippet(self.disp_net, self.pose_net, tgt_img, ref_imgs, self.loss_cfg)
        return {f.name: getattr(pred, f.name) for f in dataclasses.fields(pred)}


def as_prediction(fields: dict):
    """SnippetModel's output dict -> bwdp_core.model.SnippetPrediction."""

    return SnippetPrediction(**fields)


def build_loss_config(cfg: dict):
    """LossConfig from ``loss.preset`` + ``loss.overrides`` + ``loss.weights`` (ConfigError on unknown keys)."""

    overrides = dict(cfg["loss"].get("overrides") or {})
    weights = dict(cfg["loss"].get("weights") or {})
    bad = [k for k in weights if not k.startswith("w_")]
    if bad:
        raise ConfigError(f"loss.weights: {', '.join(bad)} are not loss weights (weights are named w_*)")
    overrides.update(weights)
    try:
        return loss_config(cfg["loss"]["preset"], **overrides)
    except TypeError as err:  # a value of the wrong type for a LossConfig field
        raise ConfigError(f"loss config: {err}") from None


def build_networks(cfg: dict):
    """(DispNet, PoseNet) from ``model``: ImageNet encoder weights from ``model.pretrained`` when given, then the
    weights of the bwdp checkpoint ``model.init`` when given (any training resolution: the networks are fully
    convolutional)."""

    meta = {"num_layers": cfg["model"]["num_layers"], "height": cfg["data"]["height"], "width": cfg["data"]["width"],
            "rotation_scale": cfg["model"].get("rotation_scale", 0.01),
            "translation_scale": cfg["model"].get("translation_scale", 0.01),
            "decoder_norm": cfg["model"]["decoder_norm"]}
    disp_net, pose_net = build_models(meta, cfg["model"]["pretrained"] or None)
    if cfg["model"].get("init"):
        load_weights(cfg["model"]["init"], disp_net, pose_net)
    return disp_net, pose_net


def build_optimizer(cfg: dict, model: torch.nn.Module) -> torch.optim.Optimizer:
    train = cfg["train"]
    return torch.optim.Adam(model.parameters(), lr=float(train["lr"]), betas=tuple(float(b) for b in train["betas"]),
                            weight_decay=float(train["weight_decay"]))


def learning_rate(cfg: dict, step: int) -> float:
    """Learning rate of update number ``step + 1`` (``step`` updates done): linear warmup over ``train.warmup_steps``,
    then constant or a cosine from ``train.lr`` down to ``lr x final_lr_factor`` at ``train.iterations``. A pure
    function of the step, so a resumed run continues the same schedule."""
    train = cfg["train"]
    peak, total, warmup = float(train["lr"]), int(train["iterations"]), int(train.get("warmup_steps", 0))
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    if train.get("lr_schedule", "constant") == "constant":
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    final = peak * float(train.get("final_lr_factor", 0.1))
    return final + 0.5 * (peak - final) * (1.0 + math.cos(math.pi * progress))


def loss_config_at(cfg: dict, loss_cfg, step: int):
    """The LossConfig of update number ``step + 1``: ``loss_cfg`` with the smoothness weight ramped linearly from 0
    to ``w_smooth`` over ``train.smoothness_warmup_steps`` (0 = no ramp, ``loss_cfg`` itself).

    Why: at the start PoseNet's motion is ~0, so the photometric terms give DispNet almost no gradient and the
    edge-aware smoothness is the only term shaping depth. Adam normalises each parameter's step by its own gradient
    size, so ``w_smooth`` does not make that pull small: it flattens the depth map in a few steps, and structure
    only returns once the poses move (the flat phase of issue 13; README "Why depth went flat"). A pure function of
    the step, so a resumed run continues the same ramp."""
    warmup = int(cfg["train"].get("smoothness_warmup_steps", 0))
    if warmup <= 0 or step >= warmup:
        return loss_cfg
    return dataclasses.replace(loss_cfg, w_smooth=loss_cfg.w_smooth * step / warmup)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def use_amp(cfg: dict, device: torch.device) -> bool:
    """Mixed precision only on CUDA (autocast fp16 + GradScaler); CPU runs stay fp32."""
    return bool(cfg["train"]["amp"]) and device.type == "cuda"


def make_scaler(enabled: bool) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cuda", enabled=enabled)


@dataclass
class StepResult:
    total: float
    terms: dict[str, float]
    visuals: dict
    finite: bool


def batch_to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """(tgt_img [B,3,H,W], ref_imgs list of [B,3,H,W], K [B,3,3]) on ``device``."""
    non_blocking = device.type == "cuda"
    tgt = batch["tgt_img"].to(device, non_blocking=non_blocking).float()
    refs = batch["ref_imgs"].to(device, non_blocking=non_blocking).float()
    K = batch["intrinsics"].to(device, non_blocking=non_blocking).float()
    return tgt, [refs[:, i] for i in range(refs.shape[1])], K


def train_step(model: torch.nn.Module, loss_cfg, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               batch: dict, device: torch.device, amp: bool, grad_clip: float = 0.0) -> StepResult:
    """Forward (under autocast when ``amp``), total loss (eq. 7, in fp32), backward, clip, optimizer step.

    Backward always runs (DDP's all-reduce must happen on every rank); the update is skipped when the gradient
    norm is not finite. After DDP's all-reduce the gradients are the same on every rank, so all ranks skip together.
    """

    tgt, refs, K = batch_to_device(batch, device)
    autocast = torch.autocast(device_type="cuda", dtype=torch.float16) if amp else nullcontext()
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        outputs = model(tgt, refs)
    pred = as_prediction(_to_float(outputs) if amp else outputs)
    with torch.autocast(device_type=device.type, enabled=False):
        total, terms, visuals = total_loss(loss_cfg, tgt, refs, K, pred)
    scaler.scale(total + 0.0 * _touch_all(outputs)).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    finite = bool(torch.isfinite(grad_norm))
    if finite:
        scaler.step(optimizer)
    scaler.update()
    values = {name: float(torch.as_tensor(value).detach()) for name, value in terms.items()}
    return StepResult(total=float(total.detach()), terms=values, visuals=visuals, finite=finite)


def _touch_all(outputs: dict) -> torch.Tensor:
    """Sum of the means of every floating output tensor: added with weight 0 so that each parameter takes part in
    backward (DDP synchronises a gradient per parameter every step; an output the loss ignores would stall it)."""
    tensors = [t for t in _flatten(outputs) if torch.is_tensor(t) and t.is_floating_point() and t.requires_grad]
    return torch.stack([t.float().mean() for t in tensors]).sum() if tensors else torch.zeros(())


def _flatten(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _flatten(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _flatten(v)
    else:
        yield obj


def _to_float(obj):
    """Cast every floating tensor of a (nested list / tuple / dict) prediction to fp32 for the loss."""
    if torch.is_tensor(obj):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_float(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _to_float(v) for k, v in obj.items()}
    return obj
