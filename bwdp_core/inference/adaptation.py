"""What the VO pipeline exchanges with an online-adaptation worker (the interface only; the worker trains, so it lives
in bwdp_core.train.adapt).

The pipeline (:class:`bwdp_core.inference.vo_pipeline.VisualOdometry`) takes an optional ``weights_provider``. Per
processed frame it calls, never waiting on training:

    update = provider.take_update()     # before inference: new weights ready? (non-blocking) -> WeightsUpdate | None
    provider.observe(sample)            # after inference: this frame for the training buffer (non-blocking)

A :class:`WeightsUpdate` carries a ready-to-run :class:`~bwdp_core.inference.backends.InferenceRunner` (built by the
worker, off the inference thread), so a swap is one reference assignment between two frames. ``depth_ratio`` is the
new networks' depth over the old ones' on the same recent frame: the pipeline divides by it so the published depth and
odometry stay continuous across a swap (self-supervised training is free to drift in scale).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np
import torch

from bwdp_core.inference.backends import InferenceRunner


@dataclass(frozen=True)
class AdaptSample:
    """One processed frame as the pipeline saw it.

    image: [1,3,h,w] float in [0,1] at the network size (CPU or the inference device); K: 3x3 at the network size;
    tracking: the pipeline's tracking state for this frame ("ok" | "initialising" | "lost");
    T_prev_cur: the estimated camera motion from the previous frame in network units (None without one);
    median_depth: median of this frame's depth in network units.
    """

    image: torch.Tensor
    K: np.ndarray
    stamp_ns: int
    tracking: str
    T_prev_cur: Optional[np.ndarray]
    median_depth: float


@dataclass(frozen=True)
class WeightsUpdate:
    """Adapted weights, ready to run: the runner, a version number (1, 2, ...) and the depth ratio new / old."""

    runner: InferenceRunner
    version: int
    depth_ratio: float = 1.0


class WeightsProvider(Protocol):
    """Anything that watches the stream and may hand the pipeline new weights (e.g. bwdp_core.train.adapt.Adapter)."""

    def observe(self, sample: AdaptSample) -> None:
        ...

    def take_update(self) -> Optional[WeightsUpdate]:
        ...
