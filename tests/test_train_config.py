"""`bwdp train` configuration: defaults + file + --set, unknown keys, and user errors that exit 2 before step 1.

Also holds the small helpers the other test_train_* files import (running the CLI, writing a tiny config).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from bwdp_core.errors import ConfigError
from bwdp_core.train.config import load_config, parse_override

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------------- helpers
def bwdp_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_bwdp(*args, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bwdp_core.commands.cli", *map(str, args)], cwd=REPO,
                          env=env or bwdp_env(),
                          capture_output=True, text=True, timeout=timeout)


def tiny_config(path: Path, *, iterations: int = 6, frames: int = 6, batch: int = 2, seed: int = 0, **sections) -> Path:
    """A config for a seconds-long CPU run on an in-memory rendered street (32x96, no files needed)."""
    cfg = {
        "data": {"source": {"type": "synth", "frames": frames, "height": 32, "width": 96, "seed": seed},
                 "height": 32, "width": 96, "augment": False, "val_fraction": 0.0},
        "train": {"batch": batch, "iterations": iterations, "workers": 0, "threads": 1, "log_every": 1,
                  "ckpt_every": 1000, "val_every": 0, "image_every": 0, "lr": 2.0e-4, "seed": seed},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The CLI's user-error contract: exit 2, exactly one line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


# -------------------------------------------------------------------------------------------------- config merging
def test_defaults_file_and_set_overrides(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump({"train": {"batch": 8}, "data": {"source": {"type": "images", "path": "/d"}}}))
    cfg = load_config(user, ["train.lr=2e-4", "data.source.intrinsics=[100, 100, 48, 16]", "train.amp=false",
                             "loss.weights.w_feat=0.1"], out=str(tmp_path / "run"))
    assert cfg["train"]["batch"] == 8
    assert cfg["train"]["lr"] == pytest.approx(2e-4) and isinstance(cfg["train"]["lr"], float)
    assert cfg["train"]["amp"] is False
    # a source given in a file replaces the default one; --set merges into it key by key
    assert cfg["data"]["source"] == {"type": "images", "path": "/d", "intrinsics": [100, 100, 48, 16]}
    assert cfg["loss"]["weights"] == {"w_feat": 0.1}
    assert cfg["loss"]["overrides"] == {}  # the LossConfig defaults (second PoseNet pass) unless a user overrides
    assert cfg["out"] == str(tmp_path / "run")
    assert cfg["train"]["iterations"] == 200000  # untouched default from config/train.yaml


@pytest.mark.parametrize("item, fragment", [
    ("train.lrr=1", "train.lrr"),
    ("nosection.key=1", "nosection"),
    ("train.batch=0", "train.batch"),
    ("train.device=tpu", "train.device"),
    ("train.channels_last=fast", "train.channels_last"),
    ("data.height=100", "data.height"),
    ("train=3", "train"),
    ("train.batch", "key=value"),
])
def test_bad_overrides_raise_config_error_naming_the_key(item, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(None, ["data.source.path=/x", item])


def test_parse_override_is_yaml():
    assert parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}
    assert parse_override("a=null") == {"a": None}
    assert parse_override("a.b.c=text") == {"a": {"b": {"c": "text"}}}


def test_unset_data_path_is_a_config_error():
    with pytest.raises(ConfigError, match="data.source.path"):
        load_config(None, [])


# ------------------------------------------------------------------------------ CLI: user errors exit 2, one line
def test_cli_unknown_key_exits_2(tmp_path):
    proc = run_bwdp("train", "--config", tiny_config(tmp_path / "c.yaml"), "--set", "train.bogus=1",
                    "--out", tmp_path / "run")
    assert "train.bogus" in one_line_error(proc)
    assert not (tmp_path / "run").exists()


def test_cli_missing_config_file_exits_2(tmp_path):
    proc = run_bwdp("train", "--config", tmp_path / "nope.yaml", "--out", tmp_path / "run")
    assert "nope.yaml" in one_line_error(proc)


def test_cli_bad_data_fails_before_first_step(tmp_path):
    empty = tmp_path / "empty_images"
    empty.mkdir()
    cfg = tiny_config(tmp_path / "c.yaml")
    proc = run_bwdp("train", "--config", cfg, "--set", f"data.source={{type: images, path: {empty}, "
                    "intrinsics: [50, 50, 48, 16]}", "--out", tmp_path / "run")
    assert str(empty) in one_line_error(proc)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_too_few_snippets_for_a_batch_exits_2(tmp_path):
    cfg = tiny_config(tmp_path / "c.yaml", frames=4, batch=4)  # 2 snippets < one batch of 4
    assert "batch" in one_line_error(run_bwdp("train", "--config", cfg, "--out", tmp_path / "run"))


def test_cli_resume_without_checkpoint_exits_2(tmp_path):
    cfg = tiny_config(tmp_path / "c.yaml")
    line = one_line_error(run_bwdp("train", "--config", cfg, "--out", tmp_path / "run", "--resume"))
    assert "last.pt" in line


def test_cli_resume_of_corrupt_or_mismatched_checkpoint_exits_2(tmp_path):
    from bwdp_core.checkpoint import build_models, make_checkpoint, save_checkpoint

    cfg = tiny_config(tmp_path / "c.yaml")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    line = one_line_error(run_bwdp("train", "--config", cfg, "--out", tmp_path / "run", "--resume"))
    assert str(last) in line and "corrupt" in line

    # a real checkpoint trained at another resolution
    disp, pose = build_models({"num_layers": 18})
    ckpt = make_checkpoint(disp, pose, 64, 192, step=3, config={"model": {"num_layers": 18},
                                                                 "data": {"height": 64, "width": 192}},
                           optimizer=torch.optim.Adam(list(disp.parameters())[:1]).state_dict())
    save_checkpoint(last, ckpt)
    line = one_line_error(run_bwdp("train", "--config", cfg, "--out", tmp_path / "run", "--resume"))
    assert "data.height=64" in line and str(last) in line


def test_cli_refuses_to_overwrite_a_run_without_resume(tmp_path):
    cfg = tiny_config(tmp_path / "c.yaml")
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    assert "--resume" in one_line_error(run_bwdp("train", "--config", cfg, "--out", tmp_path / "run"))
    assert last.read_bytes() == b"x"
