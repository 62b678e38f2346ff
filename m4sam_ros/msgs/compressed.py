"""sensor_msgs/CompressedImage -> numpy, as image_transport's ``compressed`` and ``compressedDepth``
plugins write them. No ROS imports: works on rclpy and rosbags messages alike (duck-typed on
``format`` and ``data``).

Most recorded RealSense bags keep ``.../image_raw/compressed`` (JPEG/PNG colour) and
``.../image_raw/compressedDepth`` instead of raw images. The formats, from
ros-perception/image_transport_plugins:

- colour (compressed_image_transport): ``format`` = ``"<encoding>; jpeg compressed bgr8"`` (or
  ``png``; colour is converted to BGR before encoding, mono keeps one channel and the suffix is
  empty: ``"mono8; jpeg compressed "``); very old publishers write only ``"jpeg"``. ``data`` is
  the JPEG/PNG file.
- depth (compressed_depth_image_transport): ``format`` = ``"<encoding>; compressedDepth png|rvl"``
  (old: ``"16UC1; compressedDepth"``). ``data`` = a 12-byte ``ConfigHeader`` (int32 format enum,
  0 = INV_DEPTH; float32 depthParam[2], native = little-endian byte order) followed by a PNG of
  the 16-bit image or an RVL stream (uint32 cols, uint32 rows, then RVL words). 16UC1 is stored
  as is (millimetres above ``depth_max`` zeroed). 32FC1 is stored as quantised inverse depth:
  ``q = uint16(A / d + B)`` with ``A = z0 (z0 + 1)``, ``B = 1 - A / depth_max`` (d >= depth_max or
  NaN -> 0); decoded ``d = A / (q - B)``, ``q == 0`` -> NaN.

Every rejection is a :class:`CompressedImageError` with a ``reason`` key, the same keys the raw
path counts (``unsupported_encoding``, ``zero_size``, ``decode_error``) plus ``unsupported_format``
for a compression this module does not read.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

import cv2
import numpy as np

from m4sam_ros.msgs.image_codec import COLOR_ENCODINGS, DEPTH_ENCODINGS, numpy_to_image

#: ConfigHeader of compressed_depth_image_transport: enum compressionFormat (int32), float depthParam[2]
CONFIG_HEADER = struct.Struct("<iff")
INV_DEPTH = 0
#: compressed_depth_image_transport's parameter defaults (depth_max metres, depth_quantization z0)
DEFAULT_DEPTH_MAX = 10.0
DEFAULT_DEPTH_QUANTIZATION = 100.0
#: largest image this module will allocate for one message (pixels); a 4K frame is 8.3 M
MAX_PIXELS = 4096 * 4096


class CompressedImageError(ValueError):
    """A CompressedImage that cannot be decoded; ``reason`` is the counter key, the message says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class CompressedFormat(NamedTuple):
    """What a CompressedImage ``format`` string says."""

    encoding: str | None   # the raw image's encoding before compression (None: not given, old publishers)
    codec: str             # "jpeg", "png" or "rvl"
    depth: bool            # written by compressedDepth
    bgr: bool              # colour was converted to BGR before encoding ("compressed bgr8")


def parse_format(fmt: str) -> CompressedFormat:
    """Reads a ``format`` string the way image_transport's subscribers do."""
    fmt = str(fmt)
    head, sep, rest = fmt.partition(";")
    if not sep:  # old publishers: only the codec name ("jpeg", "png"), or an old compressedDepth without it
        codec = head.strip().lower()
        if codec in ("jpeg", "jpg", "png"):
            return CompressedFormat(None, "jpeg" if codec == "jpg" else codec, False, True)
        if head.strip() in ("16UC1", "32FC1"):  # the first compressedDepth wrote the encoding alone (png)
            return CompressedFormat(head.strip(), "png", True, False)
        raise CompressedImageError("unsupported_format", f"format {fmt!r} names no known compression; "
                                   "expected e.g. 'rgb8; jpeg compressed bgr8' or '16UC1; compressedDepth png'")
    encoding = head.strip()
    rest = rest.strip()
    if "compressedDepth" in rest:
        if "compressedDepth rvl" in rest:
            codec = "rvl"
        elif "compressedDepth png" in rest or rest == "compressedDepth":
            codec = "png"
        else:
            raise CompressedImageError("unsupported_format", f"format {fmt!r}: compressedDepth with an unknown "
                                       "codec; image_transport writes 'png' or 'rvl'")
        return CompressedFormat(encoding, codec, True, False)
    for codec in ("jpeg", "png"):
        if rest.startswith(f"{codec} compressed"):
            return CompressedFormat(encoding, codec, False, "compressed bgr" in rest)
    raise CompressedImageError("unsupported_format", f"format {fmt!r}: only jpeg and png colour and "
                               "compressedDepth (png, rvl) are read; set the publisher's format parameter to one")


