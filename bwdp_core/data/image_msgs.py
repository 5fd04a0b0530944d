"""ROS-free decoding of image messages into uint8 RGB arrays.

The fields of ``sensor_msgs/msg/Image`` and ``sensor_msgs/msg/CompressedImage`` are passed as plain Python values,
so the
same code serves the rosbag dataset (messages deserialised by ``rosbags``), ``bwdp replay`` and the ROS 2 node (messages
from rclpy) without importing any ROS package here.

    decode_image(encoding, height, width, step, data, is_bigendian=False) -> np.ndarray uint8 [H, W, 3] RGB
    decode_compressed(format, data) -> np.ndarray uint8 [H, W, 3] RGB

``data`` may be ``bytes``, ``bytearray``, ``memoryview``, an ``array.array`` or a numpy array (rclpy gives
``array.array('B')``, rosbags a numpy uint8 array). Every problem raises :class:`bwdp_core.errors.DataError` whose
message states the reason (unsupported encoding, zero or odd size, step/size mismatch, NaN/Inf, corrupt data).

Supported raw encodings (the names of ``sensor_msgs/image_encodings``):

========================================  ====================================================================
rgb8, bgr8, rgba8, bgra8, 8UC3 (=bgr8),   colour, 8 bits per channel; alpha dropped
8UC4 (=bgra8)
mono8, 8UC1                               grey, replicated to 3 channels
mono16, 16UC1                             grey, 16 bit, divided by 256 (high byte)
32FC1                                     grey float: values in [0, 1] are taken as intensities (x255); any other
                                          range is min-max scaled to 0..255 per image (depth-like images)
bayer_rggb8, bayer_bggr8, bayer_gbrg8,    Bayer mosaic, demosaiced by OpenCV (height and width must be even)
bayer_grbg8
yuv422 (= UYVY), yuv422_yuy2 (= YUYV)     packed 4:2:2 (width must be even)
========================================  ====================================================================
"""
from __future__ import annotations

import cv2
import numpy as np

from bwdp_core.errors import DataError

# encoding -> (channels, numpy dtype of one channel)
_RAW_LAYOUTS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "8UC4": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)),
    "bayer_rggb8": (1, np.dtype(np.uint8)),
    "bayer_bggr8": (1, np.dtype(np.uint8)),
    "bayer_gbrg8": (1, np.dtype(np.uint8)),
    "bayer_grbg8": (1, np.dtype(np.uint8)),
    "yuv422": (2, np.dtype(np.uint8)),
    "uyvy": (2, np.dtype(np.uint8)),
    "yuv422_yuy2": (2, np.dtype(np.uint8)),
    "yuyv": (2, np.dtype(np.uint8)),
}

# OpenCV names a Bayer pattern by the 2x2 block starting at the second row/column, hence the apparent swap.
_BAYER_TO_RGB = {
    "bayer_rggb8": cv2.COLOR_BayerBG2RGB,
    "bayer_bggr8": cv2.COLOR_BayerRG2RGB,
    "bayer_gbrg8": cv2.COLOR_BayerGR2RGB,
    "bayer_grbg8": cv2.COLOR_BayerGB2RGB,
}

_YUV_TO_RGB = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
    "yuyv": cv2.COLOR_YUV2RGB_YUYV,
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_RAW_LAYOUTS)


