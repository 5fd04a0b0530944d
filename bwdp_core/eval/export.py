"""`bwdp export --checkpoint CKPT --format torchscript|onnx [--int8 --calibration SOURCE] [--out DIR]`: both networks
as deployable files.

Exported graphs (fixed input size = the checkpoint's training resolution, batch dimension free):

- ``depth_net``: image [B, 3, H, W] RGB in [0, 1] -> full-resolution disparity [B, 1, H, W] (``--depth-output
  disparity``, default) or depth = 1 / disparity (``depth``). Normalisation is inside the graph.
- ``pose_net``: (tgt [B, 3, H, W], ref [B, 3, H, W]) -> [B, 6] = T_{t->r} as (tx, ty, tz, rx, ry, rz), R = Rx·Ry·Rz.

After export each file is reloaded (torch.jit.load / onnxruntime) and run on a seeded random input; the largest
absolute difference from the PyTorch networks is printed and the command fails (exit 1) above ``--tolerance``.
A ``export.json`` next to the files records sizes, outputs and the measured differences. The unit of the pose
translation (``pose_translation_unit``, bwdp_core.checkpoint.TRANSLATION_UNITS) travels with the files too: in
export.json, in each ONNX file's metadata (``metadata_props``) and in each TorchScript file (extra file
``bwdp.json``), under the keys of EXPORT_METADATA. A scale-invariant-warp model ("target_mean_depth") gives its
translation in units of the target frame's mean depth: multiply it by the mean of depth_net's depth for ``tgt``.

``--int8`` (ONNX only) adds ``depth_net.int8.onnx`` and ``pose_net.int8.onnx``: ONNX Runtime static quantisation
(bwdp_core.inference.int8) calibrated on frames drawn evenly from SOURCE (frame i and its predecessor for PoseNet).
int8 is approximate, so instead of a tolerance its deviation from fp32 on other frames of SOURCE is reported
(``int8_deviation``); bench/int8_accuracy.py measures what it costs in depth and odometry metrics. The manifest
records the weights digest, so the node's ``onnxruntime_int8`` backend refuses files made from another checkpoint.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bwdp_core.checkpoint import load_models
from bwdp_core.data.sources import FrameSource
from bwdp_core.errors import BwdpError, ConfigError
from bwdp_core.inference.int8 import INT8_FILES, quantize_int8, weights_digest
from bwdp_core.inference.preprocess import image_to_tensor

#: what every exported file carries besides its graph (key -> meaning)
EXPORT_METADATA = {"bwdp.pose_translation_unit": "unit of pose_net's translation (bwdp_core.checkpoint)",
                   "bwdp.input_size": "network input height,width"}


def export_metadata(meta: dict) -> dict[str, str]:
    """The EXPORT_METADATA values of a checkpoint's ``meta`` (load_models), as strings."""
    return {"bwdp.pose_translation_unit": str(meta["pose_translation_unit"]),
            "bwdp.input_size": f"{int(meta['height'])},{int(meta['width'])}"}