def _data_bytes(msg: Any) -> bytes:
    data = msg.data
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).tobytes()
    return bytes(data)


def _imdecode(buf: bytes | np.ndarray, what: str) -> np.ndarray:
    arr = np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray)) else buf
    if arr.size == 0:
        raise CompressedImageError("zero_size", f"{what}: empty data")
    try:
        img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise CompressedImageError("decode_error", f"{what}: OpenCV could not decode it ({exc})") from exc
    if img is None or img.size == 0:
        raise CompressedImageError("decode_error", f"{what}: not a decodable image ({arr.size} B)")
    return img


def decode_color(msg: Any) -> np.ndarray:
    """A compressed colour message as uint8 HxWx3 RGB (the node's colour input)."""
    fmt = parse_format(msg.format)
    if fmt.depth:
        raise CompressedImageError("unsupported_encoding", f"format {msg.format!r} is a compressedDepth "
                                   "image on the colour input: swap the colour and depth topics")
    enc = fmt.encoding
    if enc is not None and enc not in COLOR_ENCODINGS:
        raise CompressedImageError("unsupported_encoding", f"colour encoding {enc!r} (format {msg.format!r}); "
                                   f"accepted: {', '.join(COLOR_ENCODINGS)}")
    img = _imdecode(_data_bytes(msg), f"colour {fmt.codec}")
    if img.dtype != np.uint8:
        raise CompressedImageError("unsupported_encoding", f"colour {fmt.codec} of {img.dtype} pixels; 8-bit expected")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] not in (3, 4):
        raise CompressedImageError("unsupported_encoding", f"colour {fmt.codec} with {img.shape[2]} channels")
    # the publisher converts colour to bgr8 before encoding ("... compressed bgr8"), old ones always
    # did; without that suffix the stored channels are in the order the encoding names (the
    # subscriber's rule), so the decoded array is already RGB
    if fmt.bgr or enc is None:
        return np.ascontiguousarray(img[..., 2::-1])
    return np.ascontiguousarray(img[..., :3])


def decode_depth(msg: Any) -> tuple[np.ndarray, str]:
    """A compressedDepth message as (HxW uint16 millimetres, "16UC1") or (HxW float32 metres with
    NaN where invalid, "32FC1"), exactly as compressed_depth_image_transport decodes it."""
    fmt = parse_format(msg.format)
    if not fmt.depth:
        raise CompressedImageError("unsupported_format", f"format {msg.format!r} is not compressedDepth: "
                                   "depth must come from the compressedDepth transport (…/compressedDepth)")
    enc = fmt.encoding or "16UC1"
    if enc not in DEPTH_ENCODINGS:
        raise CompressedImageError("unsupported_encoding", f"depth encoding {enc!r} (format {msg.format!r}); "
                                   f"accepted: {', '.join(DEPTH_ENCODINGS)}")
    data = _data_bytes(msg)
    if len(data) <= CONFIG_HEADER.size:
        raise CompressedImageError("zero_size", f"compressedDepth data of {len(data)} B holds no image "
                                   f"(a {CONFIG_HEADER.size}-byte header comes first)")
    kind, quant_a, quant_b = CONFIG_HEADER.unpack_from(data)
    payload = data[CONFIG_HEADER.size:]
    if fmt.codec == "png":
        img = _imdecode(payload, "compressedDepth png")
        if img.dtype != np.uint16 or img.ndim != 2:
            raise CompressedImageError("decode_error", f"compressedDepth png holds {img.dtype} x "
                                       f"{1 if img.ndim == 2 else img.shape[2]} channel(s); 16-bit mono expected")
    else:
        img = rvl_decode_image(payload)
    if enc == "32FC1":
        if kind != INV_DEPTH or not (np.isfinite(quant_a) and np.isfinite(quant_b)) or quant_a == 0:
            raise CompressedImageError("decode_error", f"32FC1 compressedDepth header format={kind} "
                                       f"depthParam=({quant_a}, {quant_b}): not an inverse-depth quantisation")
        q = img.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.float32(quant_a) / (q - np.float32(quant_b))
        depth[img == 0] = np.nan
        return depth.astype(np.float32, copy=False), "32FC1"
    return img.astype(np.uint16, copy=False), "16UC1"


