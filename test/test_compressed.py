"""CompressedImage decoding against messages built exactly as image_transport's plugins build them.

The reference builders below are line-by-line ports of ros-perception/image_transport_plugins
(compressed_publisher.cpp, compressed_depth_image_transport codec.cpp and rvl_codec.cpp): a ctypes
``ConfigHeader`` (the C struct, laid out by the C rules), float32 arithmetic and C's
float -> unsigned short truncation for the inverse-depth quantisation, and RvlCodec's word/nibble
loop emulated per pixel. They are deliberately slow and independent of ``m4sam_ros.msgs.compressed``.
"""

from __future__ import annotations

import ctypes

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from m4sam_ros.msgs import compressed as cz
from m4sam_ros.ros.messages import rclpy_image


class ConfigHeader(ctypes.Structure):
    """compression_common.h: struct ConfigHeader { compressionFormat format; float depthParam[2]; }"""

    _fields_ = [("format", ctypes.c_int), ("depthParam", ctypes.c_float * 2)]


class RefRvl:
    """RvlCodec (rvl_codec.cpp) on 32-bit words, one pixel at a time."""

    def __init__(self) -> None:
        self.words: list[int] = []
        self.word = 0
        self.nibbles = 0
        self.pos = 0

    def encode_vle(self, value: int) -> None:
        while True:
            nibble = value & 0x7
            value >>= 3
            if value:
                nibble |= 0x8
            self.word = ((self.word << 4) | nibble) & 0xFFFFFFFF
            self.nibbles += 1
            if self.nibbles == 8:
                self.words.append(self.word)
                self.nibbles = 0
                self.word = 0
            if not value:
                break

    def compress(self, px: list[int]) -> bytes:
        i, n, previous = 0, len(px), 0
        while i != n:
            zeros = 0
            while i != n and px[i] == 0:
                i, zeros = i + 1, zeros + 1
            self.encode_vle(zeros)
            nonzeros, p = 0, i
            while p != n and px[p]:
                p, nonzeros = p + 1, nonzeros + 1
            self.encode_vle(nonzeros)
            for _ in range(nonzeros):
                current = px[i]
                i += 1
                delta = current - previous
                positive = ((delta << 1) ^ (delta >> 31)) & 0xFFFFFFFF  # int arithmetic, 32-bit
                self.encode_vle(positive)
                previous = current
        if self.nibbles:
            self.words.append((self.word << 4 * (8 - self.nibbles)) & 0xFFFFFFFF)
        return b"".join(w.to_bytes(4, "little") for w in self.words)

    def decode_vle(self) -> int:
        value, bits = 0, 29
        while True:
            if not self.nibbles:
                self.word = self.words[self.pos]
                self.pos += 1
                self.nibbles = 8
            nibble = self.word & 0xF0000000
            value |= ((nibble << 1) & 0xFFFFFFFF) >> bits
            self.word = (self.word << 4) & 0xFFFFFFFF
            self.nibbles -= 1
            bits -= 3
            if not nibble & 0x80000000:
                return value

    def decompress(self, data: bytes, num_pixels: int) -> list[int]:
        self.words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data) - 3, 4)]
        self.pos = self.nibbles = 0
        out: list[int] = []
        previous = 0
        while len(out) < num_pixels:
            out += [0] * self.decode_vle()
            for _ in range(self.decode_vle()):
                positive = self.decode_vle()
                delta = (positive >> 1) ^ -(positive & 1)
                previous = (previous + delta) & 0xFFFF
                out.append(previous)
        return out


