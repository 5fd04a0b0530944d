"""`bwdp train` end to end on a tiny rendered street: the loss falls, TensorBoard gets every term and the images,
checkpoints (last.pt, best.pt) load with weights_only=True and hold what a resume needs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train_config import run_bwdp, tiny_config

ITERATIONS = 24


@pytest.mark.slow
def test_train_end_to_end_loss_falls_and_logs(tmp_path):
    # 3 snippets and batch 3: every step sees the same frames, so the loss curve is the optimisation, not batch noise
    cfg = tiny_config(tmp_path / "c.yaml", iterations=ITERATIONS, frames=5, batch=3,
                      data={"val_source": {"type": "synth", "frames": 4, "height": 32, "width": 96, "seed": 5}},
                      train={"val_every": 12, "image_every": 12, "ckpt_every": 12})
    out = tmp_path / "run"
    proc = run_bwdp("train", "--config", cfg, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"trained to step {ITERATIONS}" in proc.stdout

    # -- the loss falls (same data every step; means over 4 steps at each end)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, ITERATIONS + 1))
    total = np.array([t["total"] for t in losses])
    photo = np.array([t["photometric"] for t in losses])
    first, last = total[:4].mean(), total[-4:].mean()
    assert last < 0.85 * first, total.round(4)
    assert photo[-4:].mean() < 0.9 * photo[:4].mean(), photo.round(4)
    # ... and not by the trivial route of masking every pixel away
    assert min(t["valid_fraction"] for t in losses[-4:]) > 0.5
    # the collapse / mask-guard statistics of issue 13 are logged every step
    for key in ("depth_std_over_mean", "occluded_fraction_pre_guard", "occlusion_guard_rate",
                "pose_pair_disagreement_deg"):
        assert all(key in t and np.isfinite(t[key]) for t in losses), key
    assert all(0.0 <= t["occlusion_guard_rate"] <= 1.0 for t in losses)

    # -- validation with GT depth -> AbsRel decides best.pt
    vals = [r for r in rows if "val" in r]
    assert [r["step"] for r in vals] == [12, 24]
    assert all(0 < r["val"]["abs_rel"] < 10 for r in vals)

    # -- checkpoints: weights_only loadable, complete
    last_ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert last_ckpt["format"] == "bwdp-checkpoint-v1" and last_ckpt["step"] == ITERATIONS
    assert last_ckpt["model"] == {"num_layers": 18, "height": 32, "width": 96}
    assert {"optimizer", "rng", "config"} <= set(last_ckpt)
    rng = last_ckpt["rng"]["per_rank"][0]
    assert {"torch", "numpy", "python"} <= set(rng) and rng["numpy"]["keys"].numel() == 624
    assert last_ckpt["config"]["train"]["iterations"] == ITERATIONS
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"]["metric"] == "abs_rel" and best["best"]["step"] in (12, 24)
    assert best["best"]["value"] == min(r["val"]["abs_rel"] for r in vals)
    assert "optimizer" not in best  # weights only: a deployable file a third of last.pt's size
    from bwdp_core.checkpoint import load_models
    disp_net, pose_net, meta = load_models(out / "checkpoints" / "best.pt")
    assert meta["height"] == 32 and not disp_net.training
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # no temp files

    # -- TensorBoard: a scalar per loss term, validation scalars, the three images
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for term in ("total", "photometric", "smoothness", "depth_consistency", "feature"):
        assert f"loss/{term}" in scalars, scalars
    assert {"val/abs_rel", "train/lr"} <= scalars
    assert len(acc.Scalars("loss/photometric")) == ITERATIONS
    assert {"images/input", "images/depth", "images/occlusion"} <= set(acc.Tags()["images"])
    assert (out / "config.yaml").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (mixed precision runs on CUDA only)")
def test_train_mixed_precision_on_cuda(tmp_path):
    cfg = tiny_config(tmp_path / "c.yaml", iterations=4, frames=6, batch=2,
                      train={"device": "cuda", "amp": True, "ckpt_every": 2})
    proc = run_bwdp("train", "--config", cfg, "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "amp=on" in proc.stdout + proc.stderr
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 4 and "scaler" in ckpt and ckpt["scaler"]["scale"] > 0
    assert all(torch.isfinite(v).all() for v in ckpt["disp_net"].values() if v.is_floating_point())
    resumed = run_bwdp("train", "--config", cfg, "--out", tmp_path / "run", "--resume",
                       "--set", "train.iterations=6")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["step"] == 6