def decompress(msg: Any, side: str, factory: Callable[..., Any] | None = None) -> Any:
    """A CompressedImage as the raw Image the node's raw path takes (colour as rgb8, depth as
    16UC1 or 32FC1, the same header), built by ``factory`` (rclpy's or rosbags' Image class; a
    field dict without one). ``side`` is "color" or "depth". Rejections carry the raw path's
    counter keys: ``color_unsupported_encoding``, ``depth_zero_size``, ..., and ``decode_error``."""
    if side not in ("color", "depth"):
        raise ValueError(f"side must be 'color' or 'depth', got {side!r}")
    try:
        if side == "color":
            arr, encoding = decode_color(msg), "rgb8"
        else:
            arr, encoding = decode_depth(msg)
    except CompressedImageError as exc:
        reason = exc.reason if exc.reason == "decode_error" else f"{side}_{exc.reason}"
        raise CompressedImageError(reason, f"{side} CompressedImage format {str(msg.format)!r}, "
                                   f"{len(msg.data)} B: {exc.detail}") from exc
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise CompressedImageError("too_large", f"{side} image {arr.shape[1]}x{arr.shape[0]} exceeds {MAX_PIXELS} px")
    return numpy_to_image(arr, encoding, factory=factory, header=getattr(msg, "header", None))


# ------------------------------------------------------------------------------------------- RVL
def _vle_nibbles(values: np.ndarray) -> np.ndarray:
    """Each non-negative value as 3-bit groups, lowest first, the 4th bit set while more follow."""
    values = np.asarray(values, dtype=np.int64)
    bits = np.zeros(values.shape, np.int64)
    v = values.copy()
    while True:
        more = v > 0
        if not more.any():
            break
        bits += more
        v >>= 1
    counts = np.maximum((bits + 2) // 3, 1)
    owner = np.repeat(np.arange(len(values)), counts)
    start = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum())) - np.repeat(start, counts)
    nib = (values[owner] >> (3 * pos)) & 0x7
    last = pos == counts[owner] - 1
    return (nib | np.where(last, 0, 0x8)).astype(np.uint32)


def rvl_encode(pixels: np.ndarray) -> bytes:
    """RVL stream of uint16 pixels (row-major), byte for byte as RvlCodec::CompressRVL writes it."""
    px = np.ascontiguousarray(pixels, dtype=np.uint16).reshape(-1)
    if px.size == 0:
        return b""
    nz = px != 0
    # runs: (zeros, nonzeros) pairs; a pair starts at every zero->nonzero boundary's zero run
    change = np.flatnonzero(np.diff(nz.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [px.size]])
    run_vals = nz[bounds[:-1]]
    lengths = np.diff(bounds)
    zeros: list[int] = []
    nonzeros: list[int] = []
    i = 0
    while i < len(lengths):  # one pair per zero run (possibly empty) and the nonzero run after it
        z = 0
        if not run_vals[i]:
            z = int(lengths[i])
            i += 1
        n = 0
        if i < len(lengths) and run_vals[i]:
            n = int(lengths[i])
            i += 1
        zeros.append(z)
        nonzeros.append(n)
    vals = px[nz].astype(np.int64)
    delta = np.diff(vals, prepend=0)
    zig = np.where(delta >= 0, delta << 1, ((-delta) << 1) - 1)  # (d << 1) ^ (d >> 31)
    n_pairs = len(zeros)
    nz_counts = np.asarray(nonzeros, np.int64)
    seq_len = 2 * n_pairs + int(nz_counts.sum())
    seq = np.empty(seq_len, np.int64)
    pair_start = np.concatenate([[0], np.cumsum(2 + nz_counts)[:-1]])
    seq[pair_start] = zeros
    seq[pair_start + 1] = nonzeros
    is_delta = np.ones(seq_len, bool)
    is_delta[pair_start] = False
    is_delta[pair_start + 1] = False
    seq[is_delta] = zig
    nib = _vle_nibbles(seq)
    pad = (-len(nib)) % 8
    nib = np.concatenate([nib, np.zeros(pad, np.uint32)]).reshape(-1, 8)
    shifts = np.arange(28, -1, -4, dtype=np.uint32)
    words = (nib << shifts).sum(axis=1, dtype=np.uint64).astype(np.uint32)
    return words.astype("<u4").tobytes()


