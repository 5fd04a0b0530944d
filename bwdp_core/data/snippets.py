"""`SnippetDataset`: training/validation samples of L consecutive frames (target in the middle) from any FrameSources.

Item (one format whatever the source)::

    {"tgt_img": float32 [3, H, W] in [0, 1] RGB,
     "ref_imgs": float32 [L-1, 3, H, W] (frames t - k*stride ... t - stride, t + stride ... t + k*stride, k = (L-1)/2),
     "intrinsics": float32 [3, 3] at (H, W) after resizing and augmentation,
     "depth_gt": float32 [1, H, W] metres, 0 = invalid - present when ANY source has depth (all zero for frames of a
                 source without depth, so batches always collate),
     "index": int (dataset index), "source_index": int, "frame_index": int (target frame in its source)}

Frames are resized to (H, W) with K rescaled exactly (see augment.py). Resized frames are kept in a per-process LRU
cache of ``cache_bytes`` (0 = none): every frame is read by up to L snippets, and decoding it (PNG, or a seek in a
video) costs more than the training step's share of it at small sizes. With ``augment=True`` each snippet gets one
random scale-crop + flip applied identically to every frame and to the depth. Randomness comes from a generator
seeded by (seed, epoch, index), so results do not depend on DataLoader workers or their order; call ``set_epoch`` to
get fresh augmentations each epoch.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch

from bwdp_core.data.augment import apply_augment, draw_augment_params, resize_depth, resize_image, resize_intrinsics
from bwdp_core.data.sources import FrameSource
from bwdp_core.errors import ConfigError, DataError


def snippet_offsets(snippet_length: int, stride: int) -> list[int]:
    """Frame offsets of the reference frames relative to the target: e.g. L=3, stride=1 -> [-1, 1]."""
    half = (snippet_length - 1) // 2
    return [k * stride for k in range(-half, 0)] + [k * stride for k in range(1, half + 1)]


def check_snippet_fits(source: FrameSource, snippet_length: int, stride: int) -> int:
    """Number of snippets the source yields; DataError naming it when it is too short for one."""
    needed = (snippet_length - 1) * stride + 1
    if len(source) < needed:
        raise DataError(f"sequence {source.name} has {len(source)} frames, fewer than one snippet needs "
                        f"({snippet_length} frames at stride {stride} = {needed})")
    return len(source) - (needed - 1)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1] (a read-only buffer, e.g. a decoded message, is copied)."""
    image = np.ascontiguousarray(image)
    if not image.flags.writeable:
        image = image.copy()
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)


class SnippetDataset(torch.utils.data.Dataset):
    def __init__(self, sources: Sequence[FrameSource], height: int, width: int, snippet_length: int = 3,
                 stride: int = 1, augment: bool = False, seed: int = 0, max_scale: float = 1.15,
                 cache_bytes: int = 0):
        if snippet_length < 3 or snippet_length % 2 == 0:
            raise ConfigError(f"snippet_length must be odd and >= 3 (target in the middle), got {snippet_length}")
        if stride < 1:
            raise ConfigError(f"snippet stride must be >= 1, got {stride}")
        if height < 8 or width < 8:
            raise ConfigError(f"training size {height}x{width} is too small")
        if not sources:
            raise DataError("no data sources given")
        if cache_bytes < 0:
            raise ConfigError(f"frame cache size must be >= 0 bytes, got {cache_bytes}")
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._cached_bytes = 0
        self.sources = list(sources)
        self.height, self.width = int(height), int(width)
        self.snippet_length, self.stride = int(snippet_length), int(stride)
        self.augment, self.seed, self.max_scale = bool(augment), int(seed), float(max_scale)
        self.epoch = 0
        self.offsets = snippet_offsets(self.snippet_length, self.stride)
        half_span = (self.snippet_length - 1) // 2 * self.stride
        entries = []
        for s, source in enumerate(self.sources):
            count = check_snippet_fits(source, self.snippet_length, self.stride)
            entries.append(np.stack([np.full(count, s), np.arange(half_span, half_span + count)], axis=1))
        self._entries = np.concatenate(entries).astype(np.int64)
        self.has_depth = any(src.has_depth for src in self.sources)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (same seed + epoch + index -> same sample)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._entries)

    def locate(self, index: int) -> tuple[int, int]:
        """(source index, target frame index) of a dataset index."""
        s, t = self._entries[index]
        return int(s), int(t)

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        s, t = self.locate(index)
        source = self.sources[s]
        size = (self.height, self.width)
        frame_ids = [t] + [t + o for o in self.offsets]
        images = [self._resized_frame(s, f) for f in frame_ids]
        K = resize_intrinsics(source.intrinsics, source.image_size, size)
        depth = None
        if self.has_depth:
            raw = source.load_depth(t) if source.has_depth else None
            depth = resize_depth(raw, size) if raw is not None else np.zeros(size, np.float32)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            params = draw_augment_params(rng, size, self.max_scale)
            images, K, depth = apply_augment(images, K, depth, params)
        item = {
            "tgt_img": image_to_tensor(images[0]),
            "ref_imgs": torch.stack([image_to_tensor(im) for im in images[1:]]),
            "intrinsics": torch.from_numpy(K.astype(np.float32)),
            "index": int(index),
            "source_index": s,
            "frame_index": t,
        }
        if depth is not None:
            item["depth_gt"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        return item

    def _resized_frame(self, s: int, f: int) -> np.ndarray:
        """Frame ``f`` of source ``s`` resized to (H, W), uint8 [H, W, 3], through the LRU frame cache. The caller
        gets its own copy (augmentation works in place)."""
        key = (s, f)
        frame = self._cache.get(key)
        if frame is not None:
            self._cache.move_to_end(key)
            return frame.copy()
        frame = resize_image(self.sources[s].load_image(f), (self.height, self.width))
        if frame.nbytes <= self.cache_bytes:
            self._cache[key] = frame
            self._cached_bytes += frame.nbytes
            while self._cached_bytes > self.cache_bytes:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= old.nbytes
            frame = frame.copy()
        return frame
