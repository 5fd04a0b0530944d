"""Progress and logs of a training run: a tqdm bar (loss, it/s, ETA), TensorBoard and OUT/metrics.jsonl.

Only rank 0 creates a real logger; the other ranks get `NullLogger`, so the loop calls the same methods everywhere.
TensorBoard tags: ``loss/total`` and ``loss/<term>`` for every loss term, ``val/<metric>``, ``train/lr``, and images
``images/input``, ``images/depth`` (colormap, near = bright) and ``images/occlusion`` (white = occluded).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bwdp_core.geometry import NEAR_CONSTANT_DEPTH


def colorize(values: torch.Tensor, cmap: str = "magma", invert: bool = False) -> np.ndarray:
    """A [H,W] map -> uint8 RGB [H,W,3], normalised by its 5th..95th percentile (robust to sky / outliers)."""
    from matplotlib import colormaps  # optional heavy dependency (the train extra): only when images are logged

    v = values.detach().float().cpu().numpy()
    finite = np.isfinite(v)
    if invert:
        v = np.where(finite & (v > 0), 1.0 / np.maximum(v, 1e-6), 0.0)
    lo, hi = (np.percentile(v[finite], [5, 95]) if finite.any() else (0.0, 1.0))
    norm = np.clip((v - lo) / max(hi - lo, 1e-6), 0, 1)
    return (colormaps[cmap](norm)[..., :3] * 255).astype(np.uint8)


def _logged_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return -1  # a line cut short by a kill: dropped


class CollapseMonitor:
    """Watches the per-step depth-structure statistic (loss term ``depth_std_over_mean``, the batch's target depth
    std / mean) and returns one warning line when it stayed below NEAR_CONSTANT_DEPTH for ``window`` consecutive
    steps; it warns again only after the depth has recovered and collapsed anew (issue 13)."""

    def __init__(self, window: int):
        self.window = int(window)
        self.flat_steps = 0
        self.warned = False

    def update(self, step: int, std_over_mean: float) -> str | None:
        if self.window <= 0:
            return None
        if std_over_mean >= NEAR_CONSTANT_DEPTH:
            self.flat_steps, self.warned = 0, False
            return None
        self.flat_steps += 1
        if self.flat_steps < self.window or self.warned:
            return None
        self.warned = True
        return (f"step {step}: WARNING: depth is near-constant (std/mean {std_over_mean:.4f} < {NEAR_CONSTANT_DEPTH}) "
                f"for {self.flat_steps} steps: the depth network has collapsed (README, \"Why depth went flat, and "
                "the fix\"); the loss curve and the poses can look fine meanwhile")


class NullLogger:
    """What ranks other than 0 use: every call does nothing."""

    def start(self, step: int, total: int) -> None: ...
    def step(self, step: int, total_loss: float, terms: dict, lr: float) -> None: ...
    def images(self, step: int, tgt_img, visuals: dict) -> None: ...
    def validation(self, step: int, metrics: dict, best: bool) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class TrainLogger(NullLogger):
    """tqdm + TensorBoard SummaryWriter (OUT/tensorboard) + one JSON line per log interval (OUT/metrics.jsonl)."""

    def __init__(self, out: str | Path, log_every: int, show_progress: bool = True, resume_step: int | None = None,
                 collapse_window: int = 100):
        """``resume_step``: a resumed run drops what the interrupted run logged after its checkpoint (TensorBoard
        events via purge_step, metrics.jsonl lines), so every step appears once. ``collapse_window``: steps of
        near-constant depth before the progress output warns (CollapseMonitor; 0 = never)."""
        from torch.utils.tensorboard import SummaryWriter  # slow to import (~2 s): only when a run logs

        self.out = Path(out)
        self.log_every = log_every
        self.show_progress = show_progress
        purge = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(log_dir=str(self.out / "tensorboard"), purge_step=purge)
        jsonl = self.out / "metrics.jsonl"
        if resume_step is not None and jsonl.exists():
            kept = [line for line in jsonl.read_text().splitlines() if 0 <= _logged_step(line) <= resume_step]
            jsonl.write_text("".join(line + "\n" for line in kept))
        self.jsonl = open(jsonl, "a", buffering=1)
        self.bar = None
        self.collapse = CollapseMonitor(collapse_window)
        self._sums: dict[str, float] = {}
        self._count = 0
        self._t0 = time.perf_counter()

    def start(self, step: int, total: int) -> None:

        # disable=None: tqdm turns itself off when stderr is not a terminal; log lines are printed instead
        self.bar = tqdm(total=total, initial=step, desc="train", unit="it", dynamic_ncols=True,
                        disable=None if self.show_progress else True, smoothing=0.1)
        self._total = total
        self._t0 = time.perf_counter()

    def step(self, step: int, total_loss: float, terms: dict, lr: float) -> None:
        """Called after optimiser step number ``step`` (1-based) with plain floats."""
        self._sums["total"] = self._sums.get("total", 0.0) + total_loss
        for name, value in terms.items():
            self._sums[name] = self._sums.get(name, 0.0) + value
        self._count += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{total_loss:.4f}", refresh=False)
        if "depth_std_over_mean" in terms:
            warning = self.collapse.update(step, terms["depth_std_over_mean"])
            if warning:
                self.message(warning)
        if step % self.log_every == 0:
            means = {k: v / self._count for k, v in self._sums.items()}
            elapsed = time.perf_counter() - self._t0
            for name, value in means.items():
                self.writer.add_scalar(f"loss/{name}", value, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("train/it_per_s", self._count / max(elapsed, 1e-9), step)
            rate = self._count / max(elapsed, 1e-9)
            self.jsonl.write(json.dumps({"step": step, "loss": means, "lr": lr, "it_per_s": rate}) + "\n")
            if self.bar is None or self.bar.disable:
                eta = (getattr(self, "_total", step) - step) / max(rate, 1e-9)
                print(f"step {step}: loss {means['total']:.4f}, {rate:.2f} it/s, ETA {eta / 60:.1f} min", flush=True)
            self._sums, self._count, self._t0 = {}, 0, time.perf_counter()

    def images(self, step: int, tgt_img, visuals: dict) -> None:
        """First sample of the batch: input image, depth colormap, occlusion mask (when the loss produced one)."""
        self.writer.add_image("images/input", tgt_img[0].detach().float().clamp(0, 1).cpu(), step)
        depth = visuals.get("depth")
        if depth is not None:
            self.writer.add_image("images/depth", colorize(depth[0, 0], invert=True), step, dataformats="HWC")
        occlusion = visuals.get("occlusion")
        if occlusion is not None:
            self.writer.add_image("images/occlusion", occlusion[0].detach().float().cpu().clamp(0, 1), step)

    def validation(self, step: int, metrics: dict, best: bool) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"val/{name}", value, step)
        self.jsonl.write(json.dumps({"step": step, "val": metrics, "best": best}) + "\n")
        self.message(f"step {step}: validation " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items())
                     + (" (best so far, best.pt written)" if best else ""))

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.writer.flush()
        self.writer.close()
        self.jsonl.close()
