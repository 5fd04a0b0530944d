"""Checkpoint format shared by training, evaluation, export and the ROS node.

A checkpoint is a plain dict that ``torch.load(path, weights_only=True)`` can read (tensors, numbers, strings, lists,
dicts only — no pickled classes)::

    {"format": "bwdp-checkpoint-v1",
     "model": {"num_layers": 18, "height": H, "width": W},
     "disp_net": state_dict, "pose_net": state_dict,
     "step": int, "config": dict (plain, YAML-able),
     optional "optimizer", "scaler", "rng", "best": {"metric": str, "value": float}}

Writes are atomic (temp file in the same directory, fsync, ``os.replace``), so a run killed mid-save leaves either the
previous checkpoint or the new one, never a truncated file.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from bwdp_core.errors import CheckpointError, ConfigError
from bwdp_core.nets.disp_net import DispNet
from bwdp_core.nets.pose_net import POSE_FACTORS, POSE_SCALE, PoseNet

CHECKPOINT_FORMAT = "bwdp-checkpoint-v1"
REQUIRED_KEYS = ("format", "model", "disp_net", "pose_net")


def _unwrap(module: nn.Module) -> nn.Module:
    """The bare network inside a DistributedDataParallel / DataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module)


def make_checkpoint(
    disp_net: nn.Module,
    pose_net: nn.Module,
    height: int,
    width: int,
    step: int = 0,
    config: Optional[dict] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """Assemble a checkpoint dict from the two networks (DDP wrappers are unwrapped, tensors copied to the CPU).

    ``extra`` goes in as top-level keys (e.g. optimizer=opt.state_dict(), rng=..., best={"metric": ..., "value": ...}).
    """
    disp_net, pose_net = _unwrap(disp_net), _unwrap(pose_net)
    num_layers = int(getattr(disp_net, "num_layers", 18))
    model = {"num_layers": num_layers, "height": int(height), "width": int(width)}
    for key in POSE_FACTORS:
        factor = float(getattr(pose_net, key, POSE_SCALE))
        if factor != POSE_SCALE:  # only when not the default, so existing checkpoints read the same
            model[key] = factor
    if getattr(disp_net, "decoder_norm", "none") != "none":  # a non-default decoder, so load_models rebuilds it
        model["decoder_norm"] = disp_net.decoder_norm
    ckpt: Dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "model": model,
        "disp_net": {k: v.detach().cpu() for k, v in disp_net.state_dict().items()},
        "pose_net": {k: v.detach().cpu() for k, v in pose_net.state_dict().items()},
        "step": int(step),
        "config": dict(config) if config is not None else {},
    }
    ckpt.update(extra)
    return ckpt


