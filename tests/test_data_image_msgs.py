"""decode_image / decode_compressed: every supported encoding against a known RGB image, and every hostile input."""
import array

import cv2
import numpy as np
import pytest

from bwdp_core.data.image_msgs import SUPPORTED_ENCODINGS, decode_compressed, decode_image, encode_compressed
from bwdp_core.errors import DataError

H, W = 6, 8


@pytest.fixture(scope="module")
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def _padded(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """[H, row_bytes] uint8 -> bytes with ``pad`` extra bytes per row, and the step."""
    h, n = rows.shape
    out = np.full((h, n + pad), 0xAB, np.uint8)
    out[:, :n] = rows
    return out.tobytes(), n + pad


@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_round_trip(rgb, pad):
    variants = {
        "rgb8": rgb,
        "bgr8": rgb[..., ::-1],
        "8UC3": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], np.full((H, W, 1), 7, np.uint8)], axis=2),
        "8UC4": np.concatenate([rgb[..., ::-1], np.full((H, W, 1), 7, np.uint8)], axis=2),
    }
    for encoding, pixels in variants.items():
        data, step = _padded(np.ascontiguousarray(pixels).reshape(H, -1), pad)
        out = decode_image(encoding, H, W, step, data)
        assert out.dtype == np.uint8 and out.shape == (H, W, 3), encoding
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)


def test_grey_encodings(rgb):
    grey = rgb[..., 1]
    for encoding in ("mono8", "8UC1"):
        out = decode_image(encoding, H, W, W, grey.tobytes())
        np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))
    wide = grey.astype(np.uint16) * 256 + 77  # high byte = grey
    for encoding in ("mono16", "16UC1"):
        out = decode_image(encoding, H, W, 2 * W, wide.astype("<u2").tobytes())
        np.testing.assert_array_equal(out[..., 0], grey)
        out_be = decode_image(encoding, H, W, 2 * W, wide.astype(">u2").tobytes(), is_bigendian=True)
        np.testing.assert_array_equal(out_be[..., 0], grey)


def test_float_grey_scaling():
    unit = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    out = decode_image("32FC1", H, W, 4 * W, unit.tobytes())
    np.testing.assert_array_equal(out[..., 0], np.rint(unit * 255).astype(np.uint8))
    depth_like = unit * 40 + 2  # metres: min-max scaled
    out = decode_image("32FC1", H, W, 4 * W, depth_like.astype(np.float32).tobytes())
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255
    flat = np.full((H, W), 5.0, np.float32)
    assert decode_image("32FC1", H, W, 4 * W, flat.tobytes()).max() == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_nan_inf_rejected(bad):
    values = np.ones((H, W), np.float32)
    values[2, 3] = bad
    with pytest.raises(DataError, match="NaN/Inf"):
        decode_image("32FC1", H, W, 4 * W, values.tobytes())


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_flat_colour(pattern):
    colour = {"r": 200, "g": 100, "b": 30}
    mosaic = np.zeros((H, W), np.uint8)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = colour[pattern[k]]
    out = decode_image(f"bayer_{pattern}8", H, W, W, mosaic.tobytes())
    np.testing.assert_array_equal(out[2:-2, 2:-2].reshape(-1, 3), np.tile([200, 100, 30], ((H - 4) * (W - 4), 1)))


