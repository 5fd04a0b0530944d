"""Online self-supervised adaptation: the VO pipeline keeps learning from the stream it is watching.

The paper's loss (eq. 7) needs no ground truth, so the networks can be fine-tuned on the robot. :class:`Adapter` is the
:class:`bwdp_core.inference.adaptation.WeightsProvider` the node and `bwdp replay --adapt` hand to
:class:`~bwdp_core.inference.vo_pipeline.VisualOdometry`:

    observe(sample)        (inference thread, cheap) a processed frame enters a bounded buffer of recent frames, at
                           the network size with its K, but only when the image moved enough since the last kept one
                           (``min_parallax_px``); tracking lost starts a new segment (snippets never span it).
    step()                 (worker) one optimiser step of the training loss on ``batch`` 3-frame snippets drawn from
                           the buffer -- bwdp_core.train.step.train_step, the same step `bwdp train` takes.
    every steps_per_swap   the worker builds a new InferenceRunner from the weights (same backend as inference) and
                           posts it; the pipeline takes it between two frames (take_update): inference never waits.

Safety: training pauses while the camera is static, while tracking is lost, and after a divergence. A step whose loss
or gradient is not finite, whose loss exceeds ``divergence_factor`` x the running mean, or after which any weight is
not finite, rolls the networks back to the last good (last swapped) weights with a fresh optimiser; so do weights
about to be swapped in whose depth on the newest frame is near-constant (std/mean < NEAR_CONSTANT_DEPTH) where the
running weights' is not: the loss can fall while the depth collapses (bench/adapt.py, lr 5e-4: std/mean 0.52 -> 0.01).
Batch-norm statistics stay frozen (a few correlated frames would corrupt them). Weights that reach the pipeline are
always finite, and the pipeline keeps depth and odometry continuous at a swap (``WeightsUpdate.depth_ratio``).

Two drivers, one code path: ``start()`` runs step() in a background thread with its own torch thread budget, a lower
OS priority and a duty cycle (``share``: the fraction of wall time it may compute) -- the node; ``train(n)`` runs n
steps inline after a frame, so a replay is deterministic -- `bwdp replay --adapt --adapt-steps-per-frame N`.

``save(path)`` writes the current good weights as a normal bwdp checkpoint (atomic write), loadable by every command.
"""
from __future__ import annotations

import copy
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from bwdp_core.checkpoint import build_models, load_checkpoint, make_checkpoint, save_checkpoint
from bwdp_core.errors import ConfigError
from bwdp_core.geometry import NEAR_CONSTANT_DEPTH, depth_std_over_mean
from bwdp_core.inference import settings
from bwdp_core.inference.adaptation import AdaptSample, WeightsUpdate
from bwdp_core.inference.backends import InferenceRunner, optimize_for_inference
from bwdp_core.losses.config import loss_config
from bwdp_core.losses.total import total_loss
from bwdp_core.train.step import (
    SnippetModel,
    as_prediction,
    batch_to_device,
    build_loss_config,
    make_scaler,
    train_step,
)

