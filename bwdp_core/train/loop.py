"""The training loop: wires data, networks, loss, optimizer, logging and checkpoints; each lives in its own module.

    data.py           snippets, resumable DistributedSampler, loaders
    step.py           networks, optimizer, one forward/loss/backward/update
    validation.py     the best.pt criterion
    checkpointing.py  last.pt / best.pt, RNG states, resume
    logging.py        tqdm, TensorBoard, metrics.jsonl
    distributed.py    torchrun / DDP

Step numbering: ``step`` counts optimiser updates done. A checkpoint at step s holds the state after s updates; a
resumed run continues with update s+1 on the batch the uninterrupted run would have used (the sampler's epoch and
offset are derived from s). Multi-node resume needs OUT on a filesystem every node can read.
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bwdp_core.errors import ConfigError
from bwdp_core.train import checkpointing as ckpt_io
from bwdp_core.train.config import dump_config
from bwdp_core.train.data import TrainData, build_train_data, epoch_and_offset, epoch_loader, make_loader
from bwdp_core.train.distributed import DistContext, all_gather_objects, barrier, broadcast_object, wrap_model
from bwdp_core.train.logging import NullLogger, TrainLogger
from bwdp_core.train.step import (
    SnippetModel,
    build_loss_config,
    build_networks,
    build_optimizer,
    learning_rate,
    loss_config_at,
    make_scaler,
    set_learning_rate,
    train_step,
    use_amp,
)
from bwdp_core.train.validation import validate

# set to a folder to make every rank write rank<N>.pt (its parameters + the sample indices it trained on) at the end;
# the DDP test uses it to check that ranks saw different data yet hold identical parameters.
RANK_DUMP_ENV = "BWDP_TRAIN_RANK_DUMP"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainingState:
    """What changes while training (and what last.pt stores)."""
    net: SnippetModel              # the bare networks (checkpoints, validation)
    model: torch.nn.Module         # the same, wrapped in DDP when distributed (training forward)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    step: int = 0
    best: dict | None = None


def prepare_resume(cfg: dict, resume: bool):
    """(path, checkpoint) to resume from, or None for a fresh run; refuses to overwrite a run without --resume."""
    out = Path(cfg["out"])
    if resume:
        path, saved = ckpt_io.load_resume_checkpoint(out)
        ckpt_io.check_compatible(path, saved, cfg)
        return path, saved
    last = ckpt_io.checkpoint_dir(out) / ckpt_io.LAST
    if last.exists():
        raise ConfigError(f"{out} already holds a run ({last}); pass --resume to continue it or choose another --out")
    return None


def build_state(cfg: dict, ctx: DistContext, loss_cfg, resume_from) -> TrainingState:
    """Networks (identically initialised on every rank), optimizer, scaler; restored from ``resume_from`` if given."""
    seed_everything(cfg["train"]["seed"])
    disp_net, pose_net = build_networks(cfg)
    net = SnippetModel(disp_net, pose_net, loss_cfg, cfg["train"]["channels_last"]).to(ctx.device)
    state = TrainingState(net=net, model=net, optimizer=build_optimizer(cfg, net),
                          scaler=make_scaler(use_amp(cfg, ctx.device)))
    seed_everything(cfg["train"]["seed"] + 7919 * ctx.rank)  # per-rank stream for anything random from here on
    if resume_from is not None:
        path, saved = resume_from
        ckpt_io.restore_training_state(path, saved, disp_net, pose_net, state.optimizer, state.scaler, ctx.rank,
                                       ctx.world_size)
        state.step, state.best = int(saved["step"]), saved.get("best")
    state.model = wrap_model(net, ctx)
    state.model.train()
    return state


def run_training(cfg: dict, ctx: DistContext, resume: bool = False, show_progress: bool = True) -> dict:
    """Train until ``train.iterations`` updates; returns ``{"step", "best", "last_checkpoint"}``."""
    train_cfg, out = cfg["train"], Path(cfg["out"])
    if train_cfg["threads"]:
        torch.set_num_threads(train_cfg["threads"])

    # everything that can fail on bad input (config, checkpoint, data files) fails here, before the first step
    loss_cfg = build_loss_config(cfg)
    resume_from = prepare_resume(cfg, resume)
    data = build_train_data(cfg, ctx)
    state = build_state(cfg, ctx, loss_cfg, resume_from)

    logger = _start_logging(cfg, ctx, data, state, resume_from is not None, show_progress)
    do_val = data.val_set is not None and train_cfg["val_every"] > 0  # the same on every rank
    val_loader = None
    if do_val and ctx.is_main:
        val_loader = make_loader(data.val_set, train_cfg["batch"], min(train_cfg["workers"], 2), drop_last=False,
                                 seed=train_cfg["seed"])
    amp, total_steps = use_amp(cfg, ctx.device), train_cfg["iterations"]
    seen_indices: list[int] = []
    t_start = time.perf_counter()

    epoch, offset = epoch_and_offset(state.step, data.steps_per_epoch)
    while state.step < total_steps:
        for batch in epoch_loader(data, cfg, ctx, epoch, offset):
            set_learning_rate(state.optimizer, learning_rate(cfg, state.step))
            step_loss_cfg = loss_config_at(cfg, loss_cfg, state.step)
            result = train_step(state.model, step_loss_cfg, state.optimizer, state.scaler, batch, ctx.device, amp,
                                float(train_cfg["grad_clip"]))
            state.step += 1
            step = state.step
            seen_indices.extend(int(i) for i in batch.get("index", []))
            if not result.finite:
                logger.message(f"step {step}: non-finite gradients, update skipped")
            logger.step(step, result.total, {**result.terms, "w_smooth": step_loss_cfg.w_smooth},
                        state.optimizer.param_groups[0]["lr"])
            if train_cfg["image_every"] and step % train_cfg["image_every"] == 0:
                logger.images(step, batch["tgt_img"], result.visuals)
            if do_val and (step % train_cfg["val_every"] == 0 or step == total_steps):
                if val_loader is not None:
                    _validate_and_keep_best(cfg, ctx, state, loss_cfg, val_loader, data.has_depth_gt, logger)
                barrier(ctx)  # the other ranks wait while rank 0 validates
            if step % train_cfg["ckpt_every"] == 0 or step == total_steps:
                save_last(cfg, ctx, state)
            if step >= total_steps:
                break
        epoch, offset = epoch + 1, 0

    barrier(ctx)
    logger.message(f"bwdp train: done, step {state.step}, {time.perf_counter() - t_start:.1f} s; checkpoints in "
                   f"{ckpt_io.checkpoint_dir(out)}")
    logger.close()
    _maybe_dump_rank(state.net, ctx, seen_indices, state.step)
    return {"step": state.step, "best": broadcast_object(ctx, state.best),
            "last_checkpoint": str(ckpt_io.checkpoint_dir(out) / ckpt_io.LAST)}


def _start_logging(cfg, ctx: DistContext, data: TrainData, state: TrainingState, resumed: bool, show_progress: bool):
    """Rank 0: output folder, config.yaml, stale temp files removed, logger started; other ranks: a NullLogger."""
    if not ctx.is_main:
        return NullLogger()
    out = Path(cfg["out"])
    ckpt_dir = ckpt_io.checkpoint_dir(out)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt_io.remove_stale_temp_files(ckpt_dir)
    (out / "config.yaml").write_text(dump_config(cfg))
    logger = TrainLogger(out, cfg["train"]["log_every"], show_progress, resume_step=state.step if resumed else None,
                         collapse_window=int(cfg["train"]["collapse_window"]))
    where = f"resuming at step {state.step}" if resumed else "starting"
    logger.message(f"bwdp train: {where}; {len(data.train_set)} training snippets, {data.steps_per_epoch} "
                   f"steps/epoch, {ctx.world_size} process(es) on {ctx.device.type}, "
                   f"amp={'on' if use_amp(cfg, ctx.device) else 'off'}; out={out}")
    logger.start(state.step, cfg["train"]["iterations"])
    return logger


def save_last(cfg: dict, ctx: DistContext, state: TrainingState) -> None:
    """Every rank contributes its RNG states; rank 0 writes last.pt; barriers keep ranks in step around the write."""
    rng = all_gather_objects(ctx, ckpt_io.capture_rng_state())
    barrier(ctx)
    if ctx.is_main:
        ckpt = ckpt_io.training_checkpoint(state.net.disp_net, state.net.pose_net, cfg, state.step, state.optimizer,
                                           state.scaler, rng, state.best)
        ckpt_io.write_checkpoint(ckpt_io.checkpoint_dir(cfg["out"]) / ckpt_io.LAST, ckpt)
    barrier(ctx)


def _validate_and_keep_best(cfg, ctx, state: TrainingState, loss_cfg, loader, use_gt: bool, logger) -> None:
    """Rank 0 only: validate; when the metric improved, update ``state.best`` and write best.pt."""
    net = state.net
    metrics = validate(net.disp_net, net.pose_net, loss_cfg, loader, ctx.device, use_gt, cfg["train"]["val_batches"])
    if not metrics:
        return
    best = state.best
    improved = best is None or best.get("metric") != metrics["metric"] or metrics["value"] < best["value"]
    logger.validation(state.step, {k: v for k, v in metrics.items() if k not in ("metric", "value")}, improved)
    if improved:
        state.best = {"metric": metrics["metric"], "value": float(metrics["value"]), "step": int(state.step)}
        ckpt_io.write_checkpoint(ckpt_io.checkpoint_dir(cfg["out"]) / ckpt_io.BEST,
                                 ckpt_io.weights_checkpoint(net.disp_net, net.pose_net, cfg, state.step, state.best))


def _maybe_dump_rank(net, ctx: DistContext, seen_indices: list[int], step: int) -> None:
    folder = os.environ.get(RANK_DUMP_ENV)
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    params = {name: p.detach().cpu().clone() for name, p in net.named_parameters()}
    torch.save({"rank": ctx.rank, "world_size": ctx.world_size, "step": step, "params": params,
                "indices": torch.tensor(seen_indices, dtype=torch.int64)}, Path(folder) / f"rank{ctx.rank}.pt")
