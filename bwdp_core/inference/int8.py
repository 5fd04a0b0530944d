"""int8 networks: ONNX Runtime static quantisation, and the check that an int8 export fits the networks it runs for.

    quantize_int8(fp32_onnx, int8_onnx, feeds)          # QDQ, per-channel int8 weights, uint8 activations
    manifest = check_int8_export(folder, disp_net, pose_net, height, width)   # before loading the files

Static quantisation (ONNX Runtime's ``quantize_static``): every Conv's weights become int8 with one scale per output
channel, and every activation between two quantisable operators uint8 with one scale per tensor, chosen from the
min/max the fp32 graph reaches on calibration frames (``bwdp export --format onnx --int8 --calibration SOURCE``
draws them from a training source). Operators ONNX Runtime has no int8 kernel for (ELU, edge padding, resize) stay
fp32 between DequantizeLinear / QuantizeLinear pairs. The result is approximate: its deviation from fp32 is measured
(``bwdp export`` prints it on held-out frames; bench/int8_accuracy.py gives the depth and odometry metrics), never
assumed.

A folder written by ``bwdp export --int8`` holds ``depth_net.int8.onnx``, ``pose_net.int8.onnx`` and ``export.json``;
the manifest records the weights digest of the checkpoint they were made from (:func:`weights_digest`), so loading
them next to other networks is refused instead of silently publishing another model's output.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
from torch import nn

from bwdp_core.errors import ConfigError

INT8_FILES = {"depth_net": "depth_net.int8.onnx", "pose_net": "pose_net.int8.onnx"}
MANIFEST = "export.json"


def weights_digest(*nets: nn.Module) -> str:
    """sha256 over the parameter and buffer tensors of ``nets`` (names, shapes and fp32 values, in order)."""
    digest = hashlib.sha256()
    for net in nets:
        for name, tensor in getattr(net, "module", net).state_dict().items():
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class _FeedReader:
    """ONNX Runtime's calibration-reader interface over a list of input dicts ({input name: float32 array})."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = feeds
        self._next = 0

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def quantize_int8(fp32_path: str | Path, out_path: str | Path, feeds: Iterable[dict[str, np.ndarray]]) -> Path:
    """Quantise the fp32 ONNX model at ``fp32_path`` to ``out_path``: QDQ format, int8 weights per output channel,
    uint8 activations per tensor from min/max calibration over ``feeds`` (one {input name: array} per batch)."""
    try:  # local import: the quantisation tools load onnx and take seconds; only `bwdp export --int8` needs them
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:  # pragma: no cover - onnxruntime is a declared dependency
        raise ConfigError("int8 export needs the onnxruntime package (pip install onnxruntime)") from None
    feeds = list(feeds)
    if not feeds:
        raise ConfigError("int8 quantisation needs at least one calibration frame")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="bwdp_int8_") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX shape inference + graph clean-up, as ORT recommends; its symbolic pass cannot follow the free batch axis
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out_path), _FeedReader(feeds), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return out_path


def read_manifest(folder: str | Path) -> dict:
    """The ``export.json`` of an int8 export folder; ConfigError when it is missing or not an int8 export."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not readable as the manifest of `bwdp export --format onnx --int8` ({err})") \
            from None
    if not manifest.get("int8"):
        raise ConfigError(f"{folder} holds no int8 export (run `bwdp export --format onnx --int8 --calibration ...`)")
    for name in INT8_FILES.values():
        if not (folder / name).is_file():
            raise ConfigError(f"{folder / name} is missing (the int8 export is incomplete)")
    return manifest


def check_int8_export(folder: str | Path, disp_net: nn.Module, pose_net: nn.Module, height: int, width: int) -> dict:
    """The manifest of the int8 export in ``folder`` after checking it belongs to these networks at this size
    (ConfigError otherwise: made from other weights, for another size, incomplete or not an int8 export)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if list(manifest.get("input_size", [])) != [height, width]:
        raise ConfigError(f"{folder}: the int8 networks take {manifest.get('input_size')} but the checkpoint's size "
                          f"is {[height, width]}")
    if manifest.get("weights_sha256") != weights_digest(disp_net, pose_net):
        raise ConfigError(f"{folder}: the int8 networks were exported from other weights "
                          f"({manifest.get('checkpoint')}); export them again from this checkpoint")
    return manifest