def rvl_decode(stream: bytes | np.ndarray, num_pixels: int) -> np.ndarray:
    """uint16 pixels from an RVL stream (RvlCodec::DecompressRVL); a stream that ends early or
    runs past ``num_pixels`` raises CompressedImageError instead of reading out of bounds."""
    buf = bytes(stream) if not isinstance(stream, (bytes, bytearray)) else stream
    if num_pixels == 0:
        return np.zeros(0, np.uint16)
    usable = len(buf) // 4 * 4
    words = np.frombuffer(buf[:usable], dtype="<u4")
    if words.size == 0:
        raise CompressedImageError("decode_error", "RVL stream is empty")
    shifts = np.arange(28, -1, -4, dtype=np.uint32)
    nib = ((words[:, None] >> shifts) & 0xF).reshape(-1).astype(np.int64)
    ends = (nib & 0x8) == 0
    group = np.concatenate([[0], np.cumsum(ends)[:-1]])
    end_idx = np.flatnonzero(ends)
    starts = np.concatenate([[0], end_idx[:-1] + 1])
    pos = np.arange(nib.size) - starts[np.minimum(group, len(starts) - 1)]
    if (pos >= 11).any():  # more than 32 bits in one value: not an RVL stream of 16-bit depth
        raise CompressedImageError("decode_error", "RVL stream holds a value wider than 32 bits")
    complete = group < len(end_idx)
    vals = np.zeros(len(end_idx), np.int64)
    np.add.at(vals, group[complete], (nib[complete] & 0x7) << (3 * pos[complete]))
    out = np.zeros(num_pixels, np.uint16)
    deltas: list[np.ndarray] = []
    positions: list[np.ndarray] = []
    i = filled = 0
    n_vals = len(vals)
    while filled < num_pixels:
        if i + 1 >= n_vals:
            raise CompressedImageError("decode_error", f"RVL stream ends after {filled} of {num_pixels} pixels")
        zeros, nonzeros = int(vals[i]), int(vals[i + 1])
        i += 2
        if filled + zeros + nonzeros > num_pixels or i + nonzeros > n_vals:
            raise CompressedImageError("decode_error", f"RVL stream runs past the image ({num_pixels} pixels)")
        filled += zeros
        if nonzeros:
            deltas.append(vals[i:i + nonzeros])
            positions.append(np.arange(filled, filled + nonzeros))
        i += nonzeros
        filled += nonzeros
        if zeros == 0 and nonzeros == 0:
            raise CompressedImageError("decode_error", "RVL stream holds an empty run (corrupt data)")
    if deltas:
        zig = np.concatenate(deltas)
        delta = (zig >> 1) ^ -(zig & 1)
        out[np.concatenate(positions)] = (np.cumsum(delta) & 0xFFFF).astype(np.uint16)
    return out


def rvl_decode_image(payload: bytes) -> np.ndarray:
    """HxW uint16 from compressedDepth's RVL payload (uint32 cols, uint32 rows, RVL words)."""
    if len(payload) < 8:
        raise CompressedImageError("decode_error", f"RVL payload of {len(payload)} B has no size header")
    cols, rows = struct.unpack_from("<II", payload)
    if rows == 0 or cols == 0:
        raise CompressedImageError("zero_size", f"RVL image of {cols}x{rows}")
    n = rows * cols
    # image_transport's own sanity check: RVL cannot compress better than ~5 pixels per byte here
    if n > MAX_PIXELS or n > (len(payload) - 8) * 5:
        raise CompressedImageError("decode_error", f"RVL image claims {cols}x{rows} from {len(payload)} B: corrupt")
    return rvl_decode(payload[8:], n).reshape(rows, cols)