def save_checkpoint(path: str | os.PathLike, ckpt: Dict[str, Any]) -> None:
    """Write ``ckpt`` to ``path`` atomically: temp file in the same directory + fsync + os.replace (+ dir fsync).

    Creates the parent directory. On any failure the temp file is removed and the previous file at ``path`` is kept.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(ckpt, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU and check its format.

    Raises CheckpointError naming ``path`` when it is missing, truncated/corrupt, not a bwdp checkpoint, or lacks
    one of the required keys.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, garbage bytes, pickled classes refused by weights_only
        detail = str(exc).strip().splitlines()
        detail = detail[0][:200] if detail else ""
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {detail})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path} is not a bwdp checkpoint (expected format {CHECKPOINT_FORMAT!r}, found "
                              f"{found!r})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks required keys: {', '.join(missing)}")
    if not isinstance(ckpt["model"], dict) or not isinstance(ckpt["disp_net"], dict) or not isinstance(
        ckpt["pose_net"], dict
    ):
        raise CheckpointError(f"checkpoint {path}: 'model', 'disp_net' and 'pose_net' must be dicts")
    return ckpt


def build_models(model_meta: Dict[str, Any],
                 pretrained_path: Optional[str | os.PathLike] = None) -> Tuple[DispNet, PoseNet]:
    """Build an untrained DispNet and PoseNet from checkpoint metadata ``{"num_layers": 18|50, ...}`` (optional
    ``"rotation_scale"`` / ``"translation_scale"``: PoseNet's output factors, default 0.01).

    ``pretrained_path``: optional ImageNet ResNet weights file for both encoders (PoseNet's conv1 is duplicated and
    halved). Raises CheckpointError when ``num_layers`` is missing or unsupported.
    """
    if not isinstance(model_meta, dict) or "num_layers" not in model_meta:
        raise CheckpointError(f"model metadata lacks 'num_layers': {model_meta!r}")
    try:
        num_layers = int(model_meta["num_layers"])
        factors = {}
        for key in POSE_FACTORS:
            factors[key] = float(model_meta.get(key, POSE_SCALE))
            if not factors[key] > 0:
                raise ValueError(f"{key} must be positive, got {factors[key]}")
        disp_net = DispNet(num_layers, pretrained_path, decoder_norm=str(model_meta.get("decoder_norm", "none")))
        return disp_net, PoseNet(num_layers, pretrained_path, **factors)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"model metadata {model_meta!r}: {exc}") from None


#: ``meta["pose_translation_unit"]`` of load_models: what one unit of PoseNet's translation is.
#: "depth": the network's depth unit (the metric warp; the translation and the depth map share one free scale).
#: "target_mean_depth": the mean depth of the target frame (``loss.overrides.scale_invariant_warp``, which divides
#: every depth by that mean before warping), so a translation in depth units is t x mean(depth of the target frame).
TRANSLATION_UNITS = ("depth", "target_mean_depth")


def pose_translation_unit(config: Optional[dict]) -> str:
    """The unit of PoseNet's translation for a model trained with ``config`` (the training config a checkpoint
    keeps): one of TRANSLATION_UNITS."""
    overrides = ((config or {}).get("loss") or {}).get("overrides") or {}
    return "target_mean_depth" if overrides.get("scale_invariant_warp") else "depth"


def load_models(path: str | os.PathLike, device: str | torch.device = "cpu") -> Tuple[DispNet, PoseNet, Dict[str, Any]]:
    """Load both networks from a checkpoint, on ``device``, in eval mode. Returns (disp_net, pose_net, meta).

    ``meta`` is the checkpoint's "model" dict plus "step", "pose_translation_unit" (see TRANSLATION_UNITS) and
    "best" when present.
    Raises CheckpointError naming ``path`` when the file is unusable or its weights do not fit the networks.
    """
    ckpt = load_checkpoint(path)
    disp_net, pose_net = build_models(ckpt["model"])
    for name, net in (("disp_net", disp_net), ("pose_net", pose_net)):
        _load_state(net, ckpt[name], f"{path} [{name}]", ckpt["model"])
    disp_net.to(device).eval()
    pose_net.to(device).eval()
    meta = dict(ckpt["model"])
    meta["step"] = ckpt.get("step", 0)
    meta["pose_translation_unit"] = pose_translation_unit(ckpt.get("config"))
    if "best" in ckpt:
        meta["best"] = ckpt["best"]
    return disp_net, pose_net, meta


def load_weights(path: str | os.PathLike, disp_net: nn.Module, pose_net: nn.Module) -> Dict[str, Any]:
    """Copy the weights of the checkpoint at ``path`` into existing networks (``model.init``: start a run from another
    run's model). CheckpointError naming ``path`` when it is unusable or built for other networks (e.g. ResNet-50
    weights into ResNet-18). Returns the checkpoint's "model" dict."""
    ckpt = load_checkpoint(path)
    for name, net in (("disp_net", disp_net), ("pose_net", pose_net)):
        _load_state(net, ckpt[name], f"{path} [{name}]", ckpt["model"])
    return dict(ckpt["model"])


def _load_state(net: nn.Module, state: Dict[str, Any], where: str, model_meta: Dict[str, Any]) -> None:
    """Strict load_state_dict with a one-line CheckpointError for missing/unexpected keys or shape mismatches."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {where} does not match the networks built from {model_meta!r}: "
            f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != own[key].shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(
                f"checkpoint {where} does not match the networks built from {model_meta!r}: "
                f"'{key}' has shape {got}, expected {tuple(own[key].shape)}"
            )
    net.load_state_dict(state, strict=True)