# AdaptConfig field <- the shared settings table's name (bwdp_core.inference.settings: the node's parameters)
FROM_SETTINGS = {"buffer_size": "adapt_buffer_size", "steps_per_swap": "adapt_steps_per_swap", "lr": "adapt_lr",
                 "share": "adapt_share", "threads": "adapt_threads",
                 "min_parallax_px": "adapt_min_parallax"}


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of the adaptation worker (the node's ``adapt_*`` parameters and `bwdp replay --adapt-*`).

    buffer_size: frames kept (oldest dropped); steps_per_swap: optimiser steps between two weight hand-overs;
    lr: Adam learning rate; batch: snippets per step; share: fraction of wall time the worker may compute (1 = no
    pause between steps); threads: torch threads of the worker; nice: OS priority added to the worker thread (Linux);
    min_parallax_px: image motion (pixels at the network size, from the estimated translation and the median depth)
    since the last kept frame before a frame is kept; static_threshold: mean absolute image difference (0..1) below
    which the camera counts as static; divergence_factor: a loss above this x the running mean rolls back.
    """

    buffer_size: int = settings.default("adapt_buffer_size")
    steps_per_swap: int = settings.default("adapt_steps_per_swap")
    lr: float = settings.default("adapt_lr")
    batch: int = 2
    share: float = settings.default("adapt_share")
    threads: int = settings.default("adapt_threads")
    nice: int = 10
    min_parallax_px: float = settings.default("adapt_min_parallax")
    static_threshold: float = 0.004
    divergence_factor: float = 3.0
    warmup_steps: int = 5
    seed: int = 0

    @classmethod
    def from_settings(cls, values, **more) -> "AdaptConfig":
        """From the settings table's ``adapt_*`` values (missing ones: defaults); ``more``: the other fields."""
        reasons = settings.check_values({name: values[name] for name in FROM_SETTINGS.values() if name in values})
        if reasons:
            raise ConfigError("; ".join(reasons))
        picked = {field: values[name] for field, name in FROM_SETTINGS.items() if name in values}
        return cls(**picked, **more).validate()

    def validate(self) -> "AdaptConfig":
        for name in ("buffer_size", "steps_per_swap", "batch", "threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"adapt {name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.buffer_size < 3:
            raise ConfigError(f"adapt buffer_size must be >= 3 (one 3-frame snippet), got {self.buffer_size}")
        if not (np.isfinite(self.lr) and 0 < self.lr < 1):
            raise ConfigError(f"adapt lr must be in (0, 1), got {self.lr}")
        if not (np.isfinite(self.share) and 0 < self.share <= 1):
            raise ConfigError(f"adapt share must be in (0, 1], got {self.share}")
        if not (np.isfinite(self.divergence_factor) and self.divergence_factor > 1):
            raise ConfigError(f"adapt divergence_factor must be > 1, got {self.divergence_factor}")
        for name in ("min_parallax_px", "static_threshold"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"adapt {name} must be >= 0, got {getattr(self, name)}")
        return self


@dataclass(frozen=True)
class _BufferedFrame:
    image: torch.Tensor   # [3,h,w] CPU float
    K: np.ndarray         # 3x3 at the network size
    segment: int


class FrameBuffer:
    """The bounded buffer of recent frames with enough parallax; 3-frame snippets inside one segment.

    Thread-safe: ``observe`` (inference thread) and ``sample`` (worker) may run concurrently.
    """

    def __init__(self, size: int, min_parallax_px: float, static_threshold: float):
        self.frames: deque[_BufferedFrame] = deque(maxlen=size)
        self.min_parallax_px = float(min_parallax_px)
        self.static_threshold = float(static_threshold)
        self._lock = threading.Lock()
        self._segment = 0
        self._parallax = 0.0
        self._previous: Optional[torch.Tensor] = None
        self.static = False
        self.lost = False
        self.kept = 0
        self.seen = 0

    def observe(self, sample: AdaptSample) -> bool:
        """Keep ``sample`` when it moved enough since the last kept frame; returns whether it was kept."""
        image = sample.image.detach()[0].to("cpu", torch.float32)
        self.seen += 1
        self.static = (self._previous is not None
                       and float((image - self._previous).abs().mean()) < self.static_threshold)
        self._previous = image
        self.lost = sample.tracking == "lost"
        with self._lock:
            if sample.T_prev_cur is None or self.lost or not np.isfinite(sample.median_depth):
                self._segment += 1   # no motion estimate: what follows is not one continuous snippet with the past
                self._parallax = 0.0
                if self.lost:
                    return False
                self._append(image, sample.K)
                return True
            fx = float(sample.K[0, 0])
            self._parallax += fx * float(np.linalg.norm(sample.T_prev_cur[:3, 3])) / max(sample.median_depth, 1e-6)
            if self.static or self._parallax < self.min_parallax_px:
                return False
            self._parallax = 0.0
            self._append(image, sample.K)
            return True

    def _append(self, image: torch.Tensor, K: np.ndarray) -> None:
        self.frames.append(_BufferedFrame(image, np.asarray(K, dtype=np.float32), self._segment))
        self.kept += 1

    def snippet_centres(self) -> list[int]:
        with self._lock:
            seg = [f.segment for f in self.frames]
        return [i for i in range(1, len(seg) - 1) if seg[i - 1] == seg[i] == seg[i + 1]]

    def sample(self, batch: int, rng: np.random.Generator) -> Optional[dict]:
        """``batch`` random snippets as a training batch (tgt_img [B,3,h,w], ref_imgs [B,2,3,h,w], intrinsics
        [B,3,3]), or None while the buffer holds no snippet."""
        with self._lock:
            frames = list(self.frames)
        centres = [i for i in range(1, len(frames) - 1)
                   if frames[i - 1].segment == frames[i].segment == frames[i + 1].segment]
        if not centres:
            return None
        picks = rng.choice(centres, size=batch, replace=len(centres) < batch)
        return {
            "tgt_img": torch.stack([frames[i].image for i in picks]),
            "ref_imgs": torch.stack([torch.stack([frames[i - 1].image, frames[i + 1].image]) for i in picks]),
            "intrinsics": torch.from_numpy(np.stack([frames[i].K for i in picks])),
        }

    def newest_image(self) -> Optional[torch.Tensor]:
        with self._lock:
            return self.frames[-1].image[None] if self.frames else None


def freeze_batchnorm(module: torch.nn.Module) -> None:
    """Batch-norm layers in eval mode with frozen affine parameters' statistics (running mean / var not updated)."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def all_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


@dataclass
class AdaptStatus:
    steps: int = 0
    swaps: int = 0
    rollbacks: int = 0
    last_rollback: str = ""
    buffer: int = 0
    paused: str = ""
    last_loss: float = float("nan")
    mean_loss: float = float("nan")
    busy_s: float = 0.0


class Adapter:
    """Online adaptation of one checkpoint's networks (see the module docstring).

    adapter = Adapter(checkpoint, estimator, AdaptConfig())    # estimator: the pipeline's DepthPoseEstimator
    vo = VisualOdometry(estimator, vo_config, weights_provider=adapter)
    adapter.start()            # background worker (or adapter.train(n) after each frame: deterministic)
    ...
    adapter.save("adapted.pt"); adapter.stop()
    """

    def __init__(self, checkpoint: str | os.PathLike, estimator, cfg: AdaptConfig | None = None):
        self.cfg = (cfg or AdaptConfig()).validate()
        ckpt = load_checkpoint(checkpoint)
        self._source = {"checkpoint": str(checkpoint), "step": int(ckpt.get("step", 0))}
        self._train_config = dict(ckpt.get("config") or {})
        self._model_meta = dict(ckpt["model"])  # decoder norm and PoseNet factors: a saved model rebuilds the same nets
        self.height, self.width = estimator.height, estimator.width
        self.device = estimator.device
        self.backend = estimator.backend
        # the threads the inference runners get: asked here, in the caller's thread (the worker's own budget differs)
        self.inference_threads = int(getattr(estimator, "num_threads", 0)) or torch.get_num_threads()
        disp_net, pose_net = build_models(ckpt["model"])
        disp_net.load_state_dict(ckpt["disp_net"])
        pose_net.load_state_dict(ckpt["pose_net"])
        self.loss_cfg = (build_loss_config(self._train_config) if "loss" in self._train_config
                         else loss_config("full"))
        self.model = SnippetModel(disp_net, pose_net, self.loss_cfg).to(self.device)
        self.model.train()
        freeze_batchnorm(self.model)
        self._optimizer = self._new_optimizer()
        self._scaler = make_scaler(False)
        self._good = self._snapshot()
        self.buffer = FrameBuffer(self.cfg.buffer_size, self.cfg.min_parallax_px, self.cfg.static_threshold)
        self._rng = np.random.default_rng(self.cfg.seed)
        torch.manual_seed(self.cfg.seed)
        self._current_runner: InferenceRunner = estimator.runner
        self._update: Optional[WeightsUpdate] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._losses: deque[float] = deque(maxlen=50)
        self._since_swap = 0
        self._resume_at_kept = 0
        self.status = AdaptStatus()

    # ------------------------------------------------------------------------------------------------ the pipeline
    def observe(self, sample: AdaptSample) -> None:
        """(inference thread) a processed frame; cheap, never waits for training."""
        if self.buffer.observe(sample):
            self._wake.set()

    def take_update(self) -> Optional[WeightsUpdate]:
        """(inference thread) the newest posted weights, once; None when nothing new."""
        with self._lock:
            update, self._update = self._update, None
        return update

    # ------------------------------------------------------------------------------------------------ training
    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)

    def _snapshot(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def pause_reason(self) -> str:
        """Why no step is taken now ('' = training)."""
        if self.buffer.kept < self._resume_at_kept:
            return "recovering: waiting for new frames after a roll-back"
        if self.buffer.lost:
            return "tracking lost"
        if self.buffer.static:
            return "camera static"
        if not self.buffer.snippet_centres():
            return "collecting frames"
        return ""

    def rollback(self, why: str) -> None:
        """Back to the last good weights with a fresh optimiser (its moments belong to the rejected path)."""
        self.model.load_state_dict(self._good)
        self._optimizer = self._new_optimizer()
        self._losses.clear()
        self._since_swap = 0
        self.status.rollbacks += 1
        self.status.last_rollback = why
        self._resume_at_kept = self.buffer.kept + self.cfg.batch  # pause until fresh frames arrived
        self.status.paused = f"rolled back: {why}"

    def _diverged(self, loss: float) -> bool:
        if len(self._losses) < self.cfg.warmup_steps:
            return False
        return loss > self.cfg.divergence_factor * float(np.mean(self._losses))

    def step(self) -> bool:
        """One optimiser step on snippets from the buffer (or none while paused); returns whether weights changed."""
        reason = self.pause_reason()
        self.status.buffer = len(self.buffer.frames)
        if reason:
            self.status.paused = reason
            return False
        batch = self.buffer.sample(self.cfg.batch, self._rng)
        if batch is None:
            return False
        self.status.paused = ""
        start = time.perf_counter()
        result = train_step(self.model, self.loss_cfg, self._optimizer, self._scaler, batch, self.device, amp=False)
        freeze_batchnorm(self.model)
        self.status.busy_s += time.perf_counter() - start
        loss = result.total
        self.status.last_loss = loss
        if not (np.isfinite(loss) and result.finite):
            self.rollback(f"loss {loss} or its gradient is not finite")
            return False
        if self._diverged(loss):
            self.rollback(f"loss {loss:.4f} > {self.cfg.divergence_factor} x running mean "
                          f"{float(np.mean(self._losses)):.4f}")
            return False
        if not all_finite(self.model):
            self.rollback("a weight became non-finite")
            return False
        self._losses.append(loss)
        self.status.mean_loss = float(np.mean(self._losses))
        self.status.steps += 1
        self.status.paused = ""
        self._since_swap += 1
        if self._since_swap >= self.cfg.steps_per_swap:
            return self._post_update()
        return True

    def _post_update(self) -> bool:
        """Build a runner from the current weights (off the inference thread) and post it with the depth ratio;
        False when the weights were rejected (rolled back) instead."""
        self._since_swap = 0
        disp_net, pose_net = copy.deepcopy(self.model.disp_net).eval(), copy.deepcopy(self.model.pose_net).eval()
        runner = optimize_for_inference(disp_net, pose_net, self.height, self.width, backend=self.backend,
                                        device=self.device, num_threads=self.inference_threads)
        ratio = 1.0
        image = self.buffer.newest_image()
        if image is not None:
            image = image.to(self.device)
            new, old = runner.depth(image).float().cpu(), self._current_runner.depth(image).float().cpu()
            ratio = float(torch.median(new) / torch.median(old))
            if not np.isfinite(ratio) or ratio <= 0:
                self.rollback(f"the new weights' depth ratio {ratio} is unusable")
                return False
            structure_new, structure_old = (float(depth_std_over_mean(d)[0]) for d in (new, old))
            if structure_new < NEAR_CONSTANT_DEPTH <= structure_old:
                self.rollback(f"the new weights' depth is near-constant (std/mean {structure_new:.4f} < "
                              f"{NEAR_CONSTANT_DEPTH}; now {structure_old:.3f}): the depth network is collapsing")
                return False
        self._good = self._snapshot()
        self._current_runner = runner
        self.status.swaps += 1
        with self._lock:
            self._update = WeightsUpdate(runner=runner, version=self.status.swaps, depth_ratio=ratio)
        return True

    @torch.no_grad()
    def evaluate(self, batch: dict) -> dict[str, float]:
        """The training loss's terms for ``batch`` (as FrameBuffer.sample gives) with the current weights, no update."""
        tgt, refs, K = batch_to_device(batch, self.device)
        pred = as_prediction(self.model(tgt, refs))
        total, terms, _ = total_loss(self.loss_cfg, tgt, refs, K, pred)
        return {"total": float(total), **{name: float(torch.as_tensor(v)) for name, v in terms.items()}}

    def train(self, steps: int) -> int:
        """``steps`` steps inline (deterministic replay); returns how many changed the weights."""
        return sum(self.step() for _ in range(int(steps)))

    # ------------------------------------------------------------------------------------------------ the worker
    def start(self) -> None:
        """Run step() in a background thread (own torch thread budget, lower priority, duty cycle ``share``)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._worker, name="bwdp_adapt", daemon=True)
        self._thread.start()

    def _worker(self) -> None:
        torch.set_num_threads(self.cfg.threads)  # OpenMP's thread count is per calling thread: inference keeps its own
        if self.cfg.nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.cfg.nice)  # this thread only (Linux)
            except OSError:
                pass
        while not self._stop.is_set():
            start = time.perf_counter()
            self.step()
            elapsed = time.perf_counter() - start
            if self.status.paused:
                self._wake.wait(0.1)
                self._wake.clear()
            elif self.cfg.share < 1:
                self._stop.wait(elapsed * (1.0 - self.cfg.share) / self.cfg.share)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None

    # ------------------------------------------------------------------------------------------------ keeping it
    def checkpoint(self) -> dict:
        """The last good weights (those inference runs or is about to run) as a bwdp checkpoint dict."""
        disp_net, pose_net = build_models(self._model_meta)
        state = {k: v.cpu() for k, v in self._good.items()}
        disp_net.load_state_dict({k[len("disp_net."):]: v for k, v in state.items() if k.startswith("disp_net.")})
        pose_net.load_state_dict({k[len("pose_net."):]: v for k, v in state.items() if k.startswith("pose_net.")})
        return make_checkpoint(disp_net, pose_net, self.height, self.width,
                               step=self._source["step"] + self.status.steps, config=self._train_config,
                               adaptation={**self._source, "config": asdict(self.cfg), "steps": self.status.steps,
                                           "swaps": self.status.swaps, "rollbacks": self.status.rollbacks})

    def save(self, path: str | os.PathLike) -> str:
        """Write :meth:`checkpoint` to ``path`` atomically; returns the path."""
        save_checkpoint(path, self.checkpoint())
        return os.fspath(path)
