"""Training data: snippet datasets from the config, a resumable DistributedSampler and the DataLoaders.

The data order is a pure function of (seed, epoch, rank, world size): a resumed run derives the epoch and the number
of batches already consumed from the step, skips exactly those samples, and sees the same batches it would have seen.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from bwdp_core.data.build import build_sources
from bwdp_core.data.snippets import SnippetDataset
from bwdp_core.errors import DataError
from bwdp_core.train.distributed import DistContext


class ResumableSampler(DistributedSampler):
    """DistributedSampler (per-epoch shuffle, one shard per rank) that can start an epoch after ``skip`` samples."""

    def __init__(self, dataset: Dataset, ctx: DistContext, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle, seed=seed,
                         drop_last=True)
        self.skip = 0

    def start_epoch(self, epoch: int, skip: int = 0) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.skip, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


@dataclass
class TrainData:
    train_set: Dataset
    val_set: Dataset | None
    sampler: ResumableSampler
    steps_per_epoch: int
    has_depth_gt: bool


def load_sources(source_cfg, data_cfg: dict) -> list:
    """FrameSources of a data config; build_sources validates every file before training starts (DataError naming it),
    including that each sequence holds one snippet of ``data.snippet_length`` frames at ``data.stride``."""

    snippet = {"snippet_length": data_cfg["snippet_length"], "stride": data_cfg["stride"]}
    if isinstance(source_cfg, list):
        source_cfg = {"sources": source_cfg, **snippet}
    else:
        source_cfg = {**source_cfg, **snippet}
    sources = build_sources(source_cfg)
    if not sources:
        raise DataError(f"data source {source_cfg.get('path') or source_cfg} holds no sequences")
    return sources


def snippet_dataset(sources: list, data_cfg: dict, augment: bool, seed: int) -> Dataset:
    """SnippetDataset over ``sources`` with the size, snippet shape and frame cache (``data.frame_cache_mb``, per
    process: each DataLoader worker holds its own) of ``data_cfg``."""
    return SnippetDataset(sources, data_cfg["height"], data_cfg["width"], snippet_length=data_cfg["snippet_length"],
                          stride=data_cfg["stride"], augment=augment, seed=seed,
                          cache_bytes=int(data_cfg["frame_cache_mb"]) * 2**20)


def _has_depth_gt(dataset) -> bool:
    """Whether the samples carry ground-truth depth (SnippetDataset.has_depth, through a Subset)."""
    return bool(getattr(getattr(dataset, "dataset", dataset), "has_depth", False))


def _set_dataset_epoch(dataset, epoch: int) -> None:
    """Augmentations are drawn from (seed, epoch, index): tell the dataset (inside a Subset) which epoch this is."""
    inner = getattr(dataset, "dataset", dataset)
    if hasattr(inner, "set_epoch"):
        inner.set_epoch(epoch)


def build_train_data(cfg: dict, ctx: DistContext) -> TrainData:
    """Datasets (train + validation) and the training sampler; every data error surfaces here, before step 1."""
    data_cfg, seed, batch = cfg["data"], cfg["train"]["seed"], cfg["train"]["batch"]
    sources = load_sources(data_cfg["source"], data_cfg)
    full = snippet_dataset(sources, data_cfg, data_cfg["augment"], seed)
    val_set = None
    if data_cfg["val_source"]:
        val_set = snippet_dataset(load_sources(data_cfg["val_source"], data_cfg), data_cfg, False, seed)
        train_set = full
        has_gt = _has_depth_gt(val_set)
    elif data_cfg["val_fraction"] > 0:
        # hold out the LAST snippets (contiguous, so validation frames neighbour training frames at one boundary
        # only); validation never augments.
        n_val = max(1, math.ceil(len(full) * data_cfg["val_fraction"]))
        if len(full) - n_val < 1:
            raise DataError(f"data.source has only {len(full)} snippets: nothing left for training after holding out "
                            f"{n_val} for validation (lower data.val_fraction)")
        train_set = Subset(full, range(len(full) - n_val))
        val_full = snippet_dataset(sources, data_cfg, False, seed) if data_cfg["augment"] else full
        val_set = Subset(val_full, range(len(full) - n_val, len(full)))
        has_gt = _has_depth_gt(full)
    else:
        train_set, has_gt = full, False
    need = batch * ctx.world_size
    if len(train_set) < need:
        raise DataError(f"data.source gives {len(train_set)} training snippets, fewer than one global batch "
                        f"({batch} x {ctx.world_size} processes); use more frames or a smaller train.batch")
    sampler = ResumableSampler(train_set, ctx, seed=seed, shuffle=True)
    steps_per_epoch = sampler.num_samples // batch
    return TrainData(train_set, val_set, sampler, steps_per_epoch, has_gt)


def epoch_and_offset(step: int, steps_per_epoch: int) -> tuple[int, int]:
    """Where step ``step`` (number of optimiser steps done) falls: (epoch, batches of that epoch already consumed)."""
    return divmod(step, steps_per_epoch)


def _seed_worker(worker_id: int) -> None:


    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch: int, workers: int, sampler=None, seed: int = 0, shuffle: bool = False,
                drop_last: bool = True, pin_memory: bool = False) -> DataLoader:
    """A DataLoader whose worker seeds come from ``seed`` (so an epoch's augmentations do not depend on history)."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, shuffle=shuffle if sampler is None else False,
                      num_workers=workers, drop_last=drop_last, pin_memory=pin_memory, worker_init_fn=_seed_worker,
                      generator=generator, persistent_workers=False)


def epoch_loader(data: TrainData, cfg: dict, ctx: DistContext, epoch: int, skip_batches: int) -> DataLoader:
    """The loader of one training epoch, starting after ``skip_batches`` batches (resume)."""
    batch = cfg["train"]["batch"]
    data.sampler.start_epoch(epoch, skip_batches * batch)
    _set_dataset_epoch(data.train_set, epoch)
    worker_seed = cfg["train"]["seed"] * 1_000_003 + epoch * 1009 + ctx.rank * 7919
    return make_loader(data.train_set, batch, cfg["train"]["workers"], sampler=data.sampler, seed=worker_seed,
                       pin_memory=ctx.device.type == "cuda")