def test_yuv422_byte_order():
    """Packed 4:2:2: grey stays grey, and U (blue-difference) / V (red-difference) land in the right channels."""
    def packed(y, u, v):
        return (np.tile(np.array([u, y, v, y], np.uint8), H * W // 2),  # UYVY
                np.tile(np.array([y, u, y, v], np.uint8), H * W // 2))  # YUYV

    for y, u, v, check in ((126, 128, 128, lambda c: abs(c[0] - c[2]) <= 2 and abs(c[0] - c[1]) <= 2),
                           (126, 220, 128, lambda c: c[2] > c[0] + 60),
                           (126, 128, 220, lambda c: c[0] > c[2] + 60)):
        uyvy, yuyv = packed(y, u, v)
        for enc, data in (("yuv422", uyvy), ("uyvy", uyvy), ("yuv422_yuy2", yuyv), ("yuyv", yuyv)):
            out = decode_image(enc, H, W, 2 * W, data.tobytes())
            assert (out == out[0, 0]).all(), enc
            assert check(out[0, 0].astype(int)), (enc, y, u, v, out[0, 0])


def test_every_supported_encoding_is_exercised():
    exercised = {"rgb8", "bgr8", "8UC3", "rgba8", "bgra8", "8UC4", "mono8", "8UC1", "mono16", "16UC1", "32FC1",
                 "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8", "yuv422", "uyvy", "yuv422_yuy2", "yuyv"}
    assert set(SUPPORTED_ENCODINGS) == exercised


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview, "array", "numpy"])
def test_data_containers(rgb, container):
    raw = rgb.tobytes()
    data = {"array": lambda b: array.array("B", b), "numpy": lambda b: np.frombuffer(b, np.uint8)}.get(
        container, container)(raw)
    np.testing.assert_array_equal(decode_image("rgb8", H, W, 3 * W, data), rgb)


@pytest.mark.parametrize(
    "args, reason",
    [
        (("rgb16", H, W, 6 * W, bytes(6 * W * H)), "unsupported image encoding 'rgb16'"),
        (("", H, W, 3 * W, bytes(3 * W * H)), "unsupported image encoding ''"),
        (("rgb8", 0, W, 3 * W, b""), "zero or negative size"),
        (("rgb8", H, 0, 0, b""), "zero or negative size"),
        (("rgb8", -2, W, 3 * W, b""), "zero or negative size"),
        (("rgb8", H, W, 3 * W - 1, bytes((3 * W - 1) * H)), "smaller than width"),
        (("rgb8", H, W, 3 * W, bytes(3 * W * H - 1)), "expected step x height"),
        (("rgb8", H, W, 3 * W, bytes(3 * W * H + 3)), "expected step x height"),
        (("mono16", H, W, 2 * W + 1, bytes((2 * W + 1) * H)), "not a multiple"),
        (("bayer_rggb8", 5, W, W, bytes(5 * W)), "even height and width"),
        (("bayer_rggb8", H, 7, 7, bytes(7 * H)), "even height and width"),
        (("yuv422", H, 7, 14, bytes(14 * H)), "even width"),
        (("rgb8", "x", W, 3 * W, b""), "not a pair of integers"),
    ],
)
def test_hostile_raw_images(args, reason):
    with pytest.raises(DataError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_image(*args)


def test_data_not_a_buffer():
    with pytest.raises(DataError, match="not a byte buffer"):
        decode_image("mono8", 1, 1, 1, 12345)


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_compressed_round_trip(rgb, codec):
    smooth = cv2.resize(rgb, (64, 48), interpolation=cv2.INTER_CUBIC)
    fmt, payload = encode_compressed(smooth, codec)
    assert fmt.startswith("rgb8; ") and codec in fmt
    out = decode_compressed(fmt, payload)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    tolerance = 0 if codec == "png" else 12
    assert np.abs(out.astype(int) - smooth).mean() <= tolerance


def test_compressed_grey_alpha_and_16bit():
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8)
    ok, png = cv2.imencode(".png", grey)
    np.testing.assert_array_equal(decode_compressed("png", png.tobytes())[..., 2], grey)
    bgra = np.dstack([np.full((6, 8), c, np.uint8) for c in (10, 20, 30, 40)])
    ok, png = cv2.imencode(".png", bgra)
    np.testing.assert_array_equal(decode_compressed("png", png.tobytes())[0, 0], [30, 20, 10])
    ok, png = cv2.imencode(".png", (grey.astype(np.uint16) << 8))
    np.testing.assert_array_equal(decode_compressed("png", png.tobytes())[..., 0], grey)


@pytest.mark.parametrize(
    "fmt, data, reason",
    [
        ("jpeg", b"", "has no data"),
        ("jpeg", b"\xff\xd8\xff\xe0garbage" * 3, "corrupt"),
        ("png", bytes(100), "corrupt"),
        ("16UC1; compressedDepth png", b"\x89PNG", "compressedDepth"),
    ],
)
def test_hostile_compressed(fmt, data, reason):
    with pytest.raises(DataError, match=reason):
        decode_compressed(fmt, data)


def test_truncated_jpeg_is_rejected_or_decoded(rgb):
    """A truncated JPEG either decodes (libjpeg pads it) or raises DataError - never another exception."""
    fmt, payload = encode_compressed(cv2.resize(rgb, (64, 48)), "jpeg")
    try:
        out = decode_compressed(fmt, payload[: len(payload) // 3])
        assert out.shape == (48, 64, 3)
    except DataError:
        pass
