"""A `bwdp train` run killed with SIGKILL resumes from its last checkpoint and ends exactly where an uninterrupted run
ends (same step count, bit-identical weights), leaving no temp or corrupt file behind."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from test_train_config import REPO, bwdp_env, run_bwdp, tiny_config

from bwdp_core.train.checkpointing import capture_rng_state, restore_rng_state
from bwdp_core.train.data import ResumableSampler, epoch_and_offset
from bwdp_core.train.distributed import DistContext

ITERATIONS = 8


def _config(tmp_path):
    # 8 frames -> 6 snippets, 2 held out for validation, batch 2: 2 steps per epoch, so the kill and the resume land
    # in different epochs; augmentation on, so the per-epoch augmentation draw must be restored too
    return tiny_config(tmp_path / "c.yaml", iterations=ITERATIONS, frames=8, batch=2,
                       data={"augment": True, "val_fraction": 0.2},
                       train={"ckpt_every": 3, "val_every": 4})


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = _config(tmp_path)

    reference = run_bwdp("train", "--config", cfg, "--out", tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "killed"
    last = out / "checkpoints" / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "bwdp_core.commands.cli", "train", "--config", str(cfg),
                             "--out", str(out)],
                            cwd=REPO, env=bwdp_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert last.exists(), f"no checkpoint appeared: {proc.poll()} {proc.stderr.read() if proc.poll() else ''}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    killed_at = torch.load(last, weights_only=True)["step"]  # whatever was renamed into place is complete
    assert killed_at in range(3, ITERATIONS, 3), killed_at
    # a kill during a write leaves save_checkpoint's temp file behind; the resumed run must clean it up
    stale = last.parent / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")

    resumed = run_bwdp("train", "--out", out, "--resume")  # no --config: the run's own OUT/config.yaml
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {killed_at}" in resumed.stdout + resumed.stderr
    assert f"trained to step {ITERATIONS}" in resumed.stdout

    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]
    # the log holds every step once: what the killed run logged after its checkpoint was dropped on resume
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, ITERATIONS + 1))
    final = torch.load(last, weights_only=True)
    ref = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    assert final["step"] == ref["step"] == ITERATIONS
    for net in ("disp_net", "pose_net"):
        for key, value in ref[net].items():
            assert torch.equal(final[net][key], value), f"{net}.{key} differs from the uninterrupted run"
    # best.pt bookkeeping survives the kill: the record equals the uninterrupted run's
    assert final["best"] == ref["best"] and final["best"]["metric"] == "abs_rel"


def test_resumable_sampler_skips_exactly_the_consumed_batches():
    dataset = list(range(23))
    ctx = DistContext(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"))
    batch = 3
    full = ResumableSampler(dataset, ctx, seed=4)
    steps_per_epoch = full.num_samples // batch
    stream = []  # indices of the batches an uninterrupted run takes, epoch after epoch
    for epoch in range(3):
        full.start_epoch(epoch)
        order = list(full)
        stream += [order[i * batch:(i + 1) * batch] for i in range(steps_per_epoch)]
    for step in range(len(stream)):
        epoch, offset = epoch_and_offset(step, steps_per_epoch)
        resumed = ResumableSampler(dataset, ctx, seed=4)
        resumed.start_epoch(epoch, offset * batch)
        assert list(resumed)[:batch] == stream[step]
        assert len(resumed) == full.num_samples - offset * batch


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), np.random.normal(), random.random())
    torch.save(state, tmp_path / "rng.pt")
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.rand(3), np.random.normal(), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2] and got[3] == expected[3]