# ---------------------------------------------------------------------------------- encoders
def encode_color(rgb: np.ndarray, encoding: str = "rgb8", codec: str = "jpeg", quality: int = 95,
                 png_level: int = 9) -> tuple[str, bytes]:
    """(format, data) of a colour image as compressed_image_transport's publisher writes them; for
    tests and tools that write compressed bags."""
    img = np.asarray(rgb)
    if codec not in ("jpeg", "png"):
        raise ValueError(f"codec must be 'jpeg' or 'png', got {codec!r}")
    if encoding == "mono8":
        target, suffix = img, ""
    elif encoding in ("rgb8", "rgba8"):
        target, suffix = np.ascontiguousarray(img[..., 2::-1]), "bgr8"
    elif encoding in ("bgr8", "bgra8"):
        target, suffix = np.ascontiguousarray(img[..., :3]), "bgr8"
    else:
        raise ValueError(f"encoding {encoding!r} is not a colour encoding")
    if codec == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_PROGRESSIVE, 0,
                  cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_RST_INTERVAL, 0]
        ok, buf = cv2.imencode(".jpg", target, params)
    else:
        ok, buf = cv2.imencode(".png", target, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:  # pragma: no cover - OpenCV always has jpeg and png
        raise ValueError(f"OpenCV could not encode {codec}")
    return f"{encoding}; {codec} compressed {suffix}", buf.tobytes()


def encode_depth(depth: np.ndarray, encoding: str, codec: str = "png", depth_max: float = DEFAULT_DEPTH_MAX,
                 depth_quantization: float = DEFAULT_DEPTH_QUANTIZATION, png_level: int = 9) -> tuple[str, bytes]:
    """(format, data) of a depth image as compressed_depth_image_transport's encoder writes them."""
    if codec not in ("png", "rvl"):
        raise ValueError(f"codec must be 'png' or 'rvl', got {codec!r}")
    d = np.asarray(depth)
    quant_a = quant_b = np.float32(0.0)
    if encoding == "32FC1":
        d = d.astype(np.float32)
        z0, dmax = np.float32(depth_quantization), np.float32(depth_max)
        quant_a = np.float32(z0 * (z0 + np.float32(1.0)))
        quant_b = np.float32(np.float32(1.0) - quant_a / dmax)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inv = quant_a / d + quant_b
        keep = d < dmax  # NaN compares false -> 0, as the C++ loop does
        if ((inv[keep] < 0) | (inv[keep] >= 65536)).any():
            raise ValueError(f"depth below {quant_a / (65535 - quant_b):.4f} m or <= 0 cannot be quantised "
                             "(the C++ cast is undefined there)")
        img = np.where(keep, inv, 0).astype(np.uint16)  # float -> unsigned short truncates
    elif encoding in ("16UC1", "mono16"):
        img = d.astype(np.uint16, copy=True)
        img[img > np.uint16(int(np.float32(depth_max) * np.float32(1000.0)))] = 0
    else:
        raise ValueError(f"compressedDepth needs 16UC1 or 32FC1, got {encoding!r}")
    if codec == "png":
        ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
        if not ok:  # pragma: no cover
            raise ValueError("OpenCV could not encode png")
        payload = buf.tobytes()
    else:
        payload = struct.pack("<II", img.shape[1], img.shape[0]) + rvl_encode(img)
    header = CONFIG_HEADER.pack(INV_DEPTH, float(quant_a), float(quant_b))
    return f"{encoding}; compressedDepth {codec}", header + payload


__all__ = [
    "CONFIG_HEADER", "CompressedFormat", "CompressedImageError", "decode_color", "decode_depth", "decompress",
    "encode_color", "encode_depth", "parse_format", "rvl_decode", "rvl_decode_image", "rvl_encode",
]