def read_export_metadata(path: str | Path) -> dict[str, str]:
    """The EXPORT_METADATA an exported file carries ({} for a file written before bwdp recorded it)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return {k: v for k, v in props.items() if k in EXPORT_METADATA}
    extra = {"bwdp.json": ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra["bwdp.json"]) if extra["bwdp.json"] else {}


class DepthExport(nn.Module):
    """DispNet reduced to its full-resolution output (disparity, or depth = 1/disparity)."""

    def __init__(self, disp_net: nn.Module, output: str = "disparity"):
        super().__init__()
        if output not in ("disparity", "depth"):
            raise ConfigError(f"depth output must be 'disparity' or 'depth', not {output!r}")
        self.disp_net = disp_net
        self.output_depth = output == "depth"

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        disp = self.disp_net(image)[0][0]
        return 1.0 / disp if self.output_depth else disp


class PoseExport(nn.Module):
    """PoseNet as a two-input module (its plain forward already is; kept for a stable exported signature)."""

    def __init__(self, pose_net: nn.Module):
        super().__init__()
        self.pose_net = pose_net

    def forward(self, tgt: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return self.pose_net(tgt, ref)


def example_inputs(height: int, width: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two seeded random images [batch, 3, H, W] in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, height, width, generator=gen), torch.rand(batch, 3, height, width, generator=gen))


def export_torchscript(module: nn.Module, inputs: tuple, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Trace ``module`` on ``inputs`` and save a TorchScript file (loadable with torch.jit.load, no bwdp needed);
    ``metadata`` goes in as the extra file ``bwdp.json``."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript deprecation notices: the file format itself is stable
        traced = torch.jit.trace(module, inputs, check_trace=False)
    traced.save(str(path), _extra_files={"bwdp.json": json.dumps(metadata or {})})
    return path


def export_onnx(module: nn.Module, inputs: tuple, path: Path, input_names: list[str], output_name: str,
                opset: int = 17, metadata: dict[str, str] | None = None) -> Path:
    """TorchScript-based ONNX export (``dynamo=False``) with a dynamic batch axis and ``metadata`` in the model's
    metadata_props; the model is checked by onnx."""
    import onnx  # optional dependency (the export extra): only for --format onnx

    dynamic = {name: {0: "batch"} for name in [*input_names, output_name]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, str(path), dynamo=False, input_names=input_names,
                          output_names=[output_name], dynamic_axes=dynamic, opset_version=opset)
    if metadata:
        model = onnx.load(str(path))
        onnx.helper.set_model_props(model, dict(metadata))
        onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    return path


def run_exported(path: Path, fmt: str, inputs: tuple) -> np.ndarray:
    """Run an exported file on ``inputs`` (tensors) and return its output as numpy."""
    if fmt == "torchscript":
        module = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return module(*inputs).cpu().numpy()
    import onnxruntime as ort  # only to check an ONNX export

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {inp.name: t.cpu().numpy() for inp, t in zip(session.get_inputs(), inputs)}
    return session.run(None, feeds)[0]


def calibration_pairs(sources: list[FrameSource], count: int, height: int, width: int,
                      offset: float = 0.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` (frame i, frame i-1) pairs [1,3,H,W] spread evenly over all frames of ``sources`` that have a
    predecessor; ``offset`` (0..1) shifts the picks by that fraction of their spacing (the check frames use 0.5)."""
    candidates = [(source, i) for source in sources for i in range(1, len(source))]
    if not candidates:
        raise ConfigError("the calibration source has no frame with a predecessor")
    count = max(1, min(int(count), len(candidates)))
    step = len(candidates) / count
    picks = sorted({min(len(candidates) - 1, int((k + offset) * step)) for k in range(count)})
    return [tuple(image_to_tensor(source.load_image(j), height, width) for j in (i, i - 1))
            for source, i in (candidates[p] for p in picks)]


