"""DDP: `bwdp train` under torch.distributed.run with two gloo processes on the CPU.

Each rank dumps its parameters and the sample indices it trained on (BWDP_TRAIN_RANK_DUMP). The ranks must have seen
disjoint data (so only gradient all-reduce can keep them equal), moved away from the initial weights, and end with
bit-identical parameters, equal to rank 0's checkpoint.
"""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from test_train_config import REPO, bwdp_env, tiny_config

from bwdp_core.train.loop import RANK_DUMP_ENV

ITERATIONS = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_ranks_keep_identical_parameters(tmp_path):
    # 6 frames -> 4 snippets: 2 per rank, batch 1 -> 2 steps per epoch, so step 3 starts a new (reshuffled) epoch
    cfg = tiny_config(tmp_path / "c.yaml", iterations=ITERATIONS, frames=6, batch=1,
                      train={"ckpt_every": 2, "device": "cpu"})
    dump = tmp_path / "ranks"
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "bwdp_core.commands.cli", "train", "--config", str(cfg), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=bwdp_env(**{RANK_DUMP_ENV: dump}), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout + proc.stderr

    ranks = [torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [ITERATIONS] * 2
    # different data on each rank (DistributedSampler shards) ...
    assert all(len(r["indices"]) == ITERATIONS for r in ranks)
    first_epoch = [set(r["indices"][:2].tolist()) for r in ranks]
    assert first_epoch[0].isdisjoint(first_epoch[1]) and first_epoch[0] | first_epoch[1] == {0, 1, 2, 3}
    # ... yet identical parameters after the all-reduced updates
    params0, params1 = ranks[0]["params"], ranks[1]["params"]
    assert params0.keys() == params1.keys() and len(params0) > 100
    for name in params0:
        assert torch.equal(params0[name], params1[name]), f"{name} differs between ranks"

    # training moved the weights away from the seeded initialisation
    from bwdp_core.checkpoint import build_models
    from bwdp_core.train.loop import seed_everything
    seed_everything(0)
    disp0, _ = build_models({"num_layers": 18})
    moved = [not torch.equal(disp0.state_dict()[k], params0[f"disp_net.{k}"])
             for k, _ in disp0.named_parameters()]
    assert sum(moved) > 0.9 * len(moved)

    # only rank 0 writes: one checkpoint, one TensorBoard file, equal to the ranks' parameters
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == ITERATIONS and len(ckpt["rng"]["per_rank"]) == 2
    for name, value in params0.items():
        net, key = name.split(".", 1)
        assert torch.equal(ckpt[net][key], value)
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