def ref_compressed_depth(depth: np.ndarray, encoding: str, codec: str, depth_max: float = 10.0,
                         depth_quantization: float = 100.0, png_level: int = 9) -> CompressedImage:
    """encodeCompressedDepthImage (codec.cpp), pixel by pixel."""
    msg = CompressedImage()
    msg.header.frame_id = "camera_color_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000, 123
    msg.format = encoding + "; compressedDepth " + codec
    cfg = ConfigHeader()
    cfg.format = 0  # INV_DEPTH
    rows, cols = depth.shape
    if encoding == "32FC1":
        z0, dmax = np.float32(depth_quantization), np.float32(depth_max)
        qa = np.float32(z0 * (z0 + np.float32(1.0)))
        qb = np.float32(np.float32(1.0) - qa / dmax)
        inv = np.zeros((rows, cols), np.uint16)
        for r in range(rows):
            for c in range(cols):
                d = np.float32(depth[r, c])
                if d < dmax:
                    inv[r, c] = int(np.float32(qa / d + qb))  # C cast truncates toward zero
        cfg.depthParam[0], cfg.depthParam[1] = float(qa), float(qb)
        img = inv
    else:
        img = depth.astype(np.uint16).copy()
        limit = int(np.float32(depth_max) * np.float32(1000.0))
        for r in range(rows):
            for c in range(cols):
                if img[r, c] > limit:
                    img[r, c] = 0
    if codec == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, png_level])
        assert ok
        payload = buf.tobytes()
    else:
        payload = (cols.to_bytes(4, "little") + rows.to_bytes(4, "little")
                   + RefRvl().compress([int(v) for v in img.reshape(-1)]))
    msg.data = bytes(cfg) + payload
    return msg