def _as_byte_array(data) -> np.ndarray:
    """Any buffer-like message payload -> flat uint8 numpy view (no copy when possible)."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError as err:
        raise DataError(f"image data of type {type(data).__name__} is not a byte buffer") from err


def _check_size(height, width) -> tuple[int, int]:
    try:
        h, w = int(height), int(width)
    except (TypeError, ValueError) as err:
        raise DataError(f"image size {height!r}x{width!r} is not a pair of integers") from err
    if h <= 0 or w <= 0:
        raise DataError(f"image has zero or negative size {h}x{w} (height x width)")
    return h, w


def _float_to_grey(values: np.ndarray) -> np.ndarray:
    """float32 [H, W] -> uint8 [H, W]: [0, 1] taken as intensity, any other range min-max scaled."""
    if not np.all(np.isfinite(values)):
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise DataError(f"32FC1 image contains {bad} NaN/Inf values; cannot convert it to an intensity image")
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0.0 and hi <= 1.0:
        scaled = values * 255.0
    elif hi > lo:
        scaled = (values - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def decode_image(encoding: str, height: int, width: int, step: int, data, is_bigendian: bool = False) -> np.ndarray:
    """Raw ``sensor_msgs/Image`` fields -> uint8 RGB array [height, width, 3] (a new, writable array).

    ``step`` is the row length in bytes (may include padding). Raises DataError for an unsupported encoding, a zero
    size, an odd width/height where the encoding needs even ones, ``step < width * bytes_per_pixel``,
    ``step * height != len(data)``, a step that is not a whole number of pixels' channels, or NaN/Inf in a float image.
    """
    layout = _RAW_LAYOUTS.get(encoding)
    if layout is None:
        raise DataError(
            f"unsupported image encoding {encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})"
        )
    channels, dtype = layout
    h, w = _check_size(height, width)
    step = int(step)
    if (encoding in _BAYER_TO_RGB) and (h % 2 or w % 2):
        raise DataError(f"{encoding} image needs an even height and width, got {h}x{w}")
    if encoding in _YUV_TO_RGB and w % 2:
        raise DataError(f"{encoding} image needs an even width, got {w}")
    bytes_per_pixel = channels * dtype.itemsize
    if step < w * bytes_per_pixel:
        raise DataError(
            f"{encoding} image step {step} is smaller than width x bytes per pixel = {w} x {bytes_per_pixel}"
        )
    if step % dtype.itemsize:
        raise DataError(f"{encoding} image step {step} is not a multiple of the {dtype.itemsize}-byte channel size")
    buf = _as_byte_array(data)
    if buf.size != step * h:
        raise DataError(f"{encoding} image data has {buf.size} bytes, expected step x height = {step} x {h} = "
                        f"{step * h}")

    rows = buf.reshape(h, step)[:, : w * bytes_per_pixel]
    if dtype.itemsize > 1:
        order = ">" if is_bigendian else "<"
        pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(order)).reshape(h, w, channels)
        pixels = pixels.astype(dtype.newbyteorder("="))
    else:
        pixels = rows.reshape(h, w, channels)

    if encoding in ("rgb8", "rgba8"):
        return np.ascontiguousarray(pixels[..., :3])
    if encoding in ("bgr8", "8UC3", "bgra8", "8UC4"):
        return np.ascontiguousarray(pixels[..., 2::-1])
    if encoding in _BAYER_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels[..., 0]), _BAYER_TO_RGB[encoding])
    if encoding in _YUV_TO_RGB:
        return cv2.cvtColor(np.ascontiguousarray(pixels), _YUV_TO_RGB[encoding])
    if encoding == "32FC1":
        grey = _float_to_grey(pixels[..., 0])
    elif dtype == np.uint16:
        grey = (pixels[..., 0] >> 8).astype(np.uint8)
    else:
        grey = pixels[..., 0]
    return np.repeat(grey[..., None], 3, axis=2)


def decode_compressed(format: str, data) -> np.ndarray:  # noqa: A002 - the message field is called `format`
    """``sensor_msgs/CompressedImage`` fields -> uint8 RGB array [H, W, 3].

    ``format`` is the message's format string (``"jpeg"``, ``"png"``, ``"rgb8; jpeg compressed bgr8"``...); the codec
    itself is detected from the data, so the string only matters to reject ``compressedDepth`` (a depth image, not a
    colour one). Grey images are replicated to 3 channels, alpha is dropped, 16-bit images keep their high byte.
    Raises DataError for empty or corrupt data.
    """
    fmt = str(format or "")
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise DataError(f"compressed image format {fmt!r} is a depth image (compressedDepth), not a colour image")
    buf = _as_byte_array(data)
    if buf.size == 0:
        raise DataError(f"compressed image ({fmt or 'no format'}) has no data")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise DataError(f"compressed image ({fmt or 'no format'}, {buf.size} bytes) is corrupt or not a known codec")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"compressed image ({fmt or 'no format'}) decodes to unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_compressed(image_rgb: np.ndarray, codec: str = "jpeg", quality: int = 95) -> tuple[str, bytes]:
    """uint8 RGB [H, W, 3] -> (format string, bytes) as image_transport's compressed plugin writes them."""
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(codec)
    if ext is None:
        raise DataError(f"unsupported compression codec {codec!r} (use jpeg or png)")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, encoded = cv2.imencode(ext, cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"could not encode a {image_rgb.shape} image as {codec}")
    name = "jpeg" if ext == ".jpg" else "png"
    return f"rgb8; {name} compressed bgr8", encoded.tobytes()
