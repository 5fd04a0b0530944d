"""Training state <-> checkpoint files (OUT/checkpoints/last.pt and best.pt).

The file format is bwdp_core.checkpoint's (a plain dict that loads with ``torch.load(weights_only=True)``); this module
adds what a resumed run needs: optimizer, GradScaler, step, every rank's RNG states (numpy/python states stored as
plain ints and tensors, never pickled objects) and the best validation value so far.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from bwdp_core.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from bwdp_core.errors import CheckpointError

LAST = "last.pt"
BEST = "best.pt"


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


# ---------------------------------------------------------------------------------------------------------- RNG states
def capture_rng_state() -> dict:
    """This process's torch / numpy / python / CUDA generator states as weights_only-loadable values."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "python": {"version": int(py_version), "state": [int(v) for v in py_state],
                   "gauss_next": None if py_gauss is None else float(py_gauss)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of capture_rng_state (CUDA states only when the same number of devices is visible)."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), int(npst["pos"]),
                         int(npst["has_gauss"]), float(npst["cached_gaussian"])))
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss_next"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------------------------------ save / restore
def training_checkpoint(disp_net, pose_net, cfg: dict, step: int, optimizer, scaler, rng_per_rank: list,
                        best: dict | None) -> dict:
    """The checkpoint dict of a training run at ``step`` (networks unwrapped from DDP by the caller)."""

    extra = {"optimizer": optimizer.state_dict(), "rng": {"per_rank": rng_per_rank}}
    if scaler is not None and scaler.is_enabled():
        extra["scaler"] = scaler.state_dict()
    if best is not None:
        extra["best"] = dict(best)
    return make_checkpoint(disp_net, pose_net, cfg["data"]["height"], cfg["data"]["width"], step=int(step),
                           config=cfg, **extra)


def weights_checkpoint(disp_net, pose_net, cfg: dict, step: int, best: dict) -> dict:
    """best.pt: networks, config, step and the validation record; no optimizer state (a third of the size)."""

    return make_checkpoint(disp_net, pose_net, cfg["data"]["height"], cfg["data"]["width"], step=int(step),
                           config=cfg, best=dict(best))


def write_checkpoint(path: Path, ckpt: dict) -> None:
    """Atomic write (temp file + fsync + rename, bwdp_core.checkpoint.save_checkpoint)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, ckpt)


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete temp files a run killed while writing left next to the checkpoints; returns what was removed.

    save_checkpoint writes a hidden or ``*.tmp*`` file in the same folder and renames it; only such names are removed.
    """
    removed = []
    if directory.is_dir():
        for entry in directory.iterdir():
            if entry.is_file() and (entry.name.startswith(".") or ".tmp" in entry.name or entry.suffix == ".part"):
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def load_resume_checkpoint(out: str | Path) -> tuple[Path, dict]:
    """The latest checkpoint of a run in ``out``; CheckpointError when none is there or it cannot be read."""

    path = checkpoint_dir(out) / LAST
    if not path.is_file():
        raise CheckpointError(f"--resume: no checkpoint to resume from at {path} (start without --resume)")
    ckpt = load_checkpoint(path)
    for key in ("step", "disp_net", "pose_net", "optimizer", "config"):
        if key not in ckpt:
            raise CheckpointError(f"--resume: {path} is not a training checkpoint (no '{key}')")
    return path, ckpt


def check_compatible(path: Path, ckpt: dict, cfg: dict) -> None:
    """A resumed run must train the same networks at the same resolution: CheckpointError naming the key otherwise."""
    saved = ckpt.get("config") or {}
    pairs = [("model.num_layers", saved.get("model", {}).get("num_layers"), cfg["model"]["num_layers"]),
             ("data.height", saved.get("data", {}).get("height"), cfg["data"]["height"]),
             ("data.width", saved.get("data", {}).get("width"), cfg["data"]["width"]),
             ("model.rotation_scale", saved.get("model", {}).get("rotation_scale", 0.01),
              cfg["model"].get("rotation_scale", 0.01)),
             ("model.translation_scale", saved.get("model", {}).get("translation_scale", 0.01),
              cfg["model"].get("translation_scale", 0.01))]
    for key, old, new in pairs:
        if old != new:
            raise CheckpointError(f"--resume: {path} was trained with {key}={old}, the config now says {new}")
    if int(ckpt["step"]) > cfg["train"]["iterations"]:
        raise CheckpointError(f"--resume: {path} is at step {ckpt['step']}, beyond train.iterations="
                              f"{cfg['train']['iterations']}")


def restore_training_state(path: Path, ckpt: dict, disp_net, pose_net, optimizer, scaler, rank: int,
                           world_size: int) -> None:
    """Load networks, optimizer, scaler and this rank's RNG states; CheckpointError for any mismatch."""
    try:
        disp_net.load_state_dict(ckpt["disp_net"])
        pose_net.load_state_dict(ckpt["pose_net"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"--resume: {path} does not match the networks/optimizer of this config: {first}") \
            from None
    if scaler is not None and scaler.is_enabled() and "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    per_rank = (ckpt.get("rng") or {}).get("per_rank") or []
    if len(per_rank) == world_size:
        try:
            restore_rng_state(per_rank[rank])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"--resume: {path} has unreadable RNG states: {err}") from None