def ref_compressed_color(rgb: np.ndarray, encoding: str, codec: str, quality: int = 95) -> CompressedImage:
    """CompressedPublisher::publish (ROS 2 compressed_image_transport)."""
    msg = CompressedImage()
    msg.format = encoding
    if encoding == "mono8":
        target, suffix = rgb, ""
    else:
        target, suffix = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "bgr8"
    if codec == "jpeg":
        msg.format += "; jpeg compressed " + suffix
        ok, buf = cv2.imencode(".jpg", target, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE,
                                                0, cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_RST_INTERVAL, 0])
    else:
        msg.format += "; png compressed " + suffix
        ok, buf = cv2.imencode(".png", target, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok
    msg.data = buf.tobytes()
    return msg


def _depth_mm(seed: int = 0, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.integers(300, 12000, size=(h, w)).astype(np.uint16)  # some beyond depth_max (10 m)
    d[rng.random((h, w)) < 0.2] = 0                             # holes
    d[3, :] = 0                                                 # a full-row hole
    d[5, 4:20] = 1500                                           # a flat run (delta 0)
    return d


def _depth_m(seed: int = 1, h: int = 24, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.2, 12.0, size=(h, w)).astype(np.float32)
    d[rng.random((h, w)) < 0.15] = np.nan
    return d


def _rgb(seed: int = 2, h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    base[:, : w // 2, 0] = 230  # asymmetric channels: a channel swap cannot pass
    return base


def test_config_header_layout_matches_the_c_struct() -> None:
    assert ctypes.sizeof(ConfigHeader) == cz.CONFIG_HEADER.size == 12
    cfg = ConfigHeader()
    cfg.format, cfg.depthParam[0], cfg.depthParam[1] = 0, 10100.0, -1009.0
    assert bytes(cfg) == cz.CONFIG_HEADER.pack(0, 10100.0, -1009.0)


@pytest.mark.parametrize("seed", range(4))
def test_rvl_encode_is_byte_identical_and_decodes_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 65535, 700).astype(np.uint16)
    px[rng.random(700) < 0.3] = 0
    px[:9] = 0                    # leading zeros
    px[100:140] = 7               # constant run
    px[200:203] = [65535, 1, 65535]  # large negative and positive deltas
    if seed % 2:
        px[-13:] = 0              # trailing zeros: a final (zeros, 0) pair
    ref = RefRvl().compress([int(v) for v in px])
    assert cz.rvl_encode(px) == ref
    np.testing.assert_array_equal(cz.rvl_decode(ref, px.size), px)
    assert RefRvl().decompress(ref, px.size) == [int(v) for v in px]


def test_rvl_edge_cases() -> None:
    for px in (np.zeros(50, np.uint16), np.full(50, 42, np.uint16), np.array([5], np.uint16)):
        ref = RefRvl().compress([int(v) for v in px])
        assert cz.rvl_encode(px) == ref
        np.testing.assert_array_equal(cz.rvl_decode(ref, px.size), px)
    assert cz.rvl_encode(np.zeros(0, np.uint16)) == b""


@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_16uc1_compressed_depth_decodes_exactly(codec: str) -> None:
    d = _depth_mm()
    msg = ref_compressed_depth(d, "16UC1", codec)
    out, enc = cz.decode_depth(msg)
    expected = d.copy()
    expected[expected > 10000] = 0  # the publisher's depth_max filter
    assert enc == "16UC1" and out.dtype == np.uint16
    np.testing.assert_array_equal(out, expected)
    assert cz.encode_depth(d, "16UC1", codec) == (msg.format, bytes(msg.data))


@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_32fc1_compressed_depth_inverse_quantisation(codec: str) -> None:
    d = _depth_m()
    msg = ref_compressed_depth(d, "32FC1", codec)
    out, enc = cz.decode_depth(msg)
    assert enc == "32FC1" and out.dtype == np.float32
    valid = np.isfinite(d) & (d < 10.0)
    np.testing.assert_array_equal(np.isnan(out), ~valid)
    # decodeCompressedDepthImage: A / ((float)q - B) in float32, on the stored q
    data = bytes(msg.data)
    cfg = ConfigHeader.from_buffer_copy(data[:12])
    if codec == "png":
        q = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    else:
        q = np.array(RefRvl().decompress(data[20:], d.size), np.uint16).reshape(d.shape)
    qa, qb = np.float32(cfg.depthParam[0]), np.float32(cfg.depthParam[1])
    np.testing.assert_array_equal(out[valid], qa / (q[valid].astype(np.float32) - qb))
    # the quantisation step of inverse depth bounds the error: dz ~ z^2 / A
    err = np.abs(out[valid] - d[valid])
    assert (err <= d[valid] ** 2 / qa * 1.01 + 1e-6).all()
    assert err.max() > 0  # lossy: a decoder that passed floats through would be noticed
    assert cz.encode_depth(d, "32FC1", codec) == (msg.format, bytes(msg.data))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_colour_decodes_to_rgb(codec: str, encoding: str) -> None:
    rgb = _rgb()
    msg = ref_compressed_color(rgb, encoding, codec)
    assert msg.format == f"{encoding}; {codec} compressed bgr8"
    out = cz.decode_color(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - rgb.astype(int))
    if codec == "png":
        assert diff.max() == 0
    else:
        swapped = np.abs(out[..., ::-1].astype(int) - rgb.astype(int))
        assert diff.mean() < 3.0 and swapped.mean() > 10 * diff.mean()  # JPEG error, not a channel swap


def test_depth_too_close_to_quantise_is_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError, match="cannot be quantised"):
        cz.encode_depth(np.full((2, 2), 0.1, np.float32), "32FC1")


def test_mono_and_old_format_strings() -> None:
    gray = _rgb()[..., 1].copy()
    msg = ref_compressed_color(gray, "mono8", "png")
    assert msg.format == "mono8; png compressed "
    np.testing.assert_array_equal(cz.decode_color(msg), np.repeat(gray[..., None], 3, axis=2))
    old = CompressedImage(format="jpeg", data=ref_compressed_color(_rgb(), "rgb8", "jpeg").data)
    assert np.abs(cz.decode_color(old).astype(int) - _rgb().astype(int)).mean() < 3.0
    assert cz.parse_format("16UC1; compressedDepth").codec == "png"
    old_depth = ref_compressed_depth(_depth_mm(), "16UC1", "png")
    old_depth.format = "16UC1"  # the first compressedDepth publishers wrote the encoding alone
    np.testing.assert_array_equal(cz.decode_depth(old_depth)[0], cz.decode_depth(
        ref_compressed_depth(_depth_mm(), "16UC1", "png"))[0])


def test_decompress_builds_the_raw_image_with_the_same_header() -> None:
    msg = ref_compressed_depth(_depth_mm(), "16UC1", "rvl")
    img = cz.decompress(msg, "depth", rclpy_image)
    assert (img.encoding, img.width, img.height, img.step) == ("16UC1", 32, 24, 64)
    assert img.header == msg.header
    col = cz.decompress(ref_compressed_color(_rgb(), "rgb8", "png"), "color", rclpy_image)
    assert col.encoding == "rgb8"
    np.testing.assert_array_equal(np.frombuffer(bytes(col.data), np.uint8).reshape(48, 64, 3), _rgb())


@pytest.mark.parametrize(("side", "fmt", "data", "reason"), [
    ("color", "rgb8; webp compressed bgr8", b"\x00" * 20, "color_unsupported_format"),
    ("color", "rgb8; jpeg compressed bgr8", b"", "color_zero_size"),
    ("color", "rgb8; jpeg compressed bgr8", b"\xff\xd8garbage" * 5, "decode_error"),
    ("color", "16UC1; compressedDepth png", b"\x00" * 20, "color_unsupported_encoding"),
    ("color", "bayer_rggb8; jpeg compressed bgr8", b"\x00" * 20, "color_unsupported_encoding"),
    ("depth", "rgb8; jpeg compressed bgr8", b"\x00" * 20, "depth_unsupported_format"),
    ("depth", "8UC1; compressedDepth png", b"\x00" * 20, "depth_unsupported_encoding"),
    ("depth", "16UC1; compressedDepth png", b"\x00" * 12, "depth_zero_size"),
    ("depth", "16UC1; compressedDepth zstd", b"\x00" * 40, "depth_unsupported_format"),
    ("depth", "16UC1; compressedDepth png", b"\x00" * 12 + b"notapng" * 4, "decode_error"),
])
def test_rejections_name_the_reason(side: str, fmt: str, data: bytes, reason: str) -> None:
    with pytest.raises(cz.CompressedImageError) as info:
        cz.decompress(CompressedImage(format=fmt, data=data), side, rclpy_image)
    assert info.value.reason == reason
    assert fmt in str(info.value)


@pytest.mark.parametrize("image", [np.full((8, 8), 200, np.uint8), np.full((8, 8, 3), 2000, np.uint16)],
                         ids=["8-bit", "16-bit colour"])
def test_compressed_depth_png_must_be_16_bit_mono(image: np.ndarray) -> None:
    """A compressedDepth PNG of another layout (8-bit: values 0..255 would read as millimetres, a
    hand at 200 mm; 3 channels) is refused as decode_error from its header, before it is decoded
    (the message says what the header holds). Wrong code: check only the channel count (the
    8-bit PNG is decoded first and refused only afterwards)."""
    payload = cv2.imencode(".png", image)[1].tobytes()
    msg = CompressedImage(format="16UC1; compressedDepth png", data=bytes(12) + payload)
    bits, channels = image.dtype.itemsize * 8, 1 if image.ndim == 2 else image.shape[2]
    with pytest.raises(cz.CompressedImageError, match=f"png holds {bits}-bit x {channels} channel") as info:
        cz.decompress(msg, "depth", rclpy_image)
    assert info.value.reason == "decode_error"


def test_corrupt_rvl_is_rejected_not_read_out_of_bounds() -> None:
    good = bytes(ref_compressed_depth(_depth_mm(), "16UC1", "rvl").data)
    for bad in (good[:12 + 8 + 16],                                     # truncated stream
                good[:12] + (10**5).to_bytes(4, "little") * 2 + good[20:],  # claims 10^10 pixels
                good[:12] + (0).to_bytes(4, "little") + good[16:]):      # zero columns
        with pytest.raises(cz.CompressedImageError) as info:
            cz.decode_depth(CompressedImage(format="16UC1; compressedDepth rvl", data=bad))
        assert info.value.reason in ("decode_error", "zero_size", "too_large")
    # a 32FC1 header without quantisation parameters cannot be inverted
    png16 = bytes(ref_compressed_depth(_depth_mm(), "16UC1", "png").data)
    with pytest.raises(cz.CompressedImageError, match="inverse-depth"):
        cz.decode_depth(CompressedImage(format="32FC1; compressedDepth png", data=png16))