def int8_deviation(fp32: dict, int8: dict, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict:
    """How far the int8 files are from the fp32 ones on ``pairs``: relative depth error (median, p95 over pixels)
    and the largest pose difference (translation and rotation components)."""
    rel, trans, rot = [], [], []
    for tgt, ref in pairs:
        d32, d8 = (run_exported(files["depth_net"], "onnx", (tgt,)) for files in (fp32, int8))
        rel.append(np.abs(d8 / d32 - 1.0).ravel())
        p32, p8 = (run_exported(files["pose_net"], "onnx", (tgt, ref)) for files in (fp32, int8))
        trans.append(float(np.abs(p8 - p32)[0, :3].max()))
        rot.append(float(np.abs(p8 - p32)[0, 3:].max()))
    rel = np.concatenate(rel)
    return {"frames": len(pairs), "depth_rel_median": float(np.median(rel)),
            "depth_rel_p95": float(np.percentile(rel, 95)), "pose_translation_max_abs": max(trans),
            "pose_rotation_max_abs_rad": max(rot)}


def export_models(checkpoint: str | Path, out_dir: str | Path, fmt: str = "torchscript",
                  depth_output: str = "disparity", tolerance: float = 1e-4, batch: int = 2,
                  calibration: list[FrameSource] | None = None, calibration_frames: int = 32) -> dict:
    """Export both networks of ``checkpoint`` to ``out_dir`` and check parity. Returns the report dict
    ({"files": {...}, "max_abs_diff": {"depth_net": .., "pose_net": ..}, "passed": bool, ...}).

    With ``calibration`` (sources; ONNX only) the int8 files are made too and the report gains "int8": true,
    "int8_files", "calibration", "int8_deviation" and "weights_sha256"."""

    if fmt not in ("torchscript", "onnx"):
        raise ConfigError(f"--format must be torchscript or onnx, not {fmt!r}")
    if calibration is not None and fmt != "onnx":
        raise ConfigError("--int8 needs --format onnx (int8 runs on ONNX Runtime)")
    disp_net, pose_net, meta = load_models(checkpoint, "cpu")
    height, width = int(meta["height"]), int(meta["width"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    depth_module = DepthExport(disp_net, depth_output).eval()
    pose_module = PoseExport(pose_net).eval()
    trace_inputs = example_inputs(height, width, batch=1, seed=0)
    check_inputs = example_inputs(height, width, batch=batch, seed=1)
    suffix = ".pt" if fmt == "torchscript" else ".onnx"
    files = {"depth_net": out_dir / f"depth_net{suffix}", "pose_net": out_dir / f"pose_net{suffix}"}
    metadata = export_metadata(meta)
    try:
        if fmt == "torchscript":
            export_torchscript(depth_module, trace_inputs[:1], files["depth_net"], metadata)
            export_torchscript(pose_module, trace_inputs, files["pose_net"], metadata)
        else:
            export_onnx(depth_module, trace_inputs[:1], files["depth_net"], ["image"], depth_output, metadata=metadata)
            export_onnx(pose_module, trace_inputs, files["pose_net"], ["tgt", "ref"], "pose", metadata=metadata)
    except BwdpError:
        raise
    except Exception as err:  # exporter failures are not user errors but should still be one readable line
        raise BwdpError(f"{fmt} export of {checkpoint} failed: {type(err).__name__}: {str(err).splitlines()[0]}") \
            from None
    with torch.no_grad():
        reference = {"depth_net": depth_module(check_inputs[0]).numpy(), "pose_net": pose_module(*check_inputs).numpy()}
    exported = {"depth_net": run_exported(files["depth_net"], fmt, check_inputs[:1]),
                "pose_net": run_exported(files["pose_net"], fmt, check_inputs)}
    diffs = {name: float(np.max(np.abs(exported[name] - reference[name]))) for name in files}
    report = {"format": fmt, "checkpoint": str(checkpoint), "input_size": [height, width],
            "files": {k: str(v) for k, v in files.items()},
            "outputs": {"depth_net": f"{depth_output} [B,1,{height},{width}]",
                        "pose_net": "T_{t->r} (tx,ty,tz,rx,ry,rz) [B,6], R = Rx*Ry*Rz, translation in "
                        + ("depth units" if meta["pose_translation_unit"] == "depth"
                           else "units of the mean depth of tgt (multiply by it)")},
            "pose_translation_unit": meta["pose_translation_unit"], "metadata": metadata,
            "inputs": {"depth_net": f"image [B,3,{height},{width}] RGB in [0,1]",
                       "pose_net": f"tgt, ref [B,3,{height},{width}] RGB in [0,1]"},
            "parity_batch": batch, "max_abs_diff": diffs, "tolerance": tolerance,
            "passed": all(d <= tolerance for d in diffs.values()), "depth_output": depth_output}
    if calibration is not None:
        report.update(_export_int8(files, out_dir, calibration, calibration_frames, height, width))
        report["weights_sha256"] = weights_digest(disp_net, pose_net)
    return report


def _export_int8(files: dict, out_dir: Path, sources: list[FrameSource], count: int, height: int, width: int) -> dict:
    """Quantise the exported fp32 ONNX files (see module docstring); the int8 part of the report."""
    pairs = calibration_pairs(sources, count, height, width)
    check = calibration_pairs(sources, max(2, count // 4), height, width, offset=0.5)
    int8_files = {name: out_dir / file for name, file in INT8_FILES.items()}
    quantize_int8(files["depth_net"], int8_files["depth_net"], [{"image": tgt.numpy()} for tgt, _ in pairs])
    quantize_int8(files["pose_net"], int8_files["pose_net"],
                  [{"tgt": tgt.numpy(), "ref": ref.numpy()} for tgt, ref in pairs])
    return {"int8": True, "int8_files": {k: str(v) for k, v in int8_files.items()},
            "calibration": {"sources": [repr(s) for s in sources], "frames": len(pairs)},
            "int8_deviation": int8_deviation(files, int8_files, check)}
