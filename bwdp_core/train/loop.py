"""The training loop: wires data, networks, loss, optimizer, logging and checkpoints; each lives in its own module.

    data.py           snippets, resumable DistributedSampler, loaders
    step.py           networks, optimizer, one forward/loss/backward/update
    validation.py     the best.pt criterion
    checkpointing.py  last.pt / best.pt, RNG states, resume
    logging.py        tqdm, TensorBoard, metrics.jsonl
    distributed.py    torchrun / DDP

Step numbering: ``step`` counts optimiser updates done. A checkpoint at step s holds the state after s updates; a
resumed run continues with update s+1 on the batch the uninterrupted run would have used.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from bwdp_core.train import checkpointing as ckpt_io
from bwdp_core.train.config import dump_config
from bwdp_core.train.data import build_train_data, epoch_and_offset, epoch_loader, make_loader
from bwdp_core.train.distributed import (DistContext, all_gather_objects, barrier, broadcast_object, wrap_model)
from bwdp_core.train.logging import NullLogger, TrainLogger
from bwdp_core.train.step import (SnippetModel, build_loss_config, build_networks, build_optimizer, make_scaler,
                                  train_step, use_amp)
from bwdp_core.train.validation import validate

# set to a folder to make every rank write rank<N>.pt (its parameters + the sample indices it trained on) at the end;
# the DDP test uses it to check that ranks saw different data yet hold identical parameters.
RANK_DUMP_ENV = "BWDP_TRAIN_RANK_DUMP"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_training(cfg: dict, ctx: DistContext, resume: bool = False, show_progress: bool = True) -> dict:
    """Train until ``train.iterations`` updates; returns ``{"step", "best", "last_checkpoint"}`` (rank 0's view)."""
    train_cfg = cfg["train"]
    out = Path(cfg["out"])
    ckpt_dir = ckpt_io.checkpoint_dir(out)
    if train_cfg["threads"]:
        torch.set_num_threads(train_cfg["threads"])

    # -- everything that can fail on bad input happens before the first step
    loss_cfg = build_loss_config(cfg)
    resume_from = None
    if resume:
        resume_from = ckpt_io.load_resume_checkpoint(out)
        ckpt_io.check_compatible(*resume_from, cfg)
    elif (ckpt_dir / ckpt_io.LAST).exists():
        from bwdp_core.errors import ConfigError
        raise ConfigError(f"{out} already holds a run ({ckpt_dir / ckpt_io.LAST}); pass --resume to continue it "
                          "or choose another --out")
    seed_everything(train_cfg["seed"])  # same network initialisation on every rank
    disp_net, pose_net = build_networks(cfg)
    data = build_train_data(cfg, ctx)

    device = ctx.device
    net = SnippetModel(disp_net, pose_net, loss_cfg).to(device)
    optimizer = build_optimizer(cfg, net)
    amp = use_amp(cfg, device)
    scaler = make_scaler(amp)
    seed_everything(train_cfg["seed"] + 7919 * ctx.rank)  # per-rank stream for anything random after this point
    step, best = 0, None
    if resume_from is not None:
        path, saved = resume_from
        ckpt_io.restore_training_state(path, saved, disp_net, pose_net, optimizer, scaler, ctx.rank, ctx.world_size)
        step, best = int(saved["step"]), saved.get("best")
    model = wrap_model(net, ctx)
    model.train()

    logger = TrainLogger(out, train_cfg["log_every"], show_progress) if ctx.is_main else NullLogger()
    if ctx.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        ckpt_io.remove_stale_temp_files(ckpt_dir)
        (out / "config.yaml").write_text(dump_config(cfg))
        where = f"resuming at step {step}" if resume_from else "starting"
        logger.message(f"bwdp train: {where}; {len(data.train_set)} training snippets, {data.steps_per_epoch} "
                       f"steps/epoch, {ctx.world_size} process(es) on {device.type}, amp={'on' if amp else 'off'}; "
                       f"out={out}")
    do_val = data.val_set is not None and train_cfg["val_every"] > 0  # the same on every rank
    val_loader = None
    if do_val and ctx.is_main:
        val_loader = make_loader(data.val_set, train_cfg["batch"], min(train_cfg["workers"], 2), drop_last=False,
                                 seed=train_cfg["seed"])

    seen_indices: list[int] = []
    total_steps = train_cfg["iterations"]
    logger.start(step, total_steps)
    t_start = time.perf_counter()
    epoch, offset = epoch_and_offset(step, data.steps_per_epoch)
    while step < total_steps:
        for batch in epoch_loader(data, cfg, ctx, epoch, offset):
            result = train_step(model, loss_cfg, optimizer, scaler, batch, device, amp, float(train_cfg["grad_clip"]))
            step += 1
            if "index" in batch:
                seen_indices.extend(int(i) for i in batch["index"])
            if not result.finite:
                logger.message(f"step {step}: non-finite gradients, update skipped")
            logger.step(step, result.total, result.terms, optimizer.param_groups[0]["lr"])
            if train_cfg["image_every"] and step % train_cfg["image_every"] == 0:
                logger.images(step, batch["tgt_img"], result.visuals)
            if do_val and (step % train_cfg["val_every"] == 0 or step == total_steps):
                if val_loader is not None:
                    best = _validate_and_keep_best(cfg, ctx, net, loss_cfg, val_loader, data.has_depth_gt, step,
                                                   optimizer, scaler, best, logger)
                barrier(ctx)  # the other ranks wait while rank 0 validates
            if step % train_cfg["ckpt_every"] == 0 or step == total_steps:
                _save_last(cfg, ctx, net, optimizer, scaler, step, best, logger)
            if step >= total_steps:
                break
        epoch, offset = epoch + 1, 0

    barrier(ctx)
    elapsed = time.perf_counter() - t_start
    logger.message(f"bwdp train: done, step {step}, {elapsed:.1f} s; checkpoints in {ckpt_dir}")
    logger.close()
    _maybe_dump_rank(net, ctx, seen_indices, step)
    best = broadcast_object(ctx, best)
    return {"step": step, "best": best, "last_checkpoint": str(ckpt_dir / ckpt_io.LAST)}


def _save_last(cfg, ctx, net, optimizer, scaler, step, best, logger) -> None:
    """Every rank contributes its RNG states; rank 0 writes last.pt; barriers keep ranks in step around the write."""
    rng = all_gather_objects(ctx, ckpt_io.capture_rng_state())
    barrier(ctx)
    if ctx.is_main:
        ckpt = ckpt_io.training_checkpoint(net.disp_net, net.pose_net, cfg, step, optimizer, scaler, rng, best)
        ckpt_io.write_checkpoint(ckpt_io.checkpoint_dir(cfg["out"]) / ckpt_io.LAST, ckpt)
    barrier(ctx)


def _validate_and_keep_best(cfg, ctx, net, loss_cfg, loader, use_gt, step, optimizer, scaler, best, logger):
    """Rank 0 only: validate, write best.pt when the metric improved; returns the (possibly new) best record."""
    metrics = validate(net.disp_net, net.pose_net, loss_cfg, loader, ctx.device, use_gt, cfg["train"]["val_batches"])
    if not metrics:
        return best
    improved = best is None or best.get("metric") != metrics["metric"] or metrics["value"] < best["value"]
    logger.validation(step, {k: v for k, v in metrics.items() if k not in ("metric", "value")}, improved)
    if improved:
        best = {"metric": metrics["metric"], "value": float(metrics["value"]), "step": int(step)}
        ckpt_io.write_checkpoint(ckpt_io.checkpoint_dir(cfg["out"]) / ckpt_io.BEST,
                                 ckpt_io.weights_checkpoint(net.disp_net, net.pose_net, cfg, step, best))
    return best


def _maybe_dump_rank(net, ctx: DistContext, seen_indices: list[int], step: int) -> None:
    folder = os.environ.get(RANK_DUMP_ENV)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    params = {name: p.detach().cpu().clone() for name, p in net.named_parameters()}
    torch.save({"rank": ctx.rank, "world_size": ctx.world_size, "step": step, "params": params,
                "indices": torch.tensor(seen_indices, dtype=torch.int64)}, Path(folder) / f"rank{ctx.rank}.pt")
