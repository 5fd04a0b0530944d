"""A FrameSource over an in-memory rendered sequence (``bwdp_core.synth.render.render_sequence``): tiny training
runs and tests without writing files."""
from __future__ import annotations

import numpy as np

from bwdp_core.data.sources import FrameSource
from bwdp_core.synth.render import render_sequence


class SynthSource(FrameSource):
    """Wraps any object with ``images`` uint8 [N,H,W,3], ``depths`` float32 [N,H,W], ``poses`` [N,4,4], ``K`` [3,3]."""

    def __init__(self, sequence, name: str = "synth"):
        self.name = name
        self._images = np.asarray(sequence.images)
        depths = getattr(sequence, "depths", None)
        self._depths = None if depths is None else np.asarray(depths, dtype=np.float32)
        self.intrinsics = np.asarray(sequence.K, dtype=np.float64)
        self.image_size = tuple(self._images.shape[1:3])
        poses = getattr(sequence, "poses", None)
        self.poses = None if poses is None else np.asarray(poses, dtype=np.float64)
        self.timestamps = None

    @classmethod
    def render(cls, frames: int, height: int, width: int, seed: int = 0, **kwargs) -> "SynthSource":

        return cls(render_sequence(frames, height, width, seed=seed, **kwargs), name=f"synth/seed{seed}")

    def __len__(self) -> int:
        return len(self._images)

    @property
    def has_depth(self) -> bool:
        return self._depths is not None

    def load_image(self, i: int) -> np.ndarray:
        return self._images[self.check_index(i)].copy()

    def load_depth(self, i: int) -> np.ndarray | None:
        if self._depths is None:
            return None
        d = self._depths[self.check_index(i)]
        return np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)
