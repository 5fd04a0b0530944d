"""Demo steps 1-2: the settings (demo.yaml), running ``bwdp`` commands, the rendered streets and the cached training.

The trained checkpoint is cached under ``demo_cache/train-<key>/``, the key being a hash of everything that changes the
model (``config_hash``), so a second run skips training; an interrupted run resumes from its last checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from bwdp_core.errors import BwdpError, ConfigError
from bwdp_core.losses import PRESETS, loss_config
from bwdp_core.train.config import default_config_path
from bwdp_tools.processes import ManagedProcess, child_env

DEMO_CONFIG = Path(__file__).resolve().with_name("demo.yaml")
CACHE_VERSION = 1  # bump when the cached artefacts' layout changes


class DemoError(BwdpError):
    """A demo step that failed; the message names the step and the command."""


# ----------------------------------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoSettings:
    """One profile of bwdp_tools/demo.yaml (``demo`` or ``toy``)."""

    height: int
    width: int
    train_frames: int
    train_seed: int
    heldout_frames: int
    heldout_seed: int
    rate_hz: float
    iterations: int
    train_overrides: dict

    @classmethod
    def load(cls, profile: str, path: Path = DEMO_CONFIG) -> "DemoSettings":
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as err:
            raise ConfigError(f"{path}: cannot read the demo configuration ({err.strerror})") from None
        if not isinstance(doc, dict) or profile not in doc:
            raise ConfigError(f"{path}: no '{profile}' section")
        section = dict(doc[profile])
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(section) - known)
        missing = sorted(known - set(section))
        if unknown or missing:
            raise ConfigError(f"{path}: section '{profile}': unknown keys {unknown}, missing keys {missing}")
        settings = cls(**section)
        if settings.heldout_seed == settings.train_seed:
            raise ConfigError(f"{path}: heldout_seed must differ from train_seed (the held-out street must be new)")
        if settings.heldout_frames < 3 or settings.train_frames < 3:
            raise ConfigError(f"{path}: train_frames and heldout_frames must be at least 3 (one snippet)")
        return settings


def loss_defaults() -> dict:
    """The loss settings every preset resolves to in code (LossConfig's defaults are not in train.yaml)."""
    return {name: {k: repr(v) for k, v in dataclasses.asdict(loss_config(name)).items()} for name in sorted(PRESETS)}


def config_hash(settings: DemoSettings, train_config_text: str, loss_settings: dict | None = None) -> str:
    """Key of the cached checkpoint: everything that changes the trained model, and nothing else — the demo
    settings, train.yaml's text and the loss defaults in code (``loss_defaults()`` unless given)."""
    keyed = {
        "loss_defaults": loss_defaults() if loss_settings is None else loss_settings,
        "cache_version": CACHE_VERSION,
        "height": settings.height,
        "width": settings.width,
        "train_frames": settings.train_frames,
        "train_seed": settings.train_seed,
        "iterations": settings.iterations,
        "train_overrides": {str(k): settings.train_overrides[k] for k in sorted(settings.train_overrides)},
        "train_yaml": train_config_text,
    }
    return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------------
# running bwdp commands to completion
# ----------------------------------------------------------------------------------------------------------------------
def bwdp_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bwdp_core.commands.cli", *map(str, args)]


def run_step(cmd: list[str], what: str, env: dict | None = None, log: Path | None = None) -> None:
    """Run one command to completion in its own process group (stopped if we are interrupted)."""
    with ManagedProcess(cmd, env=env or child_env(), log=log) as proc:
        code = proc.wait()
    if code != 0:
        hint = f" (log: {log})" if log else ""
        raise DemoError(f"{what} failed with exit code {code}{hint}: {' '.join(map(str, cmd))}")


# ----------------------------------------------------------------------------------------------------------------------
# 1-2: data and model
# ----------------------------------------------------------------------------------------------------------------------
def render_sequence(cache: Path, name: str, frames: int, height: int, width: int, seed: int) -> Path:
    """`bwdp synth` into demo_cache/data/<key>/ (KITTI odometry layout), skipped when already there."""
    root = cache / "data" / f"{name}-{height}x{width}-n{frames}-s{seed}"
    if (root / "poses" / "00.txt").exists() and (root / "sequences" / "00" / "calib.txt").exists():
        print(f"[demo] {name} sequence cached: {root}")
        return root
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"[demo] rendering the {name} sequence: {frames} frames {height}x{width}, seed {seed}")
    run_step(bwdp_command("synth", "--out", tmp, "--frames", frames, "--height", height, "--width", width,
                          "--seed", seed), f"bwdp synth ({name})")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def find_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a finished `bwdp train` run left in RUN/checkpoints/ (last.pt preferred over best)."""
    ckpt_dir = run_dir / "checkpoints"
    for name in ("last.pt", "final.pt", "latest.pt", "best.pt"):
        if (ckpt_dir / name).is_file():
            return ckpt_dir / name
    candidates = sorted(ckpt_dir.glob("*.pt"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def train_command(settings: DemoSettings, train_root: Path, run_dir: Path, extra: dict | None = None) -> list[str]:
    """The demo's `bwdp train` command: train.yaml, the demo's data and budget, its ``train_overrides``, then
    ``extra`` (``--set`` key -> value, e.g. a benchmark's variant)."""
    overrides = {
        "data.source.type": "kitti_odom",
        "data.source.path": str(train_root),
        "data.height": settings.height,
        "data.width": settings.width,
        "train.iterations": settings.iterations,
        **settings.train_overrides,
        **(extra or {}),
    }
    cmd = bwdp_command("train", "--config", default_config_path(), "--out", run_dir)
    for k, v in overrides.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def train_or_reuse(cache: Path, settings: DemoSettings, train_root: Path) -> tuple[Path, bool]:
    """Train with the full method unless a checkpoint for this exact configuration is cached.

    Returns (checkpoint path, True when it was trained in this run)."""
    train_config = default_config_path()  # bwdp_core/config/train.yaml, what `bwdp train` starts from
    key = config_hash(settings, train_config.read_text())
    run_dir = cache / f"train-{key}"
    done = run_dir / "DONE.json"
    if done.is_file():
        ckpt = run_dir / json.loads(done.read_text())["checkpoint"]
        if ckpt.is_file():
            print(f"[demo] trained checkpoint cached (config {key}): {ckpt}")
            return ckpt, False
    resume = find_checkpoint(run_dir) is not None
    cmd = train_command(settings, train_root, run_dir)
    if resume:
        cmd.append("--resume")
    print(f"[demo] training ({settings.iterations} iterations, {settings.height}x{settings.width}, full method)"
          + (" - resuming an interrupted run" if resume else ""))
    run_step(cmd, "bwdp train")
    ckpt = find_checkpoint(run_dir)
    if ckpt is None:
        raise DemoError(f"bwdp train finished but left no checkpoint in {run_dir / 'checkpoints'}")
    done.write_text(json.dumps({"checkpoint": str(ckpt.relative_to(run_dir)), "config_hash": key}))
    return ckpt, True
