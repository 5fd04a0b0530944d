"""Fast per-frame inference for a trained DispNet/PoseNet pair (used by the ROS node's processing class and `bwdp vo`).

    runner = optimize_for_inference(disp_net, pose_net, height, width, backend="auto")
    depth = runner.depth(img)        # img [B,3,H,W] in [0,1]  -> depth [B,1,H,W] (= 1 / full-resolution disp)
    pose = runner.pose(tgt, ref)     # [B,3,H,W] x2            -> [B,6] pose vector T_{t->r} (as PoseNet)

Backends (numbers from ``bench/infer.py`` on the 2-core dev CPU, see its JSON):
- ``eager``: the networks as they are, under ``torch.inference_mode``.
- ``channels_last``: eager with NHWC weights and inputs (oneDNN's preferred layout on CPU; also helps cuDNN).
- ``torchscript``: ``torch.jit.trace`` at (height, width) then ``torch.jit.optimize_for_inference`` (freeze, conv+BN
  folding, oneDNN layout on CPU). Only the full-resolution disparity is computed (unused heads are pruned).
- ``onnxruntime``: legacy ``torch.onnx.export(..., dynamo=False)`` run by ONNX Runtime's CPU provider.
- ``onnxruntime_int8``: the int8 files of ``bwdp export --format onnx --int8`` (folder ``int8_dir``; refused when
  they were made from other weights or another size, see bwdp_core.inference.int8). Approximate: never ``auto``.
- ``bf16``: ``channels_last`` under ``torch.autocast(dtype=bfloat16)`` (AMX / tensor cores); about 3 significant
  digits in depth and pose, so opt-in only.
- ``auto``: ``onnxruntime`` on CPU (``torchscript`` if onnxruntime is not installed), ``channels_last`` on CUDA.
  Why ONNX Runtime on CPU: on an idle CPU all fp32 CPU backends are within ~10% of each other (128x416: torchscript
  54 ms, channels_last 57 ms, onnxruntime 59 ms, eager 65 ms), but as soon as another process competes for the cores
  PyTorch's OpenMP threads stall each other (256x832 with one busy neighbour: torchscript 1.95 s, onnxruntime 0.49 s).
  A robot's CPU is always shared with other nodes, so the backend that degrades gracefully is the default.
Every backend runs only the full-resolution disparity head of DispNet (``num_scales=1``; the coarser heads only
serve the training loss). DispNet and PoseNet share no encoder (3- vs 6-channel input, separate weights), so there is
no encoder computation to share between them.
ONNX Runtime sessions get ``num_threads`` intra-op threads for PoseNet and ``depth_threads`` for DispNet, and their
idle threads sleep instead of spinning (``ort_spinning=False``): a spinning pool holds the cores that another
process, or our own depth thread, needs (bench/infer.py ``--contend`` measures both).
The given networks are deep-copied: the caller's modules are not modified.
"""
from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from bwdp_core.errors import ConfigError
from bwdp_core.inference.int8 import INT8_FILES, check_int8_export

try:  # a declared dependency, but `auto` still works without it (torchscript on CPU), so a missing one is no error
    import onnxruntime as ort
except ImportError:  # pragma: no cover - only on an install without onnxruntime
    ort = None

BACKENDS = ("auto", "eager", "channels_last", "torchscript", "onnxruntime", "onnxruntime_int8", "bf16")
CPU_ONLY_BACKENDS = ("onnxruntime", "onnxruntime_int8")

# What ``auto`` stands for, per device (resolve_backend reads these; the node's `inference_backend` description is
# built from them by describe_backends, so the documentation cannot drift from the code).
AUTO_ON_CPU = "onnxruntime"
AUTO_ON_CPU_WITHOUT_ONNXRUNTIME = "torchscript"
AUTO_ON_GPU = "channels_last"


def describe_backends() -> str:
    """The choices in words, with what ``auto`` resolves to on each device (from the constants above)."""
    names = [f"{name} (CPU only)" if name in CPU_ONLY_BACKENDS else name for name in BACKENDS if name != "auto"]
    auto = (f"auto ({AUTO_ON_CPU} on CPU, or {AUTO_ON_CPU_WITHOUT_ONNXRUNTIME} without onnxruntime; "
            f"{AUTO_ON_GPU} on CUDA)")
    return f"{auto}, {', '.join(names[:-1])} or {names[-1]}"


class _DepthFromDisp(nn.Module):
    """img [B,3,H,W] -> depth [B,1,H,W] from DispNet's full-resolution disparity only (traces/exports cleanly)."""

    def __init__(self, disp_net: nn.Module):
        super().__init__()
        self.disp_net = disp_net

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        disps, _ = self.disp_net(img, num_scales=1)  # the coarser heads are not computed
        return 1.0 / disps[0]


class InferenceRunner:
    """Depth and pose for frames of one fixed size on one device (see module docstring)."""

    def __init__(self, backend: str, height: int, width: int, device: torch.device, depth_fn, pose_fn):
        self.backend = backend
        self.height = height
        self.width = width
        self.device = device
        self._depth_fn = depth_fn
        self._pose_fn = pose_fn

    def _check(self, img: torch.Tensor, name: str) -> None:
        if img.dim() != 4 or img.shape[1] != 3 or img.shape[2] != self.height or img.shape[3] != self.width:
            raise ValueError(
                f"{name}: expected an image tensor [B,3,{self.height},{self.width}], got {list(img.shape)}"
            )

    def depth(self, img: torch.Tensor) -> torch.Tensor:
        """img [B,3,H,W] float in [0,1] -> depth [B,1,H,W] (1 / disp, in the network's scale-ambiguous units)."""
        self._check(img, "img")
        with torch.inference_mode():
            return self._depth_fn(img)

    def pose(self, tgt: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """tgt, ref [B,3,H,W] float in [0,1] -> [B,6] pose vector of T_{t->r}."""
        self._check(tgt, "tgt")
        self._check(ref, "ref")
        with torch.inference_mode():
            return self._pose_fn(tgt, ref)

    def __repr__(self) -> str:
        return f"InferenceRunner(backend={self.backend!r}, size={self.height}x{self.width}, device={self.device})"


def optimize_for_inference(
    disp_net: nn.Module,
    pose_net: nn.Module,
    height: int,
    width: int,
    backend: str = "auto",
    device: Optional[str | torch.device] = None,
    num_threads: Optional[int] = None,
    depth_threads: Optional[int] = None,
    int8_dir: Optional[str | Path] = None,
    ort_spinning: bool = False,
) -> InferenceRunner:
    """Prepare both networks for fast inference at (height, width); returns an :class:`InferenceRunner`.

    ``device`` defaults to the device of ``disp_net``'s parameters. ``num_threads`` (PoseNet) and ``depth_threads``
    (DispNet, default ``num_threads``) only matter for ONNX Runtime (default ``torch.get_num_threads()``);
    ``ort_spinning`` lets its idle threads spin. ``int8_dir``: the ``bwdp export --int8`` folder, required by
    ``onnxruntime_int8``. Raises ConfigError for an unknown backend, a CPU-only backend on another device, a
    missing or mismatching int8 export, or a size not divisible by 32.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"inference backend {backend!r} is unknown (choose one of {', '.join(BACKENDS)})")
    if height % 32 or width % 32 or height <= 0 or width <= 0:
        raise ConfigError(f"inference size {height}x{width} must be positive multiples of 32")
    device = torch.device(device) if device is not None else next(disp_net.parameters()).device
    backend = resolve_backend(backend, device)
    if backend in CPU_ONLY_BACKENDS and device.type != "cpu":
        raise ConfigError(f"inference backend {backend!r} runs on the CPU only (use torchscript or channels_last)")
    disp_net = copy.deepcopy(getattr(disp_net, "module", disp_net)).to(device).eval()
    pose_net = copy.deepcopy(getattr(pose_net, "module", pose_net)).to(device).eval()
    depth_model = _DepthFromDisp(disp_net).eval()
    example = torch.rand(1, 3, height, width, device=device)
    builders = {
        "eager": _build_eager,
        "channels_last": _build_channels_last,
        "torchscript": _build_torchscript,
        "bf16": _build_bf16,
    }
    threads = int(num_threads or torch.get_num_threads())
    ort_threads = {"pose": threads, "depth": int(depth_threads or threads), "spinning": bool(ort_spinning)}
    if backend == "onnxruntime_int8":
        if not int8_dir:
            raise ConfigError("inference backend 'onnxruntime_int8' needs the folder of `bwdp export --format onnx "
                              "--int8` (int8_dir / the node parameter int8_model_dir)")
        depth_fn, pose_fn = _build_onnxruntime_int8(Path(int8_dir), disp_net, pose_net, height, width, ort_threads)
    elif backend == "onnxruntime":
        depth_fn, pose_fn = _build_onnxruntime(depth_model, pose_net, example, ort_threads)
    else:
        depth_fn, pose_fn = builders[backend](depth_model, pose_net, example, threads)
    runner = InferenceRunner(backend, height, width, device, depth_fn, pose_fn)
    runner.depth(example)  # warm-up: first calls pay for oneDNN primitive creation / JIT profiling
    runner.pose(example, example)
    return runner


def resolve_backend(backend: str, device: str | torch.device) -> str:
    """The concrete backend ``auto`` stands for on ``device`` (other names are returned unchanged)."""
    if backend != "auto":
        return backend
    if torch.device(device).type != "cpu":
        return AUTO_ON_GPU
    return AUTO_ON_CPU if ort is not None else AUTO_ON_CPU_WITHOUT_ONNXRUNTIME


def _build_eager(depth_model, pose_net, example, num_threads):
    return depth_model, pose_net


def _build_channels_last(depth_model, pose_net, example, num_threads):
    depth_model = depth_model.to(memory_format=torch.channels_last)
    pose_net = pose_net.to(memory_format=torch.channels_last)

    def depth_fn(img):
        return depth_model(img.contiguous(memory_format=torch.channels_last)).contiguous()

    def pose_fn(tgt, ref):
        return pose_net(
            tgt.contiguous(memory_format=torch.channels_last), ref.contiguous(memory_format=torch.channels_last)
        )

    return depth_fn, pose_fn


def _build_bf16(depth_model, pose_net, example, num_threads):
    depth_cl, pose_cl = _build_channels_last(depth_model, pose_net, example, num_threads)
    device_type = example.device.type

    def depth_fn(img):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return depth_cl(img).float()

    def pose_fn(tgt, ref):
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return pose_cl(tgt, ref).float()

    return depth_fn, pose_fn


def _build_torchscript(depth_model, pose_net, example, num_threads):
    with torch.no_grad():
        depth_ts = torch.jit.optimize_for_inference(torch.jit.trace(depth_model, (example,), check_trace=False))
        pose_ts = torch.jit.optimize_for_inference(torch.jit.trace(pose_net, (example, example), check_trace=False))
    return depth_ts, pose_ts


def session_options(num_threads: int, spinning: bool = False):
    """ONNX Runtime CPU session options: ``num_threads`` intra-op threads (1 = run in the calling thread), one
    inter-op thread, all graph optimisations; idle pool threads sleep unless ``spinning``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(num_threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return options


def _require_onnxruntime(backend: str) -> None:
    if ort is None:  # pragma: no cover - onnxruntime is a declared dependency
        raise ConfigError(f"inference backend {backend!r} needs the onnxruntime package (pip install onnxruntime)")


def _ort_functions(depth_sess, pose_sess, depth_from_output):
    """(depth_fn, pose_fn) over two ONNX Runtime sessions; ``depth_from_output`` maps the depth graph's output."""
    depth_input = depth_sess.get_inputs()[0].name
    pose_inputs = [i.name for i in pose_sess.get_inputs()]

    def depth_fn(img):
        output = depth_sess.run(None, {depth_input: img.detach().contiguous().numpy()})[0]
        return depth_from_output(torch.from_numpy(output))

    def pose_fn(tgt, ref):
        feeds = dict(zip(pose_inputs, (tgt.detach().contiguous().numpy(), ref.detach().contiguous().numpy())))
        return torch.from_numpy(pose_sess.run(None, feeds)[0])

    return depth_fn, pose_fn


def _build_onnxruntime(depth_model, pose_net, example, threads):
    _require_onnxruntime("onnxruntime")

    def session(model, args, input_names, output_name, num_threads):
        buffer = io.BytesIO()
        dynamic = {name: {0: "batch"} for name in (*input_names, output_name)}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter (constant folding of strided slices, deprecations)
            torch.onnx.export(
                model, args, buffer, input_names=list(input_names), output_names=[output_name],
                dynamic_axes=dynamic, opset_version=17, dynamo=False,
            )
        options = session_options(num_threads, threads["spinning"])
        return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    depth_sess = session(depth_model, (example,), ("img",), "depth", threads["depth"])
    pose_sess = session(pose_net, (example, example), ("tgt", "ref"), "pose", threads["pose"])
    return _ort_functions(depth_sess, pose_sess, lambda depth: depth)


def _build_onnxruntime_int8(folder: Path, disp_net, pose_net, height, width, threads):
    _require_onnxruntime("onnxruntime_int8")
    manifest = check_int8_export(folder, disp_net, pose_net, height, width)
    depth_sess, pose_sess = (
        ort.InferenceSession(str(folder / INT8_FILES[name]), session_options(threads[role], threads["spinning"]),
                             providers=["CPUExecutionProvider"])
        for name, role in (("depth_net", "depth"), ("pose_net", "pose")))
    returns_disparity = manifest.get("depth_output", "disparity") == "disparity"
    return _ort_functions(depth_sess, pose_sess, (lambda disp: 1.0 / disp) if returns_disparity else (lambda d: d))
